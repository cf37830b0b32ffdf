"""``circuits sweep``: a research grid from a TOML spec, run on Ray, deduplicated and resumable, into one catalog.

The spec format is ``discovery.sweeps.spec``'s; the driver ``discovery.sweeps.runner``; the rows
``catalog.sweeps``. This module parses flags, draws the progress bar and prints plans and summaries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import click

from cli.options import FINITE, db_option, info, json_option, print_json, print_table


@click.group("sweep")
def sweep_group() -> None:
    """Run a grid of discovery jobs on Ray, each job once: skipped when done, resumed when stopped.

    Example:

    \b
        circuits sweep run sweeps/toy.toml --dry-run
        circuits sweep run sweeps/toy.toml
        circuits sweep status toy
    """


@sweep_group.command("run")
@click.argument("spec")
@click.option("--address", default=None, metavar="ray://HOST:PORT|auto",
              help="A running Ray cluster to use (default: start Ray on this machine's cores and GPUs).")
@click.option("--dry-run", is_flag=True,
              help="Print every job with its key and whether the catalog has it; run and write nothing.")
@click.option("--gpus-per-job", type=FINITE, default=None, metavar="X",
              help="GPUs each worker holds, fractions allowed (default: 1 for jobs on cuda, else 0).")
@click.option("--cpus-per-job", type=FINITE, default=1.0, show_default=True, metavar="X",
              help="CPU cores each worker holds.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="At most this many workers (default: as many as the cluster has room for).")
@click.option("--name", default=None, help="The sweep's name (default: the spec's name, else its file name).")
@click.option("--retries", type=click.IntRange(0, 100), default=2, show_default=True,
              help="Attempts after the first when a worker dies or a job runs out of memory.")
@click.option("--job-timeout", type=FINITE, default=None, metavar="S", help="Wall-clock budget per job, seconds.")
@click.option("--lost-after", type=FINITE, default=300.0, show_default=True, metavar="S",
              help="Seconds without a heartbeat after which a running run is marked lost (and re-run).")
@db_option
@json_option
def sweep_run(spec: str, address: Optional[str], dry_run: bool, gpus_per_job: Optional[float], cpus_per_job: float,
              workers: Optional[int], name: Optional[str], retries: int, job_timeout: Optional[float],
              lost_after: float, db_url: str, as_json: bool) -> None:
    """Run a sweep spec (a TOML grid of models, tasks, methods and settings) on Ray, into the catalog.

    Each job's key is the hash of everything that determines its circuit (configuration, model weights, dataset,
    code version); a job whose key already succeeded is skipped, so running a finished sweep again does no work
    and a stopped one resumes. Without --address Ray starts on this machine. With a SQLite catalog the results
    come back to this process, the one writer; with PostgreSQL every worker writes its own. Ctrl-C stops the
    sweep: running jobs are recorded interrupted and left pending for the next run.

    Example:

    \b
        circuits sweep run sweeps/toy.toml --dry-run
        circuits sweep run sweeps/seqcont.toml --address auto --gpus-per-job 0.5 \\
            --db postgresql+psycopg://me@dbhost/circuits
    """
    from discovery.errors import SettingsError, Terminated
    from discovery.sweeps.spec import load_spec

    sweep = load_spec(spec, name=name)
    _check_names(sweep)
    gpus = _gpus(sweep, gpus_per_job)
    if cpus_per_job < 0 or (cpus_per_job == 0 and gpus == 0):
        raise SettingsError("--cpus-per-job: a worker needs a share of a CPU or a GPU")
    if job_timeout is not None and job_timeout <= 0:
        raise SettingsError("--job-timeout: expected a number of seconds > 0")
    if dry_run:
        _dry_run(sweep, address, db_url, cpus_per_job, gpus, workers, lost_after, as_json)
        return
    summary = _run(sweep, address, db_url, cpus_per_job, gpus, workers, retries, job_timeout, lost_after, as_json)
    if summary.stopped:
        raise Terminated() if summary.stopped == "SIGTERM" else KeyboardInterrupt()
    if summary.count("failed"):
        info(f"{summary.count('failed')} of {len(summary.ends)} jobs failed (circuits sweep status {summary.name})")
        sys.exit(1)


@sweep_group.command("status")
@click.argument("sweep")
@db_option
@json_option
def sweep_status(sweep: str, db_url: str, as_json: bool) -> None:
    """Show a sweep's jobs: status, attempts, run, circuit and last error.

    Example:

        circuits sweep status toy
    """
    from catalog import Catalog

    with Catalog(db_url, mode="read") as catalog:
        record = catalog.sweep(sweep)
        jobs = catalog.sweep_jobs(record.id)
    if as_json:
        print_json({**_sweep_json(record), "jobs": [_job_json(j) for j in jobs]})
        return
    click.echo(f"sweep {record.name} (id {record.id}, created {record.created_at:%Y-%m-%d %H:%M} UTC): "
               f"{_counts(record.jobs)}")
    rows = [(i, j.status, j.attempts, j.run_id, ", ".join(j.circuit_names) or None, _label(j.config),
             _short(j.error)) for i, j in enumerate(jobs, start=1)]
    print_table(["job", "status", "attempts", "run", "circuit", "what", "error"], rows)


@sweep_group.command("list")
@db_option
@json_option
def sweep_list(db_url: str, as_json: bool) -> None:
    """List the catalog's sweeps with their jobs' statuses (times are UTC).

    Example:

        circuits sweep list --json
    """
    from catalog import Catalog

    with Catalog(db_url, mode="read") as catalog:
        sweeps = catalog.sweeps()
    if as_json:
        print_json([_sweep_json(s) for s in sweeps])
        return
    if not sweeps:
        click.echo("no sweeps in the catalog")
        return
    print_table(["id", "name", "created", "jobs", "statuses"],
                [(s.id, s.name, f"{s.created_at:%Y-%m-%d %H:%M}", s.n_jobs, _counts(s.jobs)) for s in sweeps])


# ---------------------------------------------------------------------------------------------------------
# run and dry run


def _run(sweep: Any, address: Optional[str], db_url: str, cpus: float, gpus: float, workers: Optional[int],
         retries: int, job_timeout: Optional[float], lost_after: float, as_json: bool) -> Any:
    from catalog import Catalog
    from discovery.sweeps.pools import RayPool
    from discovery.sweeps.runner import SweepOptions, run_sweep

    options = SweepOptions(retries=retries, job_timeout=job_timeout, lost_after=lost_after)
    # Ray prints its notes (a worker died, ...) on stdout from a thread of its own: to stderr, so that stdout
    # holds only the summary (--json).
    with Catalog(db_url) as catalog, contextlib.redirect_stdout(sys.stderr), noting_sigterm() as sigterm:
        recorder = None if catalog.single_writer else catalog.worker_catalog()
        pool = RayPool(address, cpus=cpus, gpus=gpus, recorder=recorder, max_workers=workers)
        events = ProgressEvents()
        try:
            summary = run_sweep(sweep, catalog, pool, options=options, events=events)
        finally:
            events.close()
    if summary.stopped and sigterm:
        summary = dataclasses.replace(summary, stopped="SIGTERM")
    _print_summary(summary, as_json)
    return summary


def _dry_run(sweep: Any, address: Optional[str], db_url: str, cpus: float, gpus: float, workers: Optional[int],
             lost_after: float, as_json: bool) -> None:
    """Keys resolved where the jobs would run (a cluster with --address, else here), nothing written."""
    import datetime as dt

    from catalog import Catalog
    from catalog.db import catalog_exists
    from discovery.sweeps.plan import plan_jobs, resolve_jobs
    from discovery.sweeps.pools import LocalPool, RayPool

    with contextlib.redirect_stdout(sys.stderr):  # Ray's notes (see _run)
        pool: Any = LocalPool() if address is None else RayPool(address, cpus=cpus, gpus=gpus, max_workers=workers)
        try:
            slots = pool.start(min(pool.capacity(), len(sweep.jobs)))
            resolved, _ = resolve_jobs(sweep.jobs, pool, slots)
        finally:
            pool.close()
    catalog = Catalog(db_url, mode="read") if catalog_exists(db_url) else None
    try:
        plan = plan_jobs(sweep.jobs, resolved, catalog, dt.timedelta(seconds=lost_after))
    finally:
        if catalog is not None:
            catalog.close()
    rows = [_plan_json(p) for p in plan]
    if as_json:
        print_json({"sweep": sweep.name, "jobs": rows, "merged_duplicates": sweep.merged})
        return
    print_table(["job", "what", "key", "status"], [(r["job"], r["what"], (r["key"] or "-")[:12], r["status"])
                                                   for r in rows])
    states = [p.state for p in plan]
    click.echo(f"sweep {sweep.name}: {len(plan)} jobs: {states.count('done')} done, {states.count('run')} to run, "
               f"{states.count('elsewhere')} running elsewhere, {states.count('unresolved')} without a key"
               + (f" ({sweep.merged} duplicate jobs merged)" if sweep.merged else ""))


def _plan_json(p: Any) -> dict[str, Any]:
    status = {"done": f"done: run {p.run_id} ({p.circuit})", "run": "to run",
              "elsewhere": f"running elsewhere: run {p.run_id}"}.get(p.state)
    if p.state == "unresolved":
        status = f"key unknown here: {p.resolved.error}"
    known = p.state != "unresolved"
    return {"job": p.job.index, "origin": p.job.origin, "what": p.job.label, "state": p.state, "status": status,
            "key": p.key if known else None, "config_key": p.job.config.key, "run_id": p.run_id,
            "circuit": p.circuit, "error": p.resolved.error, "config": p.job.config.as_dict()}


@contextlib.contextmanager
def noting_sigterm() -> Iterator[list[int]]:
    """SIGTERM stops the sweep as Ctrl-C does (``discovery.errors.Terminated``), and is remembered: Ray turns any
    interrupt of a wait into a plain KeyboardInterrupt, and the exit status must still say SIGTERM (143)."""
    from discovery.errors import Terminated

    seen: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, previous)


class ProgressEvents:
    """A progress bar over the jobs to run, with an ETA, on stderr; one line per failed job."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.began = time.monotonic()

    def planned(self, plan: Sequence[Any], workers: int) -> None:
        to_run = sum(1 for p in plan if p.state == "run")
        info(f"{len(plan)} jobs: {len(plan) - to_run} already done or not runnable, {to_run} to run on "
             f"{workers} worker{'s' if workers != 1 else ''}")
        if to_run:
            self.bar = click.progressbar(length=to_run, label="jobs", file=sys.stderr, show_eta=True,
                                         show_pos=True, width=30)
            self.bar.__enter__()

    def started(self, job: Any, attempt: int, slot: int) -> None:
        return None

    def ended(self, end: Any) -> None:
        if end.status == "failed" and end.attempts:
            info(f"\njob {end.job.index} ({end.job.label}) failed: {end.error}")
        if self.bar is not None and end.attempts and end.status in ("succeeded", "failed", "skipped"):
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _print_summary(summary: Any, as_json: bool) -> None:
    if as_json:
        print_json({
            "sweep": summary.name, "sweep_id": summary.sweep_id, "workers": summary.workers,
            "seconds": round(summary.seconds, 3), "stopped": summary.stopped, "lost_runs": list(summary.lost_runs),
            "counts": {s: summary.count(s) for s in ("succeeded", "skipped", "failed", "pending")},
            "jobs": [{"job": e.job.index, "what": e.job.label, "status": e.status, "key": e.key, "run_id": e.run_id,
                      "circuit": e.circuit, "attempts": e.attempts, "error": e.error,
                      "seconds": round(e.seconds, 3)} for e in summary.ends],
        })
        return
    click.echo(f"sweep {summary.name} (id {summary.sweep_id}): {len(summary.ends)} jobs on {summary.workers} "
               f"workers in {summary.seconds:.1f} s: {summary.count('succeeded')} done now, "
               f"{summary.count('skipped')} skipped (done before), {summary.count('failed')} failed"
               + (f", {summary.count('pending')} left pending ({summary.stopped})" if summary.stopped else ""))
    if summary.lost_runs:
        click.echo(f"marked lost (heartbeat stopped): runs {', '.join(map(str, summary.lost_runs))}")
    for end in summary.ends:
        if end.status == "failed":
            click.echo(f"  failed: job {end.job.index} ({end.job.label}): {end.error}")


# ---------------------------------------------------------------------------------------------------------
# small helpers


def _check_names(sweep: Any) -> None:
    """Circuit names a spec gives are checked before anything runs, like everything else in it."""
    from catalog.errors import CatalogError
    from catalog.validate import check_name
    from discovery.sweeps.spec import SpecError

    try:
        check_name(sweep.name, "sweep name")
        for job in sweep.jobs:
            if job.name is not None:
                check_name(job.name)
    except CatalogError as err:
        raise SpecError(str(err)) from None


def _gpus(sweep: Any, given: Optional[float]) -> float:
    from discovery.errors import SettingsError

    on_gpu = any(j.config.device.startswith("cuda") for j in sweep.jobs)
    if given is None:
        return 1.0 if on_gpu else 0.0
    if given < 0 or (on_gpu and given == 0):
        raise SettingsError("--gpus-per-job: jobs on cuda need a GPU or a share of one (e.g. 0.5)" if on_gpu
                            else "--gpus-per-job: expected a number >= 0")
    return given


def _label(config: Any) -> str:
    from discovery.errors import DiscoveryError
    from discovery.sweeps.spec import config_from_dict, describe

    try:
        return describe(config_from_dict(config))
    except (DiscoveryError, TypeError):
        return f"{config.get('model')} {config.get('task')} {config.get('method')}"


def _counts(jobs: Any) -> str:
    return ", ".join(f"{n} {status}" for status, n in jobs.items()) or "no jobs"


def _short(text: Optional[str], width: int = 80) -> Optional[str]:
    return text if text is None or len(text) <= width else text[: width - 3] + "..."


def _sweep_json(s: Any) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "created_at": s.created_at.isoformat(), "jobs": dict(s.jobs),
            "n_jobs": s.n_jobs}


def _job_json(j: Any) -> dict[str, Any]:
    return {"job_key": j.job_key, "what": _label(j.config), "status": j.status, "attempts": j.attempts,
            "run_id": j.run_id, "circuit": j.name, "circuits": list(j.circuit_names), "error": j.error,
            "config": dict(j.config), "updated_at": j.updated_at.isoformat()}
