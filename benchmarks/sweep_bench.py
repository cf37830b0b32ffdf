"""A sweep against the same jobs typed as ``circuits discover`` calls, one after another.

    .venv/bin/python benchmarks/sweep_bench.py [--spec sweeps/toy.toml] [--jobs N] [--workers 2]

Four ways to run the jobs of a spec (each into a fresh SQLite catalog, so that nothing is skipped), every worker
on one torch thread (on a shared, oversubscribed machine two threads a process ran several times slower):

  * ``discover``: one ``circuits discover`` process per job, one after another: what a researcher types today;
    every call starts Python, imports torch and loads the model.
  * ``in-process``: the sweep driver with one worker in this process (``LocalPool``, no Ray): the model loaded
    once and held.
  * ``ray-1``: the sweep on a local Ray with one worker of 1 CPU: like ``in-process``, plus Ray.
  * ``ray-W``: the sweep on a local Ray with W workers of 1 CPU each (what ``circuits sweep run`` does here).

Derived: the speed-up from holding the model (``discover`` / ``in-process``: the same jobs one at a time, on the
same threads), Ray's overhead per job ((``ray-1`` - ``in-process`` - Ray's start-up) / jobs), its start-up, and
the speed-up of the sweep as run (``discover`` / ``ray-W``). Writes ``benchmarks/results/sweep.json`` and the
table between the ``sweep-bench`` markers of ``docs/sweeps.md``. Times are wall-clock on whatever else the
machine is doing: the load average is recorded before and after each mode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cpu_name, load_average, write_rows  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "sweep.json"
DOC = ROOT / "docs" / "sweeps.md"
BEGIN, END = "<!-- sweep-bench:begin -->", "<!-- sweep-bench:end -->"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # torch's intra-op threads in each discover process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "toy.toml")
    parser.add_argument("--jobs", type=int, default=None, help="Only the spec's first N jobs.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-doc", action="store_true", help="Do not rewrite the table in docs/sweeps.md.")
    parser.add_argument("--table-only", action="store_true", help="Rewrite the table from --out's results; run nothing.")
    args = parser.parse_args()
    if args.table_only:
        [result] = json.loads(args.out.read_text())
        print(markdown(result))
        if not args.no_doc:
            write_table(markdown(result))
        return

    from discovery.sweeps.spec import load_spec

    spec = load_spec(args.spec)
    jobs = spec.jobs[: args.jobs] if args.jobs else spec.jobs
    spec = type(spec)(spec.name, tuple(jobs), spec.source)
    print(f"{len(jobs)} jobs of {args.spec.name}; {cpu_name()}, load {load_average()}", flush=True)
    modes = [("in-process", lambda db: sweep_local(spec, db)), ("ray-1", lambda db: sweep_ray(spec, db, 1)),
             (f"ray-{args.workers}", lambda db: sweep_ray(spec, db, args.workers)),
             ("discover", lambda db: discover_calls(jobs, db))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, fn in modes:
            before = load_average()
            began = time.perf_counter()
            detail = fn(f"sqlite:///{Path(tmp) / (mode + '.db')}")
            row = {"mode": mode, "jobs": len(jobs), "seconds": round(time.perf_counter() - began, 2), **detail,
                   "load_before": before, "load_after": load_average()}
            print(json.dumps({k: v for k, v in row.items() if k != "job_seconds"}), flush=True)
            rows.append(row)
    summary = derive(rows, args.workers)
    result = {"spec": str(args.spec.relative_to(ROOT)) if args.spec.is_relative_to(ROOT) else str(args.spec),
              "jobs": len(jobs), "machine": cpu_name(), "code_version": _code_version(), "modes": rows,
              "derived": summary}
    write_rows(args.out, [result])
    table = markdown(result)
    print(table)
    if not args.no_doc:
        write_table(table)


def sweep_local(spec: Any, db: str) -> dict[str, Any]:
    from catalog import Catalog
    from discovery.sweeps.pools import LocalPool
    from discovery.sweeps.runner import run_sweep
    from discovery.sweeps.worker import SweepWorker

    with Catalog(db) as catalog:
        summary = run_sweep(spec, catalog, LocalPool(worker=SweepWorker(threads=1)))
    return _ends(summary)


def sweep_ray(spec: Any, db: str, workers: int) -> dict[str, Any]:
    from catalog import Catalog
    from discovery.sweeps.pools import RayPool
    from discovery.sweeps.runner import run_sweep

    began = time.perf_counter()
    pool = RayPool(cpus=1.0, max_workers=workers)
    ray_start = time.perf_counter() - began
    with Catalog(db) as catalog:
        summary = run_sweep(spec, catalog, pool)
    return {**_ends(summary), "ray_start_s": round(ray_start, 2), "workers": summary.workers}


def discover_calls(jobs: Any, db: str) -> dict[str, Any]:
    """Each job as the ``circuits discover`` command line a researcher would type for it."""
    seconds, failed = [], 0
    for job in jobs:
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "cli", "discover", *discover_args(job.config), "--db", db],
                              cwd=ROOT, capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
        seconds.append(round(time.perf_counter() - began, 2))
        failed += done.returncode != 0
        if done.returncode:
            print(f"  job {job.index} failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
    return {"failed": failed, "job_seconds": seconds}


def discover_args(config: Any) -> list[str]:
    from discovery.methods import get_method

    args = ["--model", config.model, "--task", config.task, "--method", config.method, "--metric", config.metric,
            "--ablation", config.ablation, "--corruption", config.corruption, "--n-prompts", str(config.n_prompts),
            "--seed", str(config.seed), "--device", config.device, "--dtype", config.dtype]
    if config.correctness_filter is None:
        args.append("--no-filter")
    if config.positions is not None:
        args += ["--positions", ",".join(map(str, config.positions))]
    options = get_method(config.method).options
    defaults = get_method(config.method).resolve({})
    for name, value in config.settings.items():
        if value is None or value == defaults.get(name):
            continue
        option = options.get(name)
        assert option is not None
        if isinstance(value, bool):
            args.append(option.cli_flag if value else f"--no-{option.cli_flag[2:]}")
        else:
            args += [option.cli_flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return args


def _ends(summary: Any) -> dict[str, Any]:
    return {"failed": summary.count("failed"), "succeeded": summary.count("succeeded"),
            "job_seconds": [round(e.seconds, 2) for e in summary.ends]}


def derive(rows: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    by = {r["mode"]: r for r in rows}
    n = by["discover"]["jobs"]
    local, ray1, rayw, seq = (by[m]["seconds"] for m in ("in-process", "ray-1", f"ray-{workers}", "discover"))
    return {
        "hold_model_speedup": round(seq / local, 2),
        "ray_start_s": by["ray-1"]["ray_start_s"],
        "ray_overhead_per_job_s": round((ray1 - local - by["ray-1"]["ray_start_s"]) / n, 3),
        "sweep_speedup": round(seq / rayw, 2),
        "discover_per_job_s": round(seq / n, 2),
        "in_process_per_job_s": round(local / n, 2),
    }


def markdown(result: dict[str, Any]) -> str:
    d = result["derived"]
    lines = [f"{result['jobs']} jobs of `{result['spec']}`, {result['machine']}, one torch thread a worker, code "
             f"{result['code_version']}; wall-clock seconds on a machine shared with other engineers' work (load "
             "averages 1/5/15 min before and after each mode):",
             "", "| mode | jobs | seconds | s/job | failed | load before | load after |", "|---|---|---|---|---|---|---|"]
    for r in result["modes"]:
        lines.append(f"| {r['mode']} | {r['jobs']} | {r['seconds']:.1f} | {r['seconds'] / r['jobs']:.2f} | "
                     f"{r['failed']} | {_load(r['load_before'])} | {_load(r['load_after'])} |")
    lines += ["", f"- holding the model (in-process sweep against one `circuits discover` per job, both one job "
                  f"at a time): **{d['hold_model_speedup']}x** ({d['discover_per_job_s']} s against "
                  f"{d['in_process_per_job_s']} s a job)",
              _overhead_line(d),
              f"- the sweep as `circuits sweep run` runs it here against typed `discover` calls: "
              f"**{d['sweep_speedup']}x**"]
    return "\n".join(lines)


def _overhead_line(d: dict[str, Any]) -> str:
    overhead = d["ray_overhead_per_job_s"]
    if overhead < 0:
        return (f"- Ray: {d['ray_start_s']} s to start; its cost per job was below what this machine resolves "
                f"(ray-1 came out {-overhead} s a job *faster* than in-process: the other work on the machine moves "
                "the figures more than Ray does)")
    return f"- Ray: {d['ray_start_s']} s to start, then **{overhead} s a job** over the in-process sweep (ray-1)"


def write_table(table: str) -> None:
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        print(f"note: {DOC} has no {BEGIN} ... {END} markers; table not written there")
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    os.replace(tmp, DOC)


def _load(values: Any) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "-"


def _code_version() -> str:
    from discovery.run import code_version

    return code_version()


if __name__ == "__main__":
    main()
