"""Covers: run lifecycle (start, finish, fail), save_result for edge and node results, the Catalog recorder,
visibility."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from sqlalchemy import Engine, update

from catalog import queries
from catalog.api import Catalog
from catalog.db import session_scope
from catalog.errors import AlreadyExists, CatalogError, InvalidCircuit, NotFound
from catalog.tables import RunRow
from discovery.config import make_config
from discovery.graph import ComponentGraph, Granularity, ModelShape, head, mlp
from discovery.results import DatasetSpec, DiscoveryResult, ModelSpec, ScoredEdge, ScoredNode

SHAPE = ModelShape(2, 2)
MODEL = ModelSpec(
    name="toy",
    source="local/toy",
    n_layers=2,
    n_heads=2,
    d_model=8,
    weights_hash="sha256:abc",
    versions={"transformer_lens": "4.3"},
    flags={"use_split_qkv_input": True},
)
DATA = DatasetSpec(task="digits", corruption="random", size=16, seed=3, content_hash="sha256:def", filter="lan2023",
                   drawn=20)


def _config(method: str = "eap") -> Any:
    settings = {"top_k": 3} if method == "eap" else {}
    return make_config("toy", "digits", method, n_prompts=20, seed=3, settings=settings)


def _start(session: Any, model: ModelSpec = MODEL, method: str = "eap") -> Any:
    return queries.start_run(session, _config(method), model, DATA, "abc123")


def _edge_result(method: str = "eap") -> DiscoveryResult:
    graph = ComponentGraph(SHAPE)
    keep = {"a0.1->a1.0.v", "a1.0->logits"}
    edges = tuple(
        ScoredEdge(e, score=(math.nan if e.key == "embed->m0" else 0.001 * (i + 1)), kept=e.key in keep)
        for i, e in enumerate(graph.edges)
    )
    nodes = (ScoredNode(head(1, 0), 0.7, True, {"ov": {"copy": 0.5}}), ScoredNode(mlp(1), 0.01, False))
    return DiscoveryResult(config=_config(method), params={"top_k": 3}, model=MODEL, dataset=DATA,
                           granularity=Granularity.QKV, edges=edges, nodes=nodes, threshold=0.05,
                           performance={"kl": 0.1, "odd": math.inf})


def test_a_run_starts_running_and_records_what_made_it(engine: Engine) -> None:
    with session_scope(engine) as s:
        run = _start(s)
    assert (run.status, run.method, run.metric, run.model, run.task) == ("running", "eap", "logit-diff", "toy",
                                                                         "digits")
    assert (run.seed, run.device, run.dtype, run.code_version, run.dataset_hash) == (3, "cpu", "float32", "abc123",
                                                                                   "sha256:def")
    assert run.settings == {**_config().as_dict(), "filter_kept": {"kept": 16, "of": 20}}
    assert run.settings["settings"]["top_k"] == 3 and run.settings["n_prompts"] == 20
    assert run.finished_at is None and run.started_at.tzinfo is None


def test_finishing_a_run_records_status_time_and_error(engine: Engine) -> None:
    with session_scope(engine) as s:
        run = _start(s)
        failed = queries.finish_run(s, run.id, "failed", error="CUDA out of memory\nmore detail")
        assert queries.finish_run(s, run.id, "failed").error == failed.error  # same status again: no-op
        with pytest.raises(CatalogError, match="already finished as failed"):
            queries.finish_run(s, run.id, "succeeded")
        with pytest.raises(CatalogError, match="finishes as one of succeeded, failed, interrupted"):
            queries.finish_run(s, run.id, "done")
    assert (failed.status, failed.error) == ("failed", "CUDA out of memory\nmore detail")
    assert failed.finished_at is not None and failed.finished_at >= failed.started_at
    with session_scope(engine) as s:
        with pytest.raises(NotFound, match="no run 999"):
            queries.get_run(s, 999)
        assert queries.find_run(s, 999) is None


def test_save_result_of_an_edge_method_keeps_every_score_and_succeeds_the_run(engine: Engine) -> None:
    result = _edge_result()
    with session_scope(engine) as s:
        run = _start(s)
        record = queries.save_result(s, run.id, result, "digits-eap")
    with session_scope(engine, read_only=True) as s:
        got = queries.get_circuit(s, "digits-eap")
        done = queries.get_run(s, run.id)
    assert got == record
    assert (got.source, got.method, got.model, got.task, got.threshold, got.run_id, got.edges_known) == (
        "discovered", "eap", "toy", "digits", 0.05, run.id, True
    )
    assert len(got.edges) == ComponentGraph(SHAPE).n_edges()  # every scored edge, kept or not
    assert [e.key for e in got.kept_edges] == ["a0.1->a1.0.v", "a1.0->logits"]
    assert math.isnan(next(e.score for e in got.edges if e.key == "embed->m0"))
    assert [n.key for n in got.kept_nodes] == ["embed", "a0.1", "a1.0", "logits"]
    assert [(n.key, n.kept, n.score) for n in got.nodes if not n.kept] == [("m1", False, 0.01)]
    assert got.node("a1.0").score == 0.7 and got.node("a1.0").attributes == {"ov": {"copy": 0.5}}
    assert got.performance["odd"] == math.inf
    assert got.metadata["granularity"] == "qkv" and got.metadata["params"] == {"top_k": 3}
    assert got.metadata["config"] == _config().as_dict() and got.metadata["config_key"] == _config().key
    assert got.metadata["score_sign"] == "metric"
    assert (done.status, done.circuit_names) == ("succeeded", ("digits-eap",))
    with session_scope(engine) as s:
        with pytest.raises(CatalogError, match="already finished as succeeded"):
            queries.save_result(s, run.id, result, "again")


def test_save_result_of_a_node_method_stores_nodes_only(engine: Engine) -> None:
    nodes = (ScoredNode(head(0, 0), 0.9, True), ScoredNode(head(0, 1), 0.05, False), ScoredNode(mlp(1), 0.4, True))
    result = DiscoveryResult(config=_config("node-pruning"), model=MODEL, dataset=DATA,
                             granularity=Granularity.NODES, nodes=nodes)
    with session_scope(engine) as s:
        run = _start(s, method="node-pruning")
        record = queries.save_result(s, run.id, result, "digits-np")
    assert record.edges_known is False and record.edges == ()
    assert [(n.key, n.kept) for n in record.nodes] == [("a0.0", True), ("a0.1", False), ("m1", True)]
    with session_scope(engine) as s:
        with pytest.raises(InvalidCircuit, match="lists nodes only"):
            queries.recut(queries.get_circuit(s, "digits-np"), 0.1)


def test_a_result_must_belong_to_its_run(engine: Engine) -> None:
    with session_scope(engine) as s:
        run = _start(s, method="acdc")
        with pytest.raises(InvalidCircuit, match="does not belong to run"):
            queries.save_result(s, run.id, _edge_result("eap"), "mismatch")


def test_a_model_name_cannot_change_its_shape_or_weights(engine: Engine) -> None:
    with session_scope(engine) as s:
        _start(s)
    other = ModelSpec(name="toy", source="local/toy", n_layers=3, n_heads=2, d_model=8)
    with pytest.raises(CatalogError, match="model 'toy' is in the catalog with n_layers=2, this run has 3"):
        with session_scope(engine) as s:
            _start(s, model=other)
    reweighted = ModelSpec(name="toy", source="local/toy", n_layers=2, n_heads=2, d_model=8, weights_hash="sha256:x")
    with pytest.raises(CatalogError, match="weights_hash"):
        with session_scope(engine) as s:
            _start(s, model=reweighted)


def test_the_catalog_records_a_run_from_start_to_success_failure_or_interruption(engine: Engine) -> None:
    catalog = Catalog(engine=engine)
    ok = catalog.start(_config(), MODEL, DATA)
    saved = catalog.finish(ok, _edge_result(), None)
    assert saved.name == f"toy-digits-eap-r{ok}"  # the default name
    bad = catalog.start(_config(), MODEL, DATA)
    catalog.fail(bad, "failed", "ValueError: metric is nan")
    stopped = catalog.start(_config(), MODEL, DATA)
    catalog.fail(stopped, "interrupted", "interrupted (SIGTERM)")
    catalog.fail(ok, "failed", "too late")  # a finished run stays as it finished
    runs = {r.id: r for r in catalog.runs()}
    assert (runs[ok].status, runs[ok].circuit_names) == ("succeeded", (saved.name,))
    assert (runs[bad].status, runs[bad].error) == ("failed", "ValueError: metric is nan")
    assert (runs[stopped].status, runs[stopped].error) == ("interrupted", "interrupted (SIGTERM)")
    assert [r.id for r in catalog.runs("failed")] == [bad]
    catalog.check_name("free")
    with pytest.raises(AlreadyExists):
        catalog.check_name(saved.name)
    for bad_name in (" x", "a/b", "..", "x\n", "x" * 201):
        with pytest.raises(InvalidCircuit):
            catalog.check_name(bad_name)


def test_a_circuit_is_invisible_to_other_readers_until_its_save_commits(engine: Engine) -> None:
    with session_scope(engine) as s:
        run = _start(s)
    writer = session_scope(engine)
    session = writer.__enter__()
    try:
        queries.save_result(session, run.id, _edge_result(), "pending")
        session.flush()
        with session_scope(engine, read_only=True) as reader:
            assert queries.find_circuit(reader, "pending") is None
            assert queries.get_run(reader, run.id).status == "running"
    finally:
        writer.__exit__(None, None, None)
    with session_scope(engine, read_only=True) as reader:
        assert queries.find_circuit(reader, "pending") is not None
        assert queries.get_run(reader, run.id).status == "succeeded"


def test_a_silent_running_run_is_marked_lost_and_a_succeeded_job_is_found_by_its_key(engine: Engine) -> None:
    catalog = Catalog(engine=engine)
    done = catalog.start(_config(), MODEL, DATA)
    catalog.finish(done, _edge_result(), None)
    alive = catalog.start(_config(), MODEL, DATA)
    with session_scope(engine) as s:
        silent = queries.start_run(s, _config(), MODEL, DATA, "abc123", job_key="k-silent").id
        s.execute(update(RunRow).where(RunRow.id == silent)
                  .values(heartbeat_at=dt.datetime(2000, 1, 1), started_at=dt.datetime(2000, 1, 1)))
    catalog.heartbeat(alive)
    assert catalog.mark_lost(dt.timedelta(minutes=5)) == [silent]  # the finished run and the beating one stay
    runs = {r.id: r for r in catalog.runs()}
    assert (runs[silent].status, runs[alive].status, runs[done].status) == ("lost", "running", "succeeded")
    assert "no heartbeat" in (runs[silent].error or "")
    catalog.heartbeat(silent)  # a late beat from a lost worker does not revive its run
    assert {r.id: r.status for r in catalog.runs()}[silent] == "lost"
    with session_scope(engine, read_only=True) as s:
        key = runs[done].job_key
        assert key is not None and key == runs[alive].job_key  # one configuration, one key
        found = queries.find_succeeded_run(s, key)
        assert found is not None and found.id == done
        assert queries.find_succeeded_run(s, "k-silent") is None
    catalog.close()
