"""Where a sweep's workers live: Ray actors (``RayPool``, what ``circuits sweep run`` uses) or one worker in this
process (``LocalPool``: dry runs, notebooks without Ray, tests of the driver's bookkeeping).

The driver (``discovery.sweeps.runner``) sees a pool as slots it calls methods on; a call comes back with the
method's value, or raises ``WorkerLost`` when the worker process died under it (killed, out of host memory, its
node lost). Ray restarts a dead actor (``max_restarts``); the driver pings a slot before trusting it again.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from discovery.errors import DiscoveryError
from discovery.sweeps.worker import SweepWorker

MAX_RESTARTS = 3  # per worker: a worker that dies more often than this is given up


class WorkerLost(Exception):
    """The worker process running a call died; the call may or may not have run."""


class CallCancelled(Exception):
    """The driver cancelled the call (the sweep is stopping) before or while it ran."""


class SweepNeedsRay(DiscoveryError):
    """Ray is missing, or the cluster cannot be reached or has no room for a worker."""


@dataclass(eq=False)
class Call:
    """One method call on one slot: Ray's object ref in ``ref``; in-process, the arguments until it has run, then
    its value (or ``error``)."""

    slot: int
    method: str
    ref: Any = None
    error: Optional[BaseException] = None
    done: bool = False
    started: float = field(default_factory=time.monotonic)


class LocalPool:
    """One worker in this process (no Ray: see the module docstring). A call runs when the driver waits for it,
    so that Ctrl-C during a job finds the job among the driver's calls and its run is recorded ``interrupted``."""

    def __init__(self, recorder: Optional[Callable[[], Any]] = None, worker: Optional[SweepWorker] = None):
        """``worker``: one to reuse (with the model it holds); it records into ``recorder``'s catalog."""
        self.worker = worker or SweepWorker(recorder)
        self.worker.make_recorder, self.worker.recorder = recorder, None

    def start(self, n_workers: int) -> int:
        return 1

    def capacity(self) -> int:
        return 1

    def call(self, slot: int, method: str, *args: Any) -> Call:
        return Call(slot, method, ref=args)

    def ready(self, calls: Sequence[Call], timeout: float) -> list[Call]:
        for call in calls:
            if not call.done:
                self._execute(call)
        return list(calls)

    def _execute(self, call: Call) -> None:
        call.done = True
        try:
            call.ref = getattr(self.worker, call.method)(*call.ref)
        except KeyboardInterrupt:  # Ctrl-C here: the driver stops the sweep, this call among its own
            call.error = CallCancelled("interrupted")
            raise
        except Exception as err:
            call.error = err

    def value(self, call: Call) -> Any:
        if call.error is not None:
            raise call.error
        return call.ref

    def cancel(self, call: Call) -> None:
        if not call.done:  # never started: it ends as interrupted without running
            call.done, call.error = True, CallCancelled("cancelled before it ran")

    def kill(self, slot: int) -> None:
        return None

    def close(self) -> None:
        return None


class RayPool:
    """Workers as Ray actors, each with ``cpus``/``gpus`` per job (fractional GPUs share a device). ``address``
    None starts Ray on this machine (``ray.init(address="local")``); ``auto``, ``HOST:PORT`` or
    ``ray://HOST:PORT`` joins a running cluster. A Ray session already open in this process (a notebook's, a
    test's) is used as it is and left open. Actors are restarted by Ray when they die (``MAX_RESTARTS``); Ray
    never retries a call itself (``max_task_retries=0``): the driver decides what to run again."""

    def __init__(self, address: Optional[str] = None, *, cpus: float = 1.0, gpus: float = 0.0,
                 recorder: Optional[Callable[[], Any]] = None, max_workers: Optional[int] = None):
        try:
            import ray
        except ImportError:
            raise SweepNeedsRay("sweeps run on Ray, which is not installed: pip install 'circuit-catalog[sweep]'"
                                ) from None
        self.ray, self.cpus, self.gpus = ray, cpus, gpus
        self.recorder, self.max_workers = recorder, max_workers
        self.actors: list[Any] = []
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            self._init(address)

    def _init(self, address: Optional[str]) -> None:
        """``ray.init`` without its notes on stderr (they would break the progress bar); workers' own output
        stays in Ray's session logs (/tmp/ray/session_latest/logs)."""
        import logging

        if address not in (None, "auto", "local"):
            _check_reachable(address)
        logger = logging.getLogger("ray")
        level = logger.level
        logger.setLevel(logging.ERROR)
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            # "local": a new Ray on this machine even where one runs already (`--address auto` joins that one)
            self.ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                          configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            hint = ("; a cluster with token authentication needs RAY_AUTH_MODE=token and its token here "
                    "(see docs/sweeps.md)") if address else ""
            raise SweepNeedsRay(f"cannot start or reach {where}: {_first_line(err)}{hint}") from None
        finally:
            logger.setLevel(level)
        # ray.init makes SIGTERM exit at once; the command's own handler (cli.entry) stops the sweep cleanly instead
        if callable(sigterm) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)

    def capacity(self) -> int:
        """How many workers the cluster has room for at this size per job (at least 1 if any fits)."""
        resources = self.ray.cluster_resources()
        n = math.inf
        if self.cpus > 0:
            n = min(n, math.floor(resources.get("CPU", 0) / self.cpus + 1e-9))
        if self.gpus > 0:
            n = min(n, math.floor(resources.get("GPU", 0) / self.gpus + 1e-9))
        if self.max_workers is not None:
            n = min(n, self.max_workers)
        if n == math.inf or n < 1:
            raise SweepNeedsRay(f"the Ray cluster ({_show(resources)}) has no room for a worker with "
                                f"{self.cpus:g} CPU and {self.gpus:g} GPU per job")
        return int(n)

    def start(self, n_workers: int) -> int:
        actor = self.ray.remote(RayWorker).options(num_cpus=self.cpus, num_gpus=self.gpus,
                                                   max_restarts=MAX_RESTARTS, max_task_retries=0)
        threads = max(1, math.floor(self.cpus)) if self.cpus >= 1 else 1
        self.actors = [actor.remote(self.recorder, threads) for _ in range(n_workers)]
        return n_workers

    def call(self, slot: int, method: str, *args: Any) -> Call:
        return Call(slot, method, getattr(self.actors[slot], method).remote(*args))

    def ready(self, calls: Sequence[Call], timeout: float) -> list[Call]:
        by_ref = {c.ref: c for c in calls}
        done, _ = self.ray.wait(list(by_ref), num_returns=1, timeout=timeout)
        if done:  # whatever else is ready too, without waiting again
            more, _ = self.ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
            done = list(dict.fromkeys([*done, *more]))
        return [by_ref[r] for r in done]

    def value(self, call: Call) -> Any:
        from ray import exceptions as rex

        try:
            return self.ray.get(call.ref)
        except (rex.RayActorError, rex.WorkerCrashedError) as err:
            raise WorkerLost(_first_line(err)) from None
        except rex.TaskCancelledError:
            raise CallCancelled("cancelled") from None
        except rex.RayTaskError as err:
            cause = err.cause if isinstance(getattr(err, "cause", None), BaseException) else err
            raise RuntimeError(_first_line(cause)) from None

    def cancel(self, call: Call) -> None:
        self.ray.cancel(call.ref)

    def kill(self, slot: int) -> None:
        """Kill a worker's process now (a job past its budget that stops calling back); Ray restarts it."""
        self.ray.kill(self.actors[slot], no_restart=False)

    def close(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(actor, no_restart=True)
        self.actors = []
        if self.started_ray:
            self.ray.shutdown()


class RayWorker(SweepWorker):
    """``SweepWorker`` as a Ray actor: cancellation is Ray's flag (``ray.cancel`` on a running actor task)."""

    def __init__(self, recorder: Optional[Callable[[], Any]], threads: int):
        super().__init__(recorder, threads, cancelled=_ray_cancelled)


def _ray_cancelled() -> bool:
    import ray

    try:
        return bool(ray.get_runtime_context().is_canceled())
    except (RuntimeError, AttributeError):
        return False


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray retries an unreachable head for minutes; a port that does not answer is one line at once."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SweepNeedsRay(f"--address: expected auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise SweepNeedsRay(f"cannot reach the Ray cluster at {address}: {err.strerror or err} (is `ray start "
                            "--head` running there?)") from None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__


def _show(resources: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(resources.items()) if k in ("CPU", "GPU")) or "no CPU or GPU"
