"""Covers: the sweep driver's bookkeeping with an in-process worker (no Ray): each job once, reruns that do no
work, a SIGKILLed run marked lost and re-run, out-of-memory retries with a halved batch, wall-clock budgets,
Ctrl-C, jobs that cannot run; ``circuits sweep run/status/list`` and dry runs of the shipped specs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import discovery.methods.eap as eap_module
from catalog import Catalog
from cli.main import cli
from discovery.sweeps.pools import LocalPool
from discovery.sweeps.runner import SweepOptions, SweepSummary, run_sweep
from discovery.sweeps.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
TWO_JOBS = """
name = "two"
[[grid]]
models = "toy"
tasks = "digits"
n_prompts = 8
[grid.methods.eap]
threshold = [0.05, 0.1]
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def sweep(spec: Path, url: str, worker: Any, **options: Any) -> SweepSummary:
    with Catalog(url) as catalog:
        pool = LocalPool(None if catalog.single_writer else catalog.worker_catalog(), worker=worker)
        return run_sweep(load_spec(spec), catalog, pool, options=SweepOptions(**options))


def runs(url: str) -> list[Any]:
    with Catalog(url, mode="read") as catalog:
        return catalog.runs()


def cli_run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch, toy_worker: Any) -> None:
    """``circuits sweep run`` with the in-process worker standing in for Ray's (the CLI around the driver)."""
    import discovery.sweeps.pools as pools

    def pool(address: Any = None, *, recorder: Any = None, **kw: Any) -> LocalPool:
        return LocalPool(recorder, worker=toy_worker)

    monkeypatch.setattr(pools, "RayPool", pool)
    monkeypatch.setattr(pools, "LocalPool", lambda recorder=None: LocalPool(recorder, worker=toy_worker))


@pytest.mark.slow
def test_each_job_runs_once_and_a_rerun_does_no_work(db_url: str, toy_worker: Any, tmp_path: Path) -> None:
    spec = write(tmp_path, TWO_JOBS)
    first = sweep(spec, db_url, toy_worker)
    assert [e.status for e in first.ends] == ["succeeded", "succeeded"] and first.stopped is None
    done = runs(db_url)
    assert [r.status for r in done] == ["succeeded", "succeeded"]
    assert {r.job_key for r in done} == {e.key for e in first.ends} and {r.sweep_id for r in done} == {first.sweep_id}
    with Catalog(db_url, mode="read") as catalog:
        rows = catalog.sweep_jobs(first.sweep_id)
        assert [(r.status, r.attempts, r.run_id) for r in rows] == [("succeeded", 1, e.run_id) for e in first.ends]
        assert {c.name for c in catalog.circuits()} == {e.circuit for e in first.ends}

    again = sweep(spec, db_url, toy_worker)
    assert [e.status for e in again.ends] == ["skipped", "skipped"]
    assert [e.run_id for e in again.ends] == [e.run_id for e in first.ends]
    assert len(runs(db_url)) == 2  # no work
    other = sweep(write(tmp_path, TWO_JOBS.replace('"two"', '"other"'), "other.toml"), db_url, toy_worker)
    assert [e.status for e in other.ends] == ["skipped", "skipped"] and len(runs(db_url)) == 2

    status = json.loads(cli_run("sweep", "status", "two", "--db", db_url, "--json").stdout)
    assert [j["status"] for j in status["jobs"]] == ["succeeded", "succeeded"] and status["jobs"][0]["circuits"]
    listed = json.loads(cli_run("sweep", "list", "--db", db_url, "--json").stdout)
    assert [(s["name"], s["jobs"]) for s in listed] == [("two", {"succeeded": 2}), ("other", {"skipped": 2})]

    # a job whose circuit was deleted is not done: it runs again, under the same name
    assert cli_run("delete", first.ends[0].circuit, "--db", db_url).exit_code == 0
    third = sweep(spec, db_url, toy_worker)
    assert [e.status for e in third.ends] == ["succeeded", "skipped"]
    assert third.ends[0].circuit == first.ends[0].circuit and len(runs(db_url)) == 3


@pytest.mark.slow
def test_a_sigkilled_run_is_marked_lost_and_run_again_by_the_next_sweep(tmp_path: Path, toy_worker: Any) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    discover = [sys.executable, "-m", "cli", "discover", "--model", "toy", "--task", "digits", "--method", "acdc",
                "--threshold", "0.05", "--n-prompts", "8", "--db", url]
    proc = subprocess.Popen(discover, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):  # the run row appears once the model is loaded and the prompts drawn
            if (tmp_path / "c.db").exists() and [r for r in _try_runs(url) if r.status == "running"]:
                break
            assert proc.poll() is None, "discover ended before it could be killed"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    [killed] = runs(url)
    assert killed.status == "running"  # what a SIGKILL leaves: nobody said how the run ended
    time.sleep(1.5)
    spec = write(tmp_path, '[[job]]\nmodel = "toy"\ntask = "digits"\nmethod = "acdc"\nthreshold = 0.05\n'
                           'n_prompts = 8\n')
    summary = sweep(spec, url, toy_worker, lost_after=1.0)
    assert summary.lost_runs == (killed.id,)
    [end] = summary.ends
    assert end.status == "succeeded"
    lost, redone = runs(url)
    assert (lost.status, redone.status) == ("lost", "succeeded") and "no heartbeat" in (lost.error or "")
    assert lost.job_key == redone.job_key == end.key  # the sweep's job is the killed discover's configuration


def _try_runs(url: str) -> list[Any]:
    from catalog.errors import CatalogError

    try:
        return runs(url)
    except CatalogError:  # the catalog is still being created
        return []


@pytest.fixture
def flaky_eap(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """eap that fails as told on its first calls (each item: an exception to raise, or None to run)."""
    real, plan = eap_module.eap, []

    def eap(setup: Any, **kw: Any) -> Any:
        failure = plan.pop(0) if plan else None
        if failure is not None:
            raise failure
        return real(setup, **kw)

    monkeypatch.setattr(eap_module, "eap", eap)
    return plan


def test_out_of_memory_is_retried_with_a_halved_batch(tmp_path: Path, toy_worker: Any, flaky_eap: list[Any]) -> None:
    import torch

    url = f"sqlite:///{tmp_path / 'c.db'}"
    flaky_eap.append(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    spec = write(tmp_path, TWO_JOBS.replace("[0.05, 0.1]", "0.05"))
    [end] = sweep(spec, url, toy_worker).ends
    assert (end.status, end.attempts) == ("succeeded", 2)
    oom, ok = runs(url)
    assert oom.status == "failed" and "out of memory" in (oom.error or "")
    assert (oom.settings["settings"]["batch_size"], ok.settings["settings"]["batch_size"]) == (None, 4)
    assert [e.status for e in sweep(spec, url, toy_worker).ends] == ["skipped"]  # done, though under its own key


def test_a_job_past_its_budget_fails_once_and_saves_nothing(tmp_path: Path, toy_worker: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def stuck(setup: Any, *, progress: Any, **kw: Any) -> Any:
        while True:
            progress(0, 1)
            time.sleep(0.05)

    monkeypatch.setattr(eap_module, "eap", stuck)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    [end] = sweep(write(tmp_path, TWO_JOBS.replace("[0.05, 0.1]", "0.05")), url, toy_worker, job_timeout=0.5).ends
    assert (end.status, end.attempts) == ("failed", 1) and "wall-clock budget of 0.5 s" in (end.error or "")
    [run] = runs(url)
    assert run.status == "failed" and run.circuit_names == ()


def test_ctrl_c_interrupts_the_running_job_and_the_next_run_resumes(tmp_path: Path, toy_worker: Any,
                                                                    flaky_eap: list[Any]) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    flaky_eap.append(KeyboardInterrupt())
    spec = write(tmp_path, TWO_JOBS)
    stopped = sweep(spec, url, toy_worker)
    assert stopped.stopped == "Ctrl-C" and [e.status for e in stopped.ends] == ["pending", "pending"]
    [run] = runs(url)
    assert run.status == "interrupted" and run.circuit_names == ()
    with Catalog(url, mode="read") as catalog:
        assert [j.status for j in catalog.sweep_jobs(stopped.sweep_id)] == ["pending", "pending"]
        assert catalog.circuits() == []
    resumed = sweep(spec, url, toy_worker)
    assert [e.status for e in resumed.ends] == ["succeeded", "succeeded"]


@pytest.mark.slow
def test_cli_runs_a_sweep_and_says_what_failed(tmp_path: Path, no_ray: None) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    spec = write(tmp_path, TWO_JOBS + '[[job]]\nmodel = "toy"\ntask = "digits"\nmethod = "eap"\nn_prompts = 8\n'
                                      "positions = [40]\n")
    result = cli_run("sweep", "run", str(spec), "--db", url, "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"succeeded": 2, "skipped": 0, "failed": 1, "pending": 0}
    [failed] = [j for j in summary["jobs"] if j["status"] == "failed"]
    assert "--positions: position 40 is outside prompts" in failed["error"]
    assert result.stderr.strip().splitlines()[-1] == "1 of 3 jobs failed (circuits sweep status two)"
    table = cli_run("sweep", "status", "two", "--db", url).stdout
    assert "failed" in table and "succeeded" in table
    dry = json.loads(cli_run("sweep", "run", str(spec), "--db", url, "--dry-run", "--json").stdout)
    assert [j["state"] for j in dry["jobs"]] == ["done", "done", "unresolved"]


def test_cli_ctrl_c_exits_130(tmp_path: Path, no_ray: None, flaky_eap: list[Any]) -> None:
    flaky_eap.append(KeyboardInterrupt())
    result = cli_run("sweep", "run", str(write(tmp_path, TWO_JOBS)), "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert result.exit_code == 130 and result.stderr.strip().splitlines()[-1] == "interrupted"
    assert "2 left pending (Ctrl-C)" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["missing.toml"], "cannot read the sweep spec"),
    (["SPEC", "--gpus-per-job", "-1"], "--gpus-per-job"),
    (["SPEC", "--job-timeout", "0"], "--job-timeout"),
    (["SPEC", "--address", "nonsense"], "--address"),
])
def test_cli_refuses_bad_input_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    spec = write(tmp_path, TWO_JOBS)
    args = [str(spec) if a == "SPEC" else str(tmp_path / a) if a.endswith(".toml") else a for a in args]
    result = cli_run("sweep", "run", *args, "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "c.db").exists()


def test_cli_refuses_a_bad_circuit_name_before_anything_runs(tmp_path: Path) -> None:
    spec = write(tmp_path, '[[job]]\nmodel = "toy"\ntask = "digits"\nmethod = "eap"\nname = "../x"\n')
    result = cli_run("sweep", "run", str(spec), "--dry-run")
    assert result.exit_code == 1 and "may not hold /" in result.stderr


@pytest.mark.slow
def test_dry_runs_of_the_shipped_specs_list_every_job_and_write_nothing(tmp_path: Path, no_ray: None) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    toy = json.loads(cli_run("sweep", "run", str(ROOT / "sweeps" / "toy.toml"), "--dry-run", "--json", "--db", url
                             ).stdout)
    assert len(toy["jobs"]) == len(load_spec(ROOT / "sweeps" / "toy.toml").jobs)
    assert all(j["state"] == "run" and len(j["key"]) == 64 for j in toy["jobs"])
    assert len({j["key"] for j in toy["jobs"]}) == len(toy["jobs"])
    seqcont = json.loads(cli_run("sweep", "run", str(ROOT / "sweeps" / "seqcont.toml"), "--dry-run", "--json",
                                 "--db", url).stdout)
    assert len(seqcont["jobs"]) == 70 and all(len(j["config_key"]) == 64 for j in seqcont["jobs"])
    for job in seqcont["jobs"]:  # GPT-2's weights (and a GPU) are not here: the key says what it needs
        assert job["state"] == "run" or (job["key"] is None and job["status"].startswith("key unknown here: "))
    assert not (tmp_path / "c.db").exists()
