"""Catalog store timings on SQLite and (with CIRCUITS_TEST_POSTGRES_URL or --pg URL) PostgreSQL.

    .venv/bin/python benchmarks/catalog_bench.py [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]

Measures, each as the median of a few repeats:
  * saving one discovered circuit with every edge of GPT-2 small scored (ComponentGraph(ModelShape(12, 12)),
    32,491 edges; ~300 kept), session commit included            target < 1 s on SQLite
  * loading it back, all scored edges and kept-only
  * overlap of 5 such circuits: load their kept edges and compare   target < 100 ms
    (catalog.compare.overlap at edge level when present, else a set intersection)
  * list_circuits over 1,000 circuits                               target < 200 ms
and, with --scale N (default 10,000), graph questions over N stored circuits of KEPT_EDGES kept edges each (a
sweep's worth; only kept edges are stored, as the queries read only those):
  * holds a9.1                                                      target < 100 ms
  * contains 5 edges                                                target < 300 ms
  * similar, nodes and edges, plain and weighted                    target < 2 s
  * contains a path through 3 nodes                                 (no target)
On PostgreSQL each run uses a fresh schema, dropped afterwards, and the scale rows run after VACUUM ANALYZE, as
autovacuum leaves a table after a bulk insert.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from catalog import queries
from catalog.db import connect, session_scope
from catalog.records import EdgeRecord, NewCircuit, NodeRecord
from discovery.graph import ComponentGraph, ModelShape

GPT2_EDGES = ComponentGraph(ModelShape(12, 12)).edges  # built once: the property rebuilds 32k edges per call
KEPT_EDGES = 300
N_LISTED = 1_000


_BASE = random.Random(-1)
BASE_SCORES = [_BASE.gauss(0.0, 1.0) for _ in GPT2_EDGES]


def discovered(name: str, seed: int) -> NewCircuit:
    """A circuit as a run stores it: every edge scored, the top KEPT_EDGES by |score| kept. Scores share a
    common part across seeds, so five such circuits overlap as runs of one task do."""
    rng = random.Random(seed)
    edges = GPT2_EDGES
    scores = [b + 0.5 * rng.gauss(0.0, 1.0) for b in BASE_SCORES]
    cut = sorted((abs(s) for s in scores), reverse=True)[KEPT_EDGES - 1]
    kept = [abs(s) >= cut for s in scores]
    keys = {"embed", "logits"} | {n.key for e, k in zip(edges, kept) if k for n in (e.src, e.dst)}
    return NewCircuit(
        name=name,
        model="gpt2",
        task="ioi",
        source="discovered",
        nodes=tuple(NodeRecord.from_key(k) for k in keys),
        edges=tuple(EdgeRecord.from_edge(e, s, k) for e, s, k in zip(edges, scores, kept)),
        edges_known=True,
        method="eap",
        threshold=cut,
    )


def small(name: str, seed: int) -> NewCircuit:
    rng = random.Random(seed)
    chosen = rng.sample(GPT2_EDGES, 40)
    keys = {"embed", "logits"} | {n.key for e in chosen for n in (e.src, e.dst)}
    return NewCircuit(
        name=name,
        model=rng.choice(["gpt2", "pythia-70m"]),
        task=rng.choice(["ioi", "greater-than", "docstring"]),
        source="published",
        nodes=tuple(NodeRecord.from_key(k) for k in keys),
        edges=tuple(EdgeRecord.from_edge(e, rng.random()) for e in chosen),
        edges_known=True,
    )


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _overlap(records: list[Any]) -> int:
    try:
        from catalog.compare import overlap
    except ImportError:
        sets = [{e.key for e in r.kept_edges} for r in records]
        return len(set.intersection(*sets))
    return len(overlap(records, "edges").shared)


def bench(url: str, repeats: int) -> list[tuple[str, str, str]]:
    engine = connect(url)
    rows: list[tuple[str, str, str]] = []
    try:
        circuits = [discovered(f"eap-{i}", seed=i) for i in range(5)]
        counter = iter(range(10**6))

        def save() -> None:
            new = circuits[0]
            with session_scope(engine) as s:
                queries.save_circuit(s, NewCircuit(**{**new.__dict__, "name": f"save-{next(counter)}"}))

        t, _ = median_time(save, repeats)
        rows.append((f"save 1 circuit, {len(GPT2_EDGES):,} scored edges", f"{t * 1000:.0f} ms", "< 1 s (SQLite)"))

        for new in circuits:
            with session_scope(engine) as s:
                queries.save_circuit(s, new)

        def load(kept_only: bool) -> Any:
            with session_scope(engine, read_only=True) as s:
                return queries.get_circuit(s, "eap-0", kept_only=kept_only)

        t, _ = median_time(lambda: load(False), repeats)
        rows.append((f"get_circuit, all {len(GPT2_EDGES):,} edges", f"{t * 1000:.0f} ms", "-"))
        t, _ = median_time(lambda: load(True), repeats)
        rows.append(("get_circuit, kept only", f"{t * 1000:.1f} ms", "-"))

        def overlap5(kept_only: bool) -> int:
            with session_scope(engine, read_only=True) as s:
                records = [queries.get_circuit(s, c.name, kept_only=kept_only) for c in circuits]
            return _overlap(records)

        t, shared = median_time(lambda: overlap5(True), repeats)
        rows.append((f"overlap of 5 (kept edges; {shared} shared)", f"{t * 1000:.1f} ms", "< 100 ms"))
        t, _ = median_time(lambda: overlap5(False), max(1, repeats // 2))
        rows.append(("overlap of 5, loading every scored edge", f"{t * 1000:.0f} ms", "-"))

        with session_scope(engine) as s:
            for i in range(N_LISTED - queries.count_circuits(s)):
                queries.save_circuit(s, small(f"listed-{i:04d}", seed=i))

        def listing() -> int:
            with session_scope(engine, read_only=True) as s:
                return len(queries.list_circuits(s))

        t, n = median_time(listing, repeats)
        rows.append((f"list_circuits over {n:,} circuits", f"{t * 1000:.1f} ms", "< 200 ms"))
    finally:
        engine.dispose()
    return rows


def sweep_circuit(name: str, seed: int, pool: list[int]) -> NewCircuit:
    """One of a sweep's circuits: the top KEPT_EDGES of noisy scores over a pool of strong edges (circuits of one
    grid share most of their edges), only kept edges stored."""
    rng = random.Random(seed)
    scores = {i: BASE_SCORES[i] + 0.5 * rng.gauss(0.0, 1.0) for i in pool}
    top = sorted(pool, key=lambda i: -abs(scores[i]))[:KEPT_EDGES]
    keys = {"embed", "logits"} | {n.key for i in top for n in (GPT2_EDGES[i].src, GPT2_EDGES[i].dst)}
    return NewCircuit(
        name=name, model="gpt2", task=rng.choice(["ioi", "digits", "greater-than"]), source="discovered",
        nodes=tuple(NodeRecord.from_key(k) for k in keys),
        edges=tuple(EdgeRecord.from_edge(GPT2_EDGES[i], scores[i]) for i in top), edges_known=True, method="eap",
    )


def bench_scale(url: str, n: int, repeats: int) -> list[tuple[str, str, str]]:
    from catalog.search import containing, similar

    engine = connect(url)
    rows: list[tuple[str, str, str]] = []
    try:
        pool = sorted(range(len(GPT2_EDGES)), key=lambda i: -abs(BASE_SCORES[i]))[:3_000]
        start = time.perf_counter()
        for first in range(0, n, 500):
            with session_scope(engine) as s:
                for i in range(first, min(n, first + 500)):
                    queries.save_circuit(s, sweep_circuit(f"sweep-{i:05d}", i, pool))
        rows.append((f"save {n:,} circuits of {KEPT_EDGES} kept edges", f"{time.perf_counter() - start:.0f} s", "-"))
        if engine.dialect.name == "postgresql":
            # What autovacuum does after a bulk insert: statistics, and the visibility map without which every
            # index-only scan reads the table too (edge-level similar took 3.3 s instead of 0.5 s before it).
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        probe = sweep_circuit("probe", -7, pool)
        with session_scope(engine) as s:
            queries.save_circuit(s, probe)
        five = [e.key for e in probe.edges[:5]]
        path = ["a0.1", "a9.1", "logits"] if any(n.key == "a9.1" for n in probe.nodes) else [
            probe.edges[0].src, probe.edges[0].dst, "logits"]

        def ask(fn: Callable[[Any], Any]) -> Any:
            with session_scope(engine, read_only=True) as s:
                return fn(s)

        t, held = median_time(lambda: ask(lambda s: queries.circuits_holding(s, "a9.1")), repeats)
        rows.append((f"holds a9.1 ({len(held):,} circuits)", f"{t * 1000:.0f} ms", "< 100 ms"))
        t, found = median_time(lambda: ask(lambda s: containing(s, edges=five)), repeats)
        rows.append((f"contains 5 edges ({len(found.circuits):,} circuits)", f"{t * 1000:.0f} ms", "< 300 ms"))
        for level in ("nodes", "edges"):
            for weighted in (False, True):
                t, result = median_time(lambda lv=level, w=weighted: ask(  # type: ignore[misc]
                    lambda s: similar(s, "probe", level=lv, weighted=w)), max(1, repeats // 2))
                label = f"similar, {level}{', weighted' if weighted else ''} ({result.sharing:,} sharing)"
                rows.append((label, f"{t * 1000:.0f} ms", "< 2 s"))
        t, found = median_time(lambda: ask(lambda s: containing(s, path=path)), 1)
        rows.append((f"contains path {','.join(path)} ({len(found.circuits):,})", f"{t * 1000:.0f} ms", "-"))
    finally:
        engine.dispose()
    return rows


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{folder}/bench.db"


@contextmanager
def pg_url(base: str) -> Iterator[str]:
    schema = f"cc_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("CIRCUITS_TEST_POSTGRES_URL"), help="PostgreSQL URL")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=int, default=10_000, help="circuits for the graph questions (0: skip)")
    args = parser.parse_args(argv)
    table: list[tuple[str, str, str, str]] = []
    with sqlite_url() as url:
        table += [("SQLite", *row) for row in bench(url, args.repeats)]
    if args.scale:
        with sqlite_url() as url:
            table += [("SQLite", *row) for row in bench_scale(url, args.scale, args.repeats)]
    if args.pg:
        with pg_url(args.pg) as url:
            table += [("PostgreSQL", *row) for row in bench(url, args.repeats)]
        if args.scale:
            with pg_url(args.pg) as url:
                table += [("PostgreSQL", *row) for row in bench_scale(url, args.scale, args.repeats)]
    headers = ("backend", "operation", "median", "target")
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
