"""A sweep's plan: every job with its key, and whether the catalog already has it.

Keys are resolved by workers (``SweepWorker.resolve``): the jobs of one model go to one worker, which loads the
model once and draws each distinct dataset once; groups of different models go to different workers at the same
time. Each key is then looked up in the catalog (``Ledger.job_state``): ``done`` (a succeeded run with this key
still has its circuit: skipped), ``elsewhere`` (a run with this key is running now, its heartbeat fresh: another
sweep or a ``circuits discover`` is doing it, so this sweep leaves it), ``run``, or ``unresolved`` (the model or
dataset could not be made: the job fails with that one line, or a dry run says the key needs it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from discovery.config import RunConfig
from discovery.sweeps.pools import Call, WorkerLost
from discovery.sweeps.spec import SweepJob
from discovery.sweeps.worker import Resolved

DONE, RUN, ELSEWHERE, UNRESOLVED = "done", "run", "elsewhere", "unresolved"


class Ledger(Protocol):
    """What the driver needs of a catalog (``catalog.Catalog`` implements it): the run recorder (SQLite: the driver
    records every run), lost runs, the sweep's rows, and whether a job key is already done."""

    @property
    def single_writer(self) -> bool: ...

    def worker_catalog(self) -> Any: ...

    def mark_lost(self, silent_for: dt.timedelta) -> list[int]: ...

    def open_sweep(self, name: str, spec: Any) -> Any: ...

    def sweep_jobs(self, sweep_id: int) -> list[Any]: ...

    def job_state(self, job_key: str, alive_within: dt.timedelta) -> Any: ...

    def save_sweep_job(self, sweep_id: int, job_key: str, **fields: Any) -> Any: ...

    def update_sweep_job(self, sweep_id: int, job_key: str, **fields: Any) -> Any: ...

    def end_running_runs(self, sweep_id: int, job_keys: Sequence[str], status: str, error: str) -> list[int]: ...

    def check_name(self, name: Optional[str]) -> None: ...

    def start(self, config: RunConfig, model: Any, dataset: Any, *, sweep_id: Optional[int] = None,
              code_version: Optional[str] = None) -> int: ...

    def finish(self, run_id: int, result: Any, name: Optional[str]) -> Any: ...

    def fail(self, run_id: int, status: str, error: str) -> None: ...


class Pool(Protocol):
    """Where workers live (``discovery.sweeps.pools``)."""

    def capacity(self) -> int: ...

    def start(self, n_workers: int) -> int: ...

    def call(self, slot: int, method: str, *args: Any) -> Call: ...

    def ready(self, calls: Sequence[Call], timeout: float) -> list[Call]: ...

    def value(self, call: Call) -> Any: ...

    def cancel(self, call: Call) -> None: ...

    def kill(self, slot: int) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PlannedJob:
    """A job, its resolution, and where the catalog stands on it (``state``: see the module docstring).
    ``run_id``/``circuit``: the run that did it (done) or is doing it (elsewhere)."""

    job: SweepJob
    resolved: Resolved
    state: str
    run_id: Optional[int] = None
    circuit: Optional[str] = None

    @property
    def key(self) -> str:
        return self.resolved.job_key

    @property
    def group(self) -> tuple[str, str, str]:
        return model_group(self.job.config)


def model_group(config: RunConfig) -> tuple[str, str, str]:
    """What a worker must hold to run a config: the model on its device in its dtype."""
    return config.model, config.device, config.dtype


def resolve_jobs(jobs: Sequence[SweepJob], pool: Pool, slots: int
                 ) -> tuple[dict[int, Resolved], dict[int, tuple[str, str, str]]]:
    """Each job's resolution (by job index), the jobs of one model on one worker, groups spread over ``slots``;
    and what each slot now holds (the driver sends it that model's jobs first). A group whose worker dies while
    resolving is tried once more; Ray restarts the worker meanwhile."""
    groups: dict[tuple[str, str, str], list[SweepJob]] = {}
    for job in jobs:
        groups.setdefault(model_group(job.config), []).append(job)
    pending = list(groups.items())
    out: dict[int, Resolved] = {}
    holds: dict[int, tuple[str, str, str]] = {}
    lost: dict[tuple[str, str, str], int] = {}
    calls: dict[Call, tuple[tuple[str, str, str], list[SweepJob]]] = {}
    free = list(range(slots))
    while pending or calls:
        while pending and free:
            group, members = pending.pop(0)
            calls[pool.call(free.pop(0), "resolve", [j.config for j in members])] = (group, members)
        for call in pool.ready(list(calls), timeout=1.0):
            group, members = calls.pop(call)
            free.append(call.slot)
            try:
                values = pool.value(call)
            except WorkerLost as err:
                holds.pop(call.slot, None)
                lost[group] = lost.get(group, 0) + 1
                if lost[group] < 2:
                    pending.append((group, members))
                    continue
                values = [_unresolved(j, f"the worker died twice while loading the model ({err})") for j in members]
            else:
                holds[call.slot] = group
            out.update((j.index, r) for j, r in zip(members, values))
    return out, holds


def plan_jobs(jobs: Sequence[SweepJob], resolved: dict[int, Resolved], ledger: Optional[Ledger],
              alive_within: dt.timedelta) -> list[PlannedJob]:
    """Each job's state in the catalog (``ledger`` None: an empty catalog, nothing done)."""
    out = []
    for job in jobs:
        res = resolved[job.index]
        if res.error is not None:
            out.append(PlannedJob(job, res, UNRESOLVED))
            continue
        state = ledger.job_state(res.job_key, alive_within) if ledger is not None else None
        if state is not None and state.done_run is not None:
            out.append(PlannedJob(job, res, DONE, state.done_run, state.circuit))
        elif state is not None and state.running_run is not None:
            out.append(PlannedJob(job, res, ELSEWHERE, state.running_run))
        else:
            out.append(PlannedJob(job, res, RUN))
    return out


def _unresolved(job: SweepJob, error: str) -> Resolved:
    from discovery.config import job_key

    return Resolved(job.config, job_key(job.config, None, None, "unknown"), "unknown", error=error)
