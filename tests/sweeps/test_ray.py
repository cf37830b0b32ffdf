"""Covers: sweeps on a local Ray with 2 CPUs (one Ray session for the module): the issue's grid of 2 tasks x 2
methods x 2 thresholds on the toy model ends with 8 circuits, a rerun does nothing, a worker process killed
mid-sweep still ends with all 8 and no duplicate, and a dry run after shows 8 done."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from click.testing import CliRunner

from catalog import Catalog
from cli.main import cli
from discovery.sweeps.pools import RayPool
from discovery.sweeps.runner import NoEvents, SweepOptions, SweepSummary, run_sweep
from discovery.sweeps.spec import SweepJob, load_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


class KillOnce(NoEvents):
    """Kills the worker process that starts the ``nth`` job, ``after`` seconds into it (a SIGKILL: no goodbye)."""

    def __init__(self, pool: "PidPool", nth: int = 3, after: float = 0.3):
        self.pool, self.nth, self.after, self.seen = pool, nth, after, 0
        self.killed: list[int] = []

    def started(self, job: SweepJob, attempt: int, slot: int) -> None:
        self.seen += 1
        if self.seen == self.nth:
            pid = self.pool.pids[slot]
            threading.Timer(self.after, self._kill, [pid]).start()

    def _kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        self.killed.append(pid)


class PidPool(RayPool):
    """A RayPool that learns its workers' process ids while they are idle (a busy actor answers nothing)."""

    def start(self, n_workers: int) -> int:
        n = super().start(n_workers)
        self.pids = [info["pid"] for info in ray.get([a.ping.remote() for a in self.actors])]
        return n


def sweep(spec: Path, url: str, events: Any = None) -> SweepSummary:
    with Catalog(url) as catalog:
        pool = PidPool(recorder=None if catalog.single_writer else catalog.worker_catalog())
        return run_sweep(load_spec(spec), catalog, pool, options=SweepOptions(), events=events or NoEvents())


def check_eight_circuits(url: str, spec: Path) -> None:
    with Catalog(url, mode="read") as catalog:
        runs = catalog.runs()
        succeeded = [r for r in runs if r.status == "succeeded"]
        assert len(succeeded) == 8 and len({r.job_key for r in succeeded}) == 8  # no job done twice
        assert len(catalog.circuits()) == 8
    dry = CliRunner().invoke(cli, ["sweep", "run", str(spec), "--dry-run", "--address", "auto", "--db", url,
                                   "--json"])
    assert dry.exit_code == 0, dry.output
    assert [j["state"] for j in json.loads(dry.stdout)["jobs"]] == ["done"] * 8


def test_a_grid_of_eight_ends_with_eight_circuits_and_a_rerun_does_nothing(db_url: str, grid_spec: Path) -> None:
    first = sweep(grid_spec, db_url)
    assert first.workers == 2 and [e.status for e in first.ends] == ["succeeded"] * 8, first.ends
    check_eight_circuits(db_url, grid_spec)
    again = sweep(grid_spec, db_url)
    assert [e.status for e in again.ends] == ["skipped"] * 8
    with Catalog(db_url, mode="read") as catalog:
        assert len(catalog.runs()) == 8


def test_a_worker_killed_mid_sweep_still_ends_with_all_eight_and_no_duplicate(db_url: str, grid_spec: Path) -> None:
    url = db_url
    with Catalog(url) as catalog:
        pool = PidPool(recorder=None if catalog.single_writer else catalog.worker_catalog())
        events = KillOnce(pool)
        summary = run_sweep(load_spec(grid_spec), catalog, pool, events=events)
    assert events.killed, "no worker was killed"
    assert [e.status for e in summary.ends] == ["succeeded"] * 8, summary.ends
    assert sum(e.attempts for e in summary.ends) == 9  # the killed job once more, elsewhere
    with Catalog(url, mode="read") as catalog:
        others = [r for r in catalog.runs() if r.status != "succeeded"]
        single_writer = catalog.single_writer
    # SQLite: the driver recorded the run when it sent the job, and marks it lost. PostgreSQL: the worker records
    # its run once the prompts are drawn, so a kill before that leaves no run at all.
    assert len(others) == 1 if single_writer else len(others) <= 1
    assert all(r.status == "lost" and "its worker died" in (r.error or "") for r in others)
    check_eight_circuits(url, grid_spec)
