"""Sweeps and their jobs as rows: what a sweep asked for, where each job stands, and whether a job is already done.

A sweep (``circuits sweep run SPEC``) is a name and the spec it expands; each of its jobs is a row keyed by the
job key (``discovery.config.job_key``), with its status (``pending``, ``running``, ``succeeded``: this sweep ran
it, ``skipped``: an earlier run had, ``failed``), its attempts, its last one-line error and the run that did it.

Deduplication asks one question, ``job_state``: is there a succeeded run with this key whose circuit is still in
the catalog (or a succeeded job of any sweep with this key, whose run was retried with a halved batch and so
recorded under its own key)? Then the job is done, whoever ran it (another sweep, a ``circuits discover`` with
the same configuration). A job whose circuit was deleted is not done, and runs again.

The caller owns the session; nothing here commits (``catalog.db.session_scope``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from catalog.errors import CatalogError, NotFound
from catalog.runs import circuit_names_by_run
from catalog.tables import CircuitRow, RunRow, SweepJobRow, SweepRow, utc_now
from catalog.validate import check_name

JOB_STATUSES = ("pending", "running", "succeeded", "failed", "skipped")


@dataclass(frozen=True)
class SweepRecord:
    """A sweep: its name, the spec it expands (the parsed TOML), when it was first run, and how many of its jobs
    are in each status."""

    id: int
    name: str
    spec: Mapping[str, Any]
    created_at: dt.datetime
    jobs: Mapping[str, int] = field(default_factory=dict)

    @property
    def n_jobs(self) -> int:
        return sum(self.jobs.values())


@dataclass(frozen=True)
class SweepJobRecord:
    """One job of a sweep. ``config`` is the run configuration (``RunConfig.as_dict``); ``run_id`` the run that
    did it (this sweep's last attempt, or the earlier run it was skipped for); ``circuit_names`` that run's."""

    id: int
    sweep_id: int
    job_key: str
    name: Optional[str]
    config: Mapping[str, Any]
    status: str
    attempts: int
    error: Optional[str]
    run_id: Optional[int]
    updated_at: dt.datetime
    circuit_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobState:
    """Where a job key stands in the whole catalog: ``done_run`` (a succeeded run whose circuit is kept, and that
    circuit's name), or ``running_run`` (a run with this key whose heartbeat is fresh), or neither."""

    done_run: Optional[int] = None
    circuit: Optional[str] = None
    running_run: Optional[int] = None


def open_sweep(session: Session, name: str, spec: Mapping[str, Any]) -> SweepRecord:
    """The sweep called ``name``, created, or (run again) with its spec replaced by this one: a sweep is resumed
    by running it again under its name."""
    check_name(name, "sweep name")
    row = session.scalars(select(SweepRow).where(SweepRow.name == name)).first()
    if row is None:
        row = SweepRow(name=name, spec=dict(spec), created_at=utc_now())
        session.add(row)
    else:
        row.spec = dict(spec)
    session.flush()
    return _sweep_record(session, row)


def find_sweep(session: Session, ref: str | int) -> Optional[SweepRecord]:
    """A sweep by name, or by id when ``ref`` is a whole number and no sweep has that name."""
    row = session.scalars(select(SweepRow).where(SweepRow.name == str(ref))).first()
    if row is None and str(ref).isdigit():
        row = session.get(SweepRow, int(ref))
    return None if row is None else _sweep_record(session, row)


def get_sweep(session: Session, ref: str | int) -> SweepRecord:
    record = find_sweep(session, ref)
    if record is None:
        raise NotFound(f"no sweep {ref!r} in the catalog (see `circuits sweep list`)")
    return record


def list_sweeps(session: Session) -> list[SweepRecord]:
    """Every sweep, oldest first, with its job counts."""
    return [_sweep_record(session, row) for row in session.scalars(select(SweepRow).order_by(SweepRow.id))]


def list_sweep_jobs(session: Session, sweep_id: int) -> list[SweepJobRecord]:
    """A sweep's jobs in the order they were planned."""
    rows = session.scalars(select(SweepJobRow).where(SweepJobRow.sweep_id == sweep_id).order_by(SweepJobRow.id)).all()
    names = circuit_names_by_run(session, [r.run_id for r in rows if r.run_id is not None])
    return [_job_record(r, names.get(r.run_id, ()) if r.run_id is not None else ()) for r in rows]


def save_sweep_job(session: Session, sweep_id: int, job_key: str, *, config: Mapping[str, Any], status: str,
                   name: Optional[str] = None, run_id: Optional[int] = None,
                   error: Optional[str] = None) -> SweepJobRecord:
    """Plan a job: its row created, or (a sweep run again) brought to ``status`` with its attempts kept."""
    _check_status(status)
    row = _job_row(session, sweep_id, job_key)
    if row is None:
        row = SweepJobRow(sweep_id=sweep_id, job_key=job_key, attempts=0)
        session.add(row)
    row.name, row.config, row.status, row.run_id, row.error = name, dict(config), status, run_id, error
    row.updated_at = utc_now()
    session.flush()
    return _job_record(row)


def update_sweep_job(session: Session, sweep_id: int, job_key: str, *, status: str, error: Optional[str] = None,
                     run_id: Optional[int] = None, attempt: bool = False) -> SweepJobRecord:
    """Move a planned job to ``status`` (with its error, and its run when known); ``attempt`` counts one more."""
    _check_status(status)
    row = _job_row(session, sweep_id, job_key)
    if row is None:
        raise NotFound(f"sweep {sweep_id} has no job {job_key[:12]}")
    row.status, row.error, row.updated_at = status, error, utc_now()
    if run_id is not None:
        row.run_id = run_id
    if attempt:
        row.attempts += 1
    session.flush()
    return _job_record(row)


def job_state(session: Session, job_key: str, alive_within: dt.timedelta) -> JobState:
    """Whether ``job_key`` is done or running anywhere in the catalog (see the module docstring)."""
    has_circuit = exists().where(CircuitRow.run_id == RunRow.id)
    done = session.execute(
        select(RunRow.id).where(RunRow.job_key == job_key, RunRow.status == "succeeded", has_circuit)
        .order_by(RunRow.id.desc())).scalars().first()
    if done is None:
        done = session.execute(
            select(RunRow.id).join(SweepJobRow, SweepJobRow.run_id == RunRow.id)
            .where(SweepJobRow.job_key == job_key, SweepJobRow.status.in_(("succeeded", "skipped")),
                   RunRow.status == "succeeded", has_circuit)
            .order_by(RunRow.id.desc())).scalars().first()
    if done is not None:
        circuit = session.scalars(select(CircuitRow.name).where(CircuitRow.run_id == done)
                                  .order_by(CircuitRow.id)).first()
        return JobState(done_run=done, circuit=circuit)
    cutoff = utc_now() - alive_within
    running = session.execute(
        select(RunRow.id).where(RunRow.job_key == job_key, RunRow.status == "running",
                                func.coalesce(RunRow.heartbeat_at, RunRow.started_at) >= cutoff)
        .order_by(RunRow.id.desc())).scalars().first()
    return JobState(running_run=running)


def end_running_runs(session: Session, sweep_id: int, job_keys: Sequence[str], status: str, error: str) -> list[int]:
    """End the still-running runs a sweep's workers started for these jobs (a worker killed, a job timed out,
    the sweep stopped), as ``status`` with ``error``; returns their ids. Runs that finished are left alone."""
    if status not in ("failed", "interrupted", "lost"):
        raise CatalogError(f"a run is ended as failed, interrupted or lost, not {status!r}")
    if not job_keys:
        return []
    query = select(RunRow.id).where(RunRow.sweep_id == sweep_id, RunRow.status == "running",
                                    RunRow.job_key.in_(list(job_keys)))
    ids = list(session.scalars(query))
    if ids:
        session.execute(update(RunRow).where(RunRow.id.in_(ids), RunRow.status == "running")
                        .values(status=status, error=error, finished_at=utc_now()))
    return ids


def _check_status(status: str) -> None:
    if status not in JOB_STATUSES:
        raise CatalogError(f"a sweep job is one of {', '.join(JOB_STATUSES)}, not {status!r}")


def _job_row(session: Session, sweep_id: int, job_key: str) -> Optional[SweepJobRow]:
    return session.scalars(select(SweepJobRow).where(SweepJobRow.sweep_id == sweep_id,
                                                     SweepJobRow.job_key == job_key)).first()


def _sweep_record(session: Session, row: SweepRow) -> SweepRecord:
    query = select(SweepJobRow.status, func.count()).where(SweepJobRow.sweep_id == row.id).group_by(SweepJobRow.status)
    counts = {status: int(n) for status, n in session.execute(query)}
    return SweepRecord(id=row.id, name=row.name, spec=row.spec or {}, created_at=row.created_at,
                       jobs={s: counts[s] for s in JOB_STATUSES if counts.get(s)})


def _job_record(row: SweepJobRow, circuit_names: tuple[str, ...] = ()) -> SweepJobRecord:
    return SweepJobRecord(id=row.id, sweep_id=row.sweep_id, job_key=row.job_key, name=row.name,
                          config=row.config or {}, status=row.status, attempts=row.attempts, error=row.error,
                          run_id=row.run_id, updated_at=row.updated_at, circuit_names=circuit_names)
