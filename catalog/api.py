"""``Catalog``: one object for a notebook, a CLI command or a worker to open a catalog, read it, and record runs.

    from discovery import make_config, run
    from catalog import Catalog

    with Catalog("sqlite:///circuits.db") as cat:
        outcome = run(make_config("toy", "digits", "acdc", settings={"threshold": 0.01}), recorder=cat,
                      name="digits-acdc")
        cat.circuit("digits-acdc").kept_edges

It implements the run pipeline's ``Recorder`` protocol (``discovery.pipeline``): ``check_name`` before any work,
``start`` (a run row ``running``), ``finish`` (the circuit and the run ``succeeded``, in one transaction) and
``fail``. Every read or write is one short transaction (``catalog.db.session_scope``); nothing is held open
while a method runs for minutes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Optional

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from catalog import queries
from catalog.db import catalog_exists, connect, session_scope, to_url
from catalog.errors import AlreadyExists, CatalogError
from catalog.records import CircuitRecord, CircuitSummary, RunRecord
from catalog.sweeps import JobState, SweepJobRecord, SweepRecord
from catalog.validate import check_name
from discovery.config import RunConfig, job_key
from discovery.results import DatasetSpec, DiscoveryResult, ModelSpec

HEARTBEAT_S = 30.0  # how often a running run says it is alive
LOST_AFTER_S = 300.0  # how long a silent running run waits before it is marked lost (ten missed beats)


class Catalog:
    """An open catalog (SQLite file or PostgreSQL URL); close it, or use it as a context manager. ``mode`` is
    ``catalog.db.connect``'s: ``create`` (the default) makes a new catalog where there is none, ``write`` and
    ``read`` need one to exist, ``read`` never writes."""

    def __init__(self, url: str = "sqlite:///circuits.db", *, mode: str = "create", engine: Optional[Engine] = None):
        self.url, self.mode = url, mode
        self._engine = engine
        self._heartbeats: dict[int, Heartbeat] = {}
        if engine is None and not (mode == "create" and not catalog_exists(url)):
            self._engine = connect(url, mode=mode)  # an existing catalog is opened (and checked) at once

    @property
    def engine(self) -> Engine:
        """The database engine; a new SQLite catalog is created only here, when something is first written."""
        if self._engine is None:
            self._engine = connect(self.url, mode=self.mode)
        return self._engine

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for run_id in list(self._heartbeats):
            self._stop_heartbeat(run_id)
        if self._engine is not None:
            self._engine.dispose()

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        with session_scope(self.engine, read_only=read_only) as session:
            yield session

    # -- reading ---------------------------------------------------------------------------------------------
    def circuit(self, name: str, *, kept_only: bool = False) -> CircuitRecord:
        with self.session(read_only=True) as s:
            return queries.get_circuit(s, name, kept_only=kept_only)

    def circuits(self, model: Optional[str] = None, task: Optional[str] = None) -> list[CircuitSummary]:
        with self.session(read_only=True) as s:
            return queries.list_circuits(s, model=model, task=task)

    def runs(self, status: Optional[str] = None) -> list[RunRecord]:
        with self.session(read_only=True) as s:
            return queries.list_runs(s, status=status)

    # -- the run pipeline's Recorder -------------------------------------------------------------------------
    def check_name(self, name: Optional[str]) -> None:
        if name is None:
            return
        check_name(name)
        if self._engine is None:  # no catalog yet, so no name is taken
            return
        with self.session(read_only=True) as s:
            if queries.find_circuit_id(s, name) is not None:
                raise AlreadyExists(f"a circuit named {name!r} already exists; choose another name")

    def start(self, config: RunConfig, model: ModelSpec, dataset: DatasetSpec, *,
              sweep_id: Optional[int] = None, code_version: Optional[str] = None) -> int:
        """Record the run (with its job key) and keep its heartbeat going until it finishes or fails.
        ``code_version`` is that of the code that runs it (a sweep worker's; default: this process's)."""
        from discovery.run import code_version as this_code_version

        version = code_version or this_code_version()
        key = job_key(config, model.weights_hash, dataset.content_hash, version)
        with self.session() as s:
            run_id = queries.start_run(s, config, model, dataset, version, job_key=key, sweep_id=sweep_id).id
        self._heartbeats[run_id] = Heartbeat(self, run_id)
        return run_id

    def finish(self, run_id: int, result: DiscoveryResult, name: Optional[str], *,
               group: Optional[str] = None) -> CircuitRecord:
        """Keep the result as a circuit and mark the run succeeded, in one transaction; ``group`` puts the circuit
        in a group (``catalog.groups``: a stability study's resamples) in that same transaction."""
        self._stop_heartbeat(run_id)
        name = name or default_name(result, run_id)
        with self.session() as s:
            record = queries.save_result(s, run_id, result, name)
            if group is not None:
                queries.set_group(s, record.name, group)
            return record

    def fail(self, run_id: int, status: str, error: str) -> None:
        """Record how a run ended without masking the exception that ended it."""
        self._stop_heartbeat(run_id)
        try:
            with self.session() as s:
                queries.fail_run(s, run_id, status, error)
        except CatalogError:
            pass

    def heartbeat(self, run_id: int) -> None:
        with self.session() as s:
            queries.heartbeat(s, run_id)

    def mark_lost(self, silent_for: dt.timedelta = dt.timedelta(seconds=LOST_AFTER_S)) -> list[int]:
        """Mark ``lost`` the running runs whose heartbeat stopped (``catalog.runs.mark_lost``)."""
        with self.session() as s:
            return queries.mark_lost(s, silent_for)

    # -- sweeps (``catalog.sweeps``; the driver is ``discovery.sweeps.runner``) ---------------------------------
    @property
    def single_writer(self) -> bool:
        """SQLite has one writer at a time: a sweep's results then travel to its driver, which records them.
        With PostgreSQL every worker records its own (``worker_catalog``)."""
        return to_url(self.url).get_backend_name() == "sqlite"

    def worker_catalog(self) -> Callable[[], "Catalog"]:
        """A picklable factory a sweep worker calls to open this catalog for writing, in its own process."""
        return functools.partial(Catalog, self.url, mode="write")

    def open_sweep(self, name: str, spec: Mapping[str, Any]) -> SweepRecord:
        with self.session() as s:
            return queries.open_sweep(s, name, spec)

    def sweep(self, ref: str | int) -> SweepRecord:
        with self.session(read_only=True) as s:
            return queries.get_sweep(s, ref)

    def sweeps(self) -> list[SweepRecord]:
        with self.session(read_only=True) as s:
            return queries.list_sweeps(s)

    def sweep_jobs(self, sweep_id: int) -> list[SweepJobRecord]:
        with self.session(read_only=True) as s:
            return queries.list_sweep_jobs(s, sweep_id)

    def job_state(self, job_key: str, alive_within: dt.timedelta = dt.timedelta(seconds=LOST_AFTER_S)) -> JobState:
        """Whether a job key is done (or running, its heartbeat fresh) anywhere in the catalog."""
        if self._engine is None:  # no catalog yet: nothing is done
            return JobState()
        with self.session(read_only=True) as s:
            return queries.job_state(s, job_key, alive_within)

    def save_sweep_job(self, sweep_id: int, job_key: str, **fields: Any) -> SweepJobRecord:
        with self.session() as s:
            return queries.save_sweep_job(s, sweep_id, job_key, **fields)

    def update_sweep_job(self, sweep_id: int, job_key: str, **fields: Any) -> SweepJobRecord:
        with self.session() as s:
            return queries.update_sweep_job(s, sweep_id, job_key, **fields)

    def end_running_runs(self, sweep_id: int, job_keys: Sequence[str], status: str, error: str) -> list[int]:
        with self.session() as s:
            return queries.end_running_runs(s, sweep_id, job_keys, status, error)

    def _stop_heartbeat(self, run_id: int) -> None:
        beat = self._heartbeats.pop(run_id, None)
        if beat is not None:
            beat.stop()


class Heartbeat:
    """A daemon thread renewing a running run's heartbeat every ``HEARTBEAT_S`` until stopped. If the process is
    killed (SIGKILL, a lost node) the beats stop, and the run is marked lost ``LOST_AFTER_S`` later."""

    def __init__(self, catalog: Catalog, run_id: int, every: float = HEARTBEAT_S):
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(catalog, run_id, every), daemon=True,
                                        name=f"heartbeat-run-{run_id}")
        self._thread.start()

    def _beat(self, catalog: Catalog, run_id: int, every: float) -> None:
        while not self._stopped.wait(every):
            with contextlib.suppress(CatalogError):  # a busy or unreachable database: the next beat tries again
                catalog.heartbeat(run_id)

    def stop(self) -> None:
        self._stopped.set()


def default_name(result: DiscoveryResult, run_id: int) -> str:
    """``MODEL-TASK-METHOD-rRUN`` (a path-like model or file task keeps only its last part)."""
    model = result.model.name.rstrip("/").split("/")[-1]
    task = result.config.task.rsplit("/", 1)[-1].removeprefix("file:")
    return check_name(f"{model}-{task}-{result.method}-r{run_id}"[-200:])
