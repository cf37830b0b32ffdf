"""Covers: several processes or threads first-opening one new catalog and saving to it at once all succeed."""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from catalog import queries
from catalog.db import connect, head_revision, schema_state, session_scope
from catalog.errors import AlreadyExists
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


def test_concurrent_first_open_from_several_threads_creates_the_schema_once(db_url: str) -> None:
    """On PostgreSQL the init lock is an advisory lock; on SQLite it is BEGIN IMMEDIATE."""
    start = threading.Barrier(WORKERS)
    failures: list[str] = []

    def open_and_save(index: int) -> None:
        try:
            start.wait()
            engine = connect(db_url)
            with session_scope(engine) as s:
                queries.save_circuit(s, _circuit(f"t{index}"))
            engine.dispose()
        except BaseException:
            failures.append(traceback.format_exc())

    threads = [threading.Thread(target=open_and_save, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, "\n".join(failures)
    assert schema_state(db_url).revision == head_revision()
    engine = connect(db_url)
    with session_scope(engine, read_only=True) as s:
        assert [c.name for c in queries.list_circuits(s)] == [f"t{i}" for i in range(WORKERS)]
    engine.dispose()


def test_racing_saves_of_one_name_leave_one_circuit_and_say_already_exists(engine: Engine) -> None:
    start = threading.Barrier(WORKERS)
    outcomes: list[str] = []

    def save() -> None:
        start.wait()
        try:
            with session_scope(engine) as s:
                queries.save_circuit(s, _circuit("contested"))
            outcomes.append("saved")
        except AlreadyExists:
            outcomes.append("exists")
        except BaseException:
            outcomes.append(traceback.format_exc())

    threads = [threading.Thread(target=save) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes) == ["exists"] * (WORKERS - 1) + ["saved"]
