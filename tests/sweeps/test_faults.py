"""Covers: the driver's fault handling against a scripted pool (no model, no Ray): a worker that dies is retried
elsewhere up to --retries, a job that hangs past its budget has its worker killed and fails once, out-of-memory
halves the batch each time, every worker gone fails what is left; every run ends recorded, none left running."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from catalog import Catalog
from discovery.config import job_key
from discovery.results import DatasetSpec, ModelSpec
from discovery.sweeps.pools import Call, WorkerLost
from discovery.sweeps.runner import SweepOptions, run_sweep
from discovery.sweeps.spec import expand
from discovery.sweeps.worker import FAILED, OOM, JobReport, Resolved, WorkItem

MODEL = ModelSpec("toy", "toy", n_layers=2, n_heads=2, d_model=8, weights_hash="w" * 64)


class ScriptedPool:
    """Workers that do what ``script`` says for each run call, in order: ``die`` (the process is lost), ``hang``
    (never answers until killed), ``oom``, ``fail``; resolve and ping answer at once."""

    def __init__(self, script: Sequence[str], workers: int = 2, dead_slots: Sequence[int] = ()):
        self.script, self.workers, self.dead = list(script), workers, set(dead_slots)
        self.items: list[WorkItem] = []
        self.killed: list[int] = []
        self.calls: list[Call] = []

    def capacity(self) -> int:
        return self.workers

    def start(self, n_workers: int) -> int:
        return n_workers

    def call(self, slot: int, method: str, *args: Any) -> Call:
        call = Call(slot, method, ref=args)
        self.calls.append(call)
        if method == "resolve":
            call.ref, call.done = [_resolved(c) for c in args[0]], True
        elif method == "ping":
            call.done = True
            if slot in self.dead:
                call.error = WorkerLost("gone for good")
        else:
            self.items.append(args[0])
            action = self.script.pop(0)
            call.done = action != "hang"
            call.error = WorkerLost("killed") if action == "die" else None
            call.ref = {"oom": JobReport(OOM, 0.1, error="OutOfMemoryError: CUDA out of memory"),
                        "fail": JobReport(FAILED, 0.1, error="TaskError: no")}.get(action)
        return call

    def ready(self, calls: Sequence[Call], timeout: float) -> list[Call]:
        done = [c for c in calls if c.done]
        if not done:
            time.sleep(min(timeout, 0.05))
        return done

    def value(self, call: Call) -> Any:
        if call.error is not None:
            raise call.error
        return call.ref

    def cancel(self, call: Call) -> None:
        return None

    def kill(self, slot: int) -> None:
        self.killed.append(slot)
        for call in self.calls:
            if call.slot == slot and not call.done:
                call.done, call.error = True, WorkerLost("killed by the driver")

    def close(self) -> None:
        return None


def _resolved(config: Any) -> Resolved:
    dataset = DatasetSpec(config.task, config.corruption, config.n_prompts, config.seed, "d" * 64, seq_len=10)
    return Resolved(config, job_key(config, MODEL.weights_hash, dataset.content_hash, "test"), "test", MODEL, dataset)


def one_job(method: str = "acdc", **settings: Any) -> Any:
    return expand({"job": [{"model": "toy", "task": "digits", "method": method, "n_prompts": 8, **settings}]})


def sweep(tmp_path: Path, spec: Any, pool: ScriptedPool, **options: Any) -> tuple[Any, list[Any]]:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Catalog(url) as catalog:
        summary = run_sweep(spec, catalog, pool, options=SweepOptions(poll_s=0.05, **options))
        return summary, catalog.runs()


def test_a_dead_worker_s_job_is_retried_until_the_retries_are_spent(tmp_path: Path) -> None:
    summary, runs = sweep(tmp_path, one_job(), ScriptedPool(["die", "die", "die"]), retries=2)
    [end] = summary.ends
    assert (end.status, end.attempts) == ("failed", 3)
    assert end.error.startswith("gave up after 3 attempts: its worker died (killed)")
    assert [r.status for r in runs] == ["lost"] * 3 and all("its worker died" in r.error for r in runs)


def test_a_hanging_job_is_killed_at_its_budget_and_fails_once(tmp_path: Path) -> None:
    pool = ScriptedPool(["hang"])
    summary, runs = sweep(tmp_path, one_job(), pool, job_timeout=0.2, kill_grace_s=0.1)
    [end] = summary.ends
    assert pool.killed == [0] and (end.status, end.attempts) == ("failed", 1)
    assert "wall-clock budget of 0.2 s (its worker was killed)" in end.error
    [run] = runs
    assert run.status == "failed" and "wall-clock budget" in run.error


def test_out_of_memory_halves_the_batch_each_time(tmp_path: Path) -> None:
    pool = ScriptedPool(["oom", "oom", "oom"])
    summary, runs = sweep(tmp_path, one_job(max_batch=64), pool, retries=2)
    assert [i.config.settings["max_batch"] for i in pool.items] == [64, 32, 16]
    [end] = summary.ends
    assert (end.status, end.error) == ("failed", "gave up after 3 attempts: OutOfMemoryError: CUDA out of memory")
    assert [r.status for r in runs] == ["failed"] * 3


def test_a_job_that_fails_by_itself_is_not_retried(tmp_path: Path) -> None:
    summary, runs = sweep(tmp_path, one_job(), ScriptedPool(["fail"]))
    [end] = summary.ends
    assert (end.status, end.attempts, end.error) == ("failed", 1, "TaskError: no")
    assert [(r.status, r.error) for r in runs] == [("failed", "TaskError: no")]


def test_when_every_worker_is_gone_what_is_left_fails(tmp_path: Path) -> None:
    spec = expand({"job": [{"model": "toy", "task": t, "method": "acdc", "n_prompts": 8} for t in ("digits", "months")]})
    summary, runs = sweep(tmp_path, spec, ScriptedPool(["die", "die", "die"], workers=1, dead_slots=[0]), retries=5)
    assert [e.status for e in summary.ends] == ["failed", "failed"]
    assert all("no worker left" in e.error for e in summary.ends)
    assert [r.status for r in runs] == ["lost"]
