"""The sweep driver: plan a grid, skip what the catalog has, run the rest over workers, survive their faults.

``run_sweep(spec, ledger, pool)``:

1. Runs whose heartbeat stopped are marked ``lost`` (``Ledger.mark_lost``), so a job a killed process left
   ``running`` is not mistaken for one running now, and runs again.
2. The sweep's row is opened (created, or resumed under the same name) and every job's key resolved on the
   workers and looked up (``discovery.sweeps.plan``): done jobs are skipped, the rest queued, each a
   ``sweep_job`` row (``pending``, ``running``, ``succeeded``, ``skipped``, ``failed``, with attempts and error).
3. Jobs go to idle workers, a worker's own model's jobs first. Recording follows the catalog
   (``Ledger.single_writer``): with SQLite the driver is the one writer, recording a run ``running`` when it
   dispatches it (its heartbeat beats in the driver while the job is out) and saving the circuit when the result
   comes back; with PostgreSQL each worker records its own runs (``discovery.sweeps.worker``).
4. Faults. A worker that dies (killed, its node lost) has its run marked ``lost`` and its job queued again for
   another worker, up to ``retries`` more attempts; Ray restarts the worker. A job out of GPU memory is retried
   with its batch option halved (``halve_batch``; a method without one is retried once as it was). A job past
   ``job_timeout`` seconds ends at its next progress step (recorded ``failed``), and a worker that does not end
   it within ``kill_grace_s`` more is killed. A job that fails by itself (a bad setting, a task the model cannot
   do) fails once: it would fail again.
5. Ctrl-C or SIGTERM: running jobs are cancelled (they end at their next progress step), given ``stop_grace_s``
   to end, then their workers are killed; their runs are recorded ``interrupted``, their jobs left ``pending``
   for the next run of the sweep. A result already back is saved whole; nothing is ever half-saved (each save is
   one transaction). The summary says it stopped; the CLI exits 130 (143 for SIGTERM).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Optional, Protocol

from discovery.config import RunConfig, job_key
from discovery.errors import Terminated
from discovery.methods import get_method
from discovery.sweeps.plan import DONE, ELSEWHERE, UNRESOLVED, Ledger, PlannedJob, Pool, plan_jobs, resolve_jobs
from discovery.sweeps.pools import Call, CallCancelled, WorkerLost
from discovery.sweeps.spec import SweepJob, SweepSpec
from discovery.sweeps.worker import FAILED, INTERRUPTED, OOM, SUCCEEDED, JobReport, WorkItem

BATCH_OPTIONS = ("max_batch", "batch_size")  # the method options an out-of-memory retry halves
SKIPPED = "skipped"


@dataclass(frozen=True)
class SweepOptions:
    """``retries``: further attempts after a worker dies or memory runs out; ``job_timeout``: seconds per job
    (None: no limit); ``lost_after``: seconds of heartbeat silence before a running run is marked lost."""

    retries: int = 2
    job_timeout: Optional[float] = None
    lost_after: float = 300.0
    kill_grace_s: float = 30.0
    stop_grace_s: float = 10.0
    poll_s: float = 1.0


@dataclass(frozen=True)
class JobEnd:
    """How one job ended in this run of the sweep: ``succeeded`` (ran now), ``skipped`` (done before, or running
    elsewhere: ``error`` says which), ``failed`` (its one-line error), or ``pending`` (the sweep was stopped)."""

    job: SweepJob
    status: str
    key: str
    run_id: Optional[int] = None
    circuit: Optional[str] = None
    error: Optional[str] = None
    attempts: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class SweepSummary:
    name: str
    sweep_id: int
    workers: int
    ends: tuple[JobEnd, ...]
    lost_runs: tuple[int, ...] = ()
    seconds: float = 0.0
    stopped: Optional[str] = None  # "Ctrl-C" or "SIGTERM" when the sweep was stopped

    def count(self, status: str) -> int:
        return sum(1 for e in self.ends if e.status == status)


class Events(Protocol):
    """What the driver tells its caller as it goes (the CLI draws a progress bar from it)."""

    def planned(self, plan: Sequence[PlannedJob], workers: int) -> None: ...

    def started(self, job: SweepJob, attempt: int, slot: int) -> None: ...

    def ended(self, end: JobEnd) -> None: ...


class NoEvents:
    def planned(self, plan: Sequence[PlannedJob], workers: int) -> None:
        return None

    def started(self, job: SweepJob, attempt: int, slot: int) -> None:
        return None

    def ended(self, end: JobEnd) -> None:
        return None


def run_sweep(spec: SweepSpec, ledger: Ledger, pool: Pool, *, options: Optional[SweepOptions] = None,
              events: Optional[Events] = None) -> SweepSummary:
    """Run ``spec`` (see the module docstring); the pool is closed at the end, whatever happens."""
    options, events = options or SweepOptions(), events or NoEvents()
    began = time.monotonic()
    lost = ledger.mark_lost(dt.timedelta(seconds=options.lost_after))
    sweep = ledger.open_sweep(spec.name, spec.source)
    try:
        workers = pool.start(min(pool.capacity(), len(spec.jobs)))
        try:
            resolved, holds = resolve_jobs(spec.jobs, pool, workers)
        except KeyboardInterrupt as err:
            return SweepSummary(spec.name, sweep.id, workers, (), tuple(lost), time.monotonic() - began, _why(err))
        plan = plan_jobs(spec.jobs, resolved, ledger, dt.timedelta(seconds=options.lost_after))
        ends = record_plan(ledger, sweep.id, spec.name, plan)
        events.planned(plan, workers)
        for end in ends:
            events.ended(end)
        driver = Dispatcher(sweep.id, spec.name, ledger, pool, workers, holds, options, events)
        ends += driver.run([p for p in plan if p.state not in (DONE, ELSEWHERE, UNRESOLVED)])
    finally:
        pool.close()
    order = {e.job.index: e for e in ends}
    return SweepSummary(spec.name, sweep.id, workers, tuple(order[j.index] for j in spec.jobs if j.index in order),
                        tuple(lost), time.monotonic() - began, driver.stopped)


def record_plan(ledger: Ledger, sweep_id: int, sweep_name: str, plan: Sequence[PlannedJob]) -> list[JobEnd]:
    """Every job's row as planned; returns the ends of the jobs that will not run (done, elsewhere, unresolved)."""
    before = {r.job_key: r for r in ledger.sweep_jobs(sweep_id)}
    ends = []
    for p in plan:
        config, name = p.job.config.as_dict(), circuit_name(sweep_name, p)
        if p.state == DONE:
            earlier = before.get(p.key)
            ours = earlier is not None and earlier.status == SUCCEEDED and earlier.run_id == p.run_id
            ledger.save_sweep_job(sweep_id, p.key, config=config, name=name, run_id=p.run_id,
                                  status=SUCCEEDED if ours else SKIPPED)
            ends.append(JobEnd(p.job, SKIPPED, p.key, p.run_id, p.circuit))
        elif p.state == ELSEWHERE:
            note = f"running in run {p.run_id} (another sweep or discover)"
            ledger.save_sweep_job(sweep_id, p.key, config=config, name=name, status=SKIPPED, error=note)
            ends.append(JobEnd(p.job, SKIPPED, p.key, p.run_id, error=note))
        elif p.state == UNRESOLVED:
            ledger.save_sweep_job(sweep_id, p.key, config=config, name=name, status=FAILED, error=p.resolved.error)
            ends.append(JobEnd(p.job, FAILED, p.key, error=p.resolved.error))
        else:
            ledger.save_sweep_job(sweep_id, p.key, config=config, name=name, status="pending")
    return ends


def circuit_name(sweep_name: str, planned: PlannedJob) -> str:
    """A ``[[job]]``'s own name, else ``SWEEP-MODEL-TASK-METHOD-KEY8`` (unique, and the same on every rerun)."""
    if planned.job.name:
        return planned.job.name
    config = planned.job.config
    model = config.model.rstrip("/").split("/")[-1]
    task = config.task.rsplit("/", 1)[-1].removeprefix("file:")
    return f"{sweep_name}-{model}-{task}-{config.method}-{planned.key[:8]}"[-200:].strip()


def halve_batch(config: RunConfig) -> Optional[RunConfig]:
    """``config`` with its batch option halved (an unset ``batch_size`` counts as the number of prompts), or None
    when the method has no batch option or it is already 1."""
    spec = get_method(config.method)
    for name in BATCH_OPTIONS:
        if spec.options.get(name) is None:
            continue
        current = config.settings.get(name) or config.n_prompts
        if current <= 1:
            return None
        return replace(config, settings=spec.resolve({**config.settings, name: current // 2}))
    return None


@dataclass
class Task:
    """A job in the driver's queue: the config of its next attempt and how many it has had."""

    planned: PlannedJob
    config: RunConfig
    name: str
    attempts: int = 0
    oom_retried: bool = False


@dataclass
class Flight:
    """A call out on a worker: a job's attempt (``task``) or a ping of a restarted worker (``task`` None)."""

    slot: int
    task: Optional[Task] = None
    run_id: Optional[int] = None
    run_key: Optional[str] = None
    deadline: Optional[float] = None
    killed: bool = False
    began: float = field(default_factory=time.monotonic)


class Dispatcher:
    """Steps 3-5 of the module docstring for one run of a sweep."""

    def __init__(self, sweep_id: int, sweep_name: str, ledger: Ledger, pool: Pool, workers: int,
                 holds: dict[int, tuple[str, str, str]], options: SweepOptions, events: Events):
        self.sweep_id, self.sweep_name, self.ledger, self.pool = sweep_id, sweep_name, ledger, pool
        self.options, self.events = options, events
        self.idle = list(range(workers))
        self.holds = dict(holds)
        self.queue: deque[Task] = deque()
        self.flights: dict[Call, Flight] = {}
        self.ends: list[JobEnd] = []
        self.stopped: Optional[str] = None

    def run(self, plan: Sequence[PlannedJob]) -> list[JobEnd]:
        self.queue.extend(Task(p, p.job.config, circuit_name(self.sweep_name, p)) for p in plan)
        try:
            while self.queue or self.flights:
                self.dispatch()
                if not self.flights:
                    if not self.idle:
                        self.give_up("no worker left: every worker died more often than Ray restarts one")
                    continue
                for call in self.pool.ready(list(self.flights), timeout=self.options.poll_s):
                    self.collect(call)
                self.enforce_deadlines()
        except KeyboardInterrupt as err:
            self.stop(err)
        return self.ends

    # -- dispatching ---------------------------------------------------------------------------------------
    def dispatch(self) -> None:
        while self.idle and self.queue:
            slot = self.idle.pop(0)
            task = self.pick(slot)
            done = self.ledger.job_state(task.planned.key, dt.timedelta(0))
            if done.done_run is not None:  # done meanwhile (another sweep, or a retry's first attempt)
                self.idle.insert(0, slot)
                self.end(task, SKIPPED, run_id=done.done_run, circuit=done.circuit, row=SKIPPED)
                continue
            self.launch(slot, task)

    def pick(self, slot: int) -> Task:
        """The first queued job of the model this slot holds, else of a model no other worker holds, else the
        first job."""
        held = self.holds.get(slot)
        others = {g for s, g in self.holds.items() if s != slot}
        for rule in (lambda t: t.planned.group == held, lambda t: t.planned.group not in others):
            for task in self.queue:
                if rule(task):
                    self.queue.remove(task)
                    return task
        return self.queue.popleft()

    def launch(self, slot: int, task: Task) -> None:
        task.attempts += 1
        res = task.planned.resolved
        run_key = job_key(task.config, res.model.weights_hash if res.model else None,
                          res.dataset.content_hash if res.dataset else None, res.code_version)
        self.ledger.update_sweep_job(self.sweep_id, task.planned.key, status="running", attempt=True)
        run_id = None
        if self.ledger.single_writer:
            try:
                self.ledger.check_name(task.name)
                run_id = self.ledger.start(task.config, res.model, res.dataset, sweep_id=self.sweep_id,
                                           code_version=res.code_version)
            except Exception as err:  # a taken name, a catalog that refuses the run: the job fails here
                self.idle.insert(0, slot)
                self.end(task, FAILED, error=_line(err))
                return
        item = WorkItem(task.config, None if self.ledger.single_writer else task.name, self.sweep_id,
                        self.options.job_timeout)
        deadline = None
        if self.options.job_timeout is not None:
            deadline = time.monotonic() + self.options.job_timeout + self.options.kill_grace_s
        self.flights[self.pool.call(slot, "run", item)] = Flight(slot, task, run_id, run_key, deadline)
        self.holds[slot] = task.planned.group
        self.events.started(task.planned.job, task.attempts, slot)

    # -- results -------------------------------------------------------------------------------------------
    def collect(self, call: Call) -> None:
        """Act on a call that came back. Its flight is dropped only once that is done: stopped half-way (Ctrl-C),
        the call is still the driver's to end."""
        flight = self.flights[call]
        if flight.task is None:
            self.ping_back(call, flight)
        else:
            self.job_back(call, flight)
        del self.flights[call]

    def ping_back(self, call: Call, flight: Flight) -> None:
        """Is the restarted worker back? Then it is idle (and holds no model); else it is gone for good."""
        try:
            self.pool.value(call)
            self.idle.append(flight.slot)
        except WorkerLost:
            self.holds.pop(flight.slot, None)

    def job_back(self, call: Call, flight: Flight) -> None:
        try:
            report: JobReport = self.pool.value(call)
        except WorkerLost as err:
            self.worker_lost(flight, str(err))
            return
        except CallCancelled:
            report = JobReport(INTERRUPTED, time.monotonic() - flight.began, error="interrupted (the sweep was stopped)")
        except Exception as err:  # the worker's own code failed, not the job's: one line, no retry
            report = JobReport(FAILED, time.monotonic() - flight.began, error=_line(err))
        self.idle.append(flight.slot)
        self.settle(flight, report)

    def settle(self, flight: Flight, report: JobReport) -> None:
        task = flight.task
        assert task is not None
        if report.status == SUCCEEDED:
            self.succeeded(flight, report)
            return
        if flight.run_id is not None:  # SQLite: the driver records how the run ended
            self.ledger.fail(flight.run_id, "interrupted" if report.status == INTERRUPTED else "failed",
                             report.error or report.status)
        run_id = flight.run_id or report.run_id
        if report.status == INTERRUPTED:
            self.end(task, "pending", run_id=run_id, error="interrupted", row="pending")
        elif report.status == OOM:
            self.out_of_memory(task, report.error or "out of memory", run_id)
        else:
            self.end(task, FAILED, run_id=run_id, error=report.error, seconds=report.seconds)

    def succeeded(self, flight: Flight, report: JobReport) -> None:
        task = flight.task
        assert task is not None
        run_id, circuit = report.run_id, report.circuit
        if flight.run_id is not None:
            try:
                record = self.ledger.finish(flight.run_id, report.result, task.name)
            except Exception as err:  # e.g. the name was taken meanwhile: the run fails, nothing half-saved
                self.ledger.fail(flight.run_id, "failed", _line(err))
                self.end(task, FAILED, run_id=flight.run_id, error=_line(err), seconds=report.seconds)
                return
            run_id, circuit = flight.run_id, getattr(record, "name", None)
        self.end(task, SUCCEEDED, run_id=run_id, circuit=circuit, seconds=report.seconds)

    def out_of_memory(self, task: Task, error: str, run_id: Optional[int]) -> None:
        if task.attempts > self.options.retries:
            self.end(task, FAILED, run_id=run_id, error=f"gave up after {task.attempts} attempts: {error}")
            return
        smaller = halve_batch(task.config)
        if smaller is not None:
            option = next(n for n in BATCH_OPTIONS if n in smaller.settings and smaller.settings[n] is not None)
            note = f"{error}; retrying with {option}={smaller.settings[option]}"
            task.config = smaller
        elif not task.oom_retried:
            note = f"{error}; {task.config.method} has no batch option to halve, retrying once as it was"
            task.oom_retried = True
        else:
            self.end(task, FAILED, run_id=run_id, error=error)
            return
        self.retry(task, note, run_id)

    def worker_lost(self, flight: Flight, why: str) -> None:
        """The worker died under a job: its run is lost (or failed, when the driver killed it for its budget),
        the job is retried elsewhere, and the worker pinged until Ray has restarted it."""
        task = flight.task
        assert task is not None
        self.holds.pop(flight.slot, None)
        self.flights[self.pool.call(flight.slot, "ping")] = Flight(flight.slot)
        if flight.killed:
            error = f"exceeded its wall-clock budget of {self.options.job_timeout:g} s (its worker was killed)"
            self.end_runs(flight, "failed", error)
            self.end(task, FAILED, run_id=flight.run_id, error=error)
            return
        error = f"its worker died ({why})"
        self.end_runs(flight, "lost", error)
        if self.stopped:
            self.end(task, "pending", run_id=flight.run_id, error="interrupted", row="pending")
        else:
            self.retry(task, error, flight.run_id)

    def end_runs(self, flight: Flight, status: str, error: str) -> None:
        if flight.run_id is not None:
            self.ledger.fail(flight.run_id, status, error)
        elif flight.run_key is not None:
            self.ledger.end_running_runs(self.sweep_id, [flight.run_key], status, error)

    def retry(self, task: Task, error: str, run_id: Optional[int]) -> None:
        if task.attempts > self.options.retries:
            self.end(task, FAILED, run_id=run_id, error=f"gave up after {task.attempts} attempts: {error}")
            return
        self.ledger.update_sweep_job(self.sweep_id, task.planned.key, status="pending", error=error, run_id=run_id)
        self.queue.append(task)

    def end(self, task: Task, status: str, *, run_id: Optional[int] = None, circuit: Optional[str] = None,
            error: Optional[str] = None, seconds: float = 0.0, row: Optional[str] = None) -> None:
        self.ledger.update_sweep_job(self.sweep_id, task.planned.key, status=row or status, error=error,
                                     run_id=run_id)
        end = JobEnd(task.planned.job, status, task.planned.key, run_id, circuit, error, task.attempts, seconds)
        self.ends.append(end)
        self.events.ended(end)

    # -- budgets, lost workers, stopping --------------------------------------------------------------------
    def enforce_deadlines(self) -> None:
        now = time.monotonic()
        for flight in self.flights.values():
            if flight.deadline is not None and now > flight.deadline and not flight.killed:
                flight.killed = True
                self.pool.kill(flight.slot)

    def give_up(self, error: str) -> None:
        while self.queue:
            self.end(self.queue.popleft(), FAILED, error=error)

    def stop(self, err: KeyboardInterrupt) -> None:
        """Ctrl-C or SIGTERM (see the module docstring, step 5)."""
        self.stopped = _why(err)
        jobs = {c: f for c, f in self.flights.items() if f.task is not None}
        for call in jobs:
            self.pool.cancel(call)
        until = time.monotonic() + self.options.stop_grace_s
        try:
            while any(c in self.flights for c in jobs) and time.monotonic() < until:
                for call in self.pool.ready([c for c in jobs if c in self.flights], timeout=0.5):
                    self.collect(call)
        except KeyboardInterrupt:  # asked twice: stop waiting
            pass
        for flight in list(self.flights.values()):
            if flight.task is None:
                continue
            self.pool.kill(flight.slot)
            self.end_runs(flight, "interrupted", f"interrupted ({self.stopped}; the sweep was stopped)")
            self.end(flight.task, "pending", run_id=flight.run_id, error="interrupted", row="pending")
        self.flights.clear()
        for task in self.queue:
            self.ends.append(JobEnd(task.planned.job, "pending", task.planned.key, attempts=task.attempts))
        self.queue.clear()


def _why(err: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(err, Terminated) else "Ctrl-C"


def _line(err: BaseException) -> str:
    from discovery.pipeline import one_line

    return one_line(err)
