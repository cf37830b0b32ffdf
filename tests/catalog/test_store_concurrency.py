"""Covers: several processes opening a new SQLite catalog at once and saving circuits at once all succeed
(WAL + BEGIN IMMEDIATE + busy timeout; the first-time init runs under the lock)."""

from __future__ import annotations

import multiprocessing as mp
import queue
import traceback
from pathlib import Path
from typing import Any

from catalog import queries
from catalog.db import connect, head_revision, schema_state, session_scope
from catalog.records import EdgeRecord, NewCircuit, NodeRecord
from discovery.graph import ComponentGraph, ModelShape

WORKERS = 6
SAVES_EACH = 4
SHAPE = ModelShape(3, 4)


def _circuit(name: str) -> NewCircuit:
    graph = ComponentGraph(SHAPE)
    edges = tuple(EdgeRecord.from_edge(e, score=float(i), kept=False) for i, e in enumerate(graph.edges))
    return NewCircuit(name=name, model="toy", task="digits", source="discovered",
                      nodes=(NodeRecord.from_key("a1.2"),), edges=edges, edges_known=True)


def _worker(url: str, index: int, start: Any, errors: Any) -> None:
    try:
        start.wait()
        engine = connect(url)  # all open the not-yet-existing file together
        for k in range(SAVES_EACH):
            with session_scope(engine) as s:
                queries.list_circuits(s)  # read, then write: the pattern deferred BEGIN loses
                queries.save_circuit(s, _circuit(f"w{index}-{k}"))
        engine.dispose()
    except BaseException:
        errors.put(f"worker {index}: {traceback.format_exc()}")


def test_concurrent_first_open_and_saves_from_several_processes_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    context = mp.get_context("fork")
    start = context.Barrier(WORKERS)
    errors = context.Queue()
    workers = [context.Process(target=_worker, args=(url, i, start, errors)) for i in range(WORKERS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    failures = []
    while True:
        try:
            failures.append(errors.get(timeout=0.2))
        except queue.Empty:
            break
    assert not failures, "\n".join(failures)
    assert [w.exitcode for w in workers] == [0] * WORKERS
    assert schema_state(url).revision == head_revision()
    engine = connect(url)
    with session_scope(engine, read_only=True) as s:
        names = [c.name for c in queries.list_circuits(s)]
        assert len(queries.get_circuit(s, "w0-0").edges) == ComponentGraph(SHAPE).n_edges()
    engine.dispose()
    assert names == sorted(f"w{i}-{k}" for i in range(WORKERS) for k in range(SAVES_EACH))
