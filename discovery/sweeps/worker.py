"""A sweep worker: one process holding one loaded model, running many jobs on it.

Loading a model is what a sweep's many small runs would otherwise repeat (the toy model takes seconds, GPT-2
small more): a worker keeps the model it last loaded and loads another only when a job asks for one. The driver
(``discovery.sweeps.runner``) sends jobs of one model to the worker that holds it. On Ray the class runs as an
actor (``discovery.sweeps.ray_pool``); in-process (``discovery.sweeps.local_pool``) it is a plain object.

Two things a worker does:

- ``resolve``: a job's key (``discovery.config.job_key``) needs its model's weights hash and its dataset's content
  hash; the dataset needs the model (tokenizer, and the correctness filter's forward). The worker that will run
  the job computes them, with the code version it runs, so the key the driver deduplicates by is exactly the key
  the run is recorded under.
- ``run``: ``discovery.pipeline.run`` on the held model. With a ``recorder`` factory (PostgreSQL: every worker
  writes its own results) the run is recorded here, with its sweep id and heartbeat; without one (SQLite: the
  driver is the one writer) the result travels back to the driver, which recorded the run's start itself.

A job that runs out of GPU memory comes back as ``oom`` (the driver halves its batch). One past its wall-clock
budget (``JobTimedOut``), or cancelled (Ctrl-C on the driver: ``ray.cancel`` sets a flag), ends at the method's
next progress step, so the run is recorded ``failed`` or ``interrupted`` and nothing is saved; the driver kills a
worker whose method stops calling back.
"""

from __future__ import annotations

import gc
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from discovery.config import RunConfig, job_key
from discovery.errors import DiscoveryError
from discovery.pipeline import check_against, one_line
from discovery.results import DatasetSpec, DiscoveryResult, ModelSpec

SUCCEEDED, FAILED, OOM, TIMEOUT, INTERRUPTED = "succeeded", "failed", "oom", "timeout", "interrupted"


class JobTimedOut(DiscoveryError):
    """A job ran past its wall-clock budget (``--job-timeout``)."""


@dataclass(frozen=True)
class Resolved:
    """A job's key and what it is computed from, or why it could not be (``error``: one line)."""

    config: RunConfig
    job_key: str
    code_version: str
    model: Optional[ModelSpec] = None
    dataset: Optional[DatasetSpec] = None
    error: Optional[str] = None


@dataclass(frozen=True)
class WorkItem:
    """What the driver sends: the configuration to run (its batch halved after an out-of-memory), the circuit's
    name, the sweep, and the wall-clock budget in seconds (None: none)."""

    config: RunConfig
    name: Optional[str]
    sweep_id: Optional[int]
    timeout_s: Optional[float] = None


@dataclass(frozen=True)
class JobReport:
    """How a job ended on the worker. ``result`` travels back only when the driver records (SQLite);
    ``run_id`` and ``circuit`` are set when the worker recorded it (PostgreSQL)."""

    status: str
    seconds: float
    error: Optional[str] = None
    result: Optional[DiscoveryResult] = None
    run_id: Optional[int] = None
    circuit: Optional[str] = None


class SweepRecorder:
    """A catalog's recorder with the sweep's id and the worker's code version on every run it starts."""

    def __init__(self, catalog: Any, sweep_id: Optional[int], code_version: str):
        self.catalog, self.sweep_id, self.code_version = catalog, sweep_id, code_version
        self.run_id: Optional[int] = None

    def check_name(self, name: Optional[str]) -> None:
        self.catalog.check_name(name)

    def start(self, config: RunConfig, model: ModelSpec, dataset: DatasetSpec) -> int:
        self.run_id = self.catalog.start(config, model, dataset, sweep_id=self.sweep_id,
                                         code_version=self.code_version)
        return self.run_id

    def finish(self, run_id: int, result: DiscoveryResult, name: Optional[str]) -> Any:
        return self.catalog.finish(run_id, result, name)

    def fail(self, run_id: int, status: str, error: str) -> None:
        self.catalog.fail(run_id, status, error)


class SweepWorker:
    """See the module docstring. ``recorder`` makes the catalog a worker writes to (None: the driver writes);
    ``cancelled`` says whether the driver asked the running job to stop (Ray's cancellation flag)."""

    def __init__(self, recorder: Optional[Callable[[], Any]] = None, threads: Optional[int] = None,
                 cancelled: Callable[[], bool] = lambda: False):
        from discovery.run import code_version

        if threads:
            import torch

            torch.set_num_threads(threads)
        self.make_recorder, self.cancelled = recorder, cancelled
        self.code_version = code_version()
        self.model: Any = None
        self.recorder: Any = None

    def describe(self) -> dict[str, Any]:
        """Where this worker runs and what it holds (the driver prints it; tests kill it by pid)."""
        held = None if self.model is None else self.model.spec.name
        return {"pid": os.getpid(), "host": socket.gethostname(), "code_version": self.code_version, "model": held}

    def ping(self) -> dict[str, Any]:
        """Alive? (what the driver asks a restarted worker before giving it jobs again)"""
        return self.describe()

    def resolve(self, configs: Sequence[RunConfig]) -> list[Resolved]:
        """Each config's job key; a config whose model or dataset cannot be made gets its one-line error."""
        out: list[Resolved] = []
        datasets: dict[tuple[Any, ...], Any] = {}
        for config in configs:
            try:
                model = self.hold(config)
                ident = (config.model, config.device, config.dtype, config.task, config.n_prompts, config.seed,
                         config.corruption, config.correctness_filter)
                if ident not in datasets:
                    datasets[ident] = self._dataset(config, model)
                dataset = datasets[ident]
                check_against(config, model.spec, dataset.seq_len)
            except Exception as err:  # this job cannot run here (no weights, no GPU, no prompt the model gets right)
                out.append(Resolved(config, job_key(config, None, None, self.code_version), self.code_version,
                                    error=one_line(err)))
                continue
            key = job_key(config, model.spec.weights_hash, dataset.spec.content_hash, self.code_version)
            out.append(Resolved(config, key, self.code_version, model.spec, dataset.spec))
        return out

    def run(self, item: WorkItem) -> JobReport:
        """Run one job on the held model (see the module docstring); never raises for a job's own failure."""
        from discovery.pipeline import run

        began = time.monotonic()
        recorder = self._recorder(item.sweep_id)
        watch = Watch(began, item.timeout_s, self.cancelled)
        try:
            outcome = run(item.config, recorder=recorder, name=item.name, model=self.hold(item.config),
                          progress=watch)
        except KeyboardInterrupt:
            if not self.cancelled():  # Ctrl-C or SIGTERM in this process itself: it stops, not just the job
                raise
            return self._report(INTERRUPTED, began, recorder, error="interrupted (the sweep was stopped)")
        except JobTimedOut as err:
            return self._report(TIMEOUT, began, recorder, error=str(err))
        except Exception as err:
            if _is_oom(err):
                self._free()
                return self._report(OOM, began, recorder, error=one_line(err))
            return self._report(FAILED, began, recorder, error=one_line(err))
        if recorder is None:
            return JobReport(SUCCEEDED, time.monotonic() - began, result=outcome.result)
        return JobReport(SUCCEEDED, time.monotonic() - began, run_id=outcome.run_id,
                         circuit=getattr(outcome.saved, "name", None))

    def hold(self, config: RunConfig) -> Any:
        """The loaded model for ``config``, loading it (and dropping the one held) when it is another."""
        from discovery.models import load_model

        held = self.model
        if held is not None and (held.spec.name, str(held.device), str(held.dtype).replace("torch.", "")) == (
                config.model, config.device, config.dtype):
            return held
        self.model = None
        self._free()
        self.model = load_model(config.model, device=config.device, dtype=config.dtype)
        return self.model

    def _dataset(self, config: RunConfig, model: Any) -> Any:
        from discovery.tasks.filtering import prepare_dataset

        return prepare_dataset(config.task, model, n=config.n_prompts, seed=config.seed,
                               corruption=config.corruption, correctness_filter=config.correctness_filter is not None)

    def _recorder(self, sweep_id: Optional[int]) -> Optional[SweepRecorder]:
        if self.make_recorder is None:
            return None
        if self.recorder is None:
            self.recorder = self.make_recorder()
        return SweepRecorder(self.recorder, sweep_id, self.code_version)

    def _report(self, status: str, began: float, recorder: Optional[SweepRecorder], error: str) -> JobReport:
        run_id = recorder.run_id if recorder is not None else None
        return JobReport(status, time.monotonic() - began, error=error, run_id=run_id)

    def _free(self) -> None:
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


class Watch:
    """The progress callback a worker gives a method: ends the job when its budget is spent or it is cancelled."""

    def __init__(self, began: float, timeout_s: Optional[float], cancelled: Callable[[], bool]):
        self.began, self.timeout_s, self.cancelled = began, timeout_s, cancelled

    def __call__(self, done: int, total: int) -> None:
        if self.timeout_s is not None and time.monotonic() - self.began > self.timeout_s:
            raise JobTimedOut(f"exceeded its wall-clock budget of {self.timeout_s:g} s")
        if self.cancelled():
            raise KeyboardInterrupt("the sweep was stopped")


def _is_oom(err: BaseException) -> bool:
    """torch's out-of-memory error (CUDA, or MPS's), by type where torch has it, else by its message."""
    try:
        import torch

        if isinstance(err, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
