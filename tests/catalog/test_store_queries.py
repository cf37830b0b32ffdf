"""Covers: circuit save/get/list/holds/recut/delete, validation, nan/inf round trips, roles, atomic saves."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

import catalog.circuits as circuits
from catalog import queries
from catalog.db import session_scope
from catalog.errors import AlreadyExists, CatalogError, InvalidCircuit, NotFound
from catalog.records import EdgeRecord, NewCircuit, NodeRecord
from catalog.tables import EdgeRow, NodeRow
from discovery.config import make_config
from discovery.graph import ComponentGraph, ModelShape

NewFactory = Callable[..., NewCircuit]


def _save(engine: Engine, new: NewCircuit) -> Any:
    with session_scope(engine) as s:
        return queries.save_circuit(s, new)


def _get(engine: Engine, name: str, **kw: Any) -> Any:
    with session_scope(engine, read_only=True) as s:
        return queries.get_circuit(s, name, **kw)


def test_a_saved_circuit_reads_back_whole_and_canonical(engine: Engine, make_circuit: NewFactory) -> None:
    saved = _save(engine, make_circuit())
    got = _get(engine, "tiny")
    assert got == saved
    assert (got.name, got.model, got.task, got.source, got.citation) == (
        "tiny", "gpt2", "ioi", "published", "Wang et al. 2022"
    )
    assert [n.key for n in got.nodes] == ["embed", "a0.1", "a1.0", "m1", "logits"]  # "0.1" stored as a0.1
    a10 = got.node("1.0")
    assert (a10.kind, a10.layer, a10.head, a10.score, a10.role, a10.role_source) == (
        "head", 1, 0, -1.25, "name mover", "paper"
    )
    assert got.node("logits").layer is None and got.node("m1").layer == 1
    assert [e.key for e in got.edges] == ["embed->a0.1.v", "a0.1->a1.0.q", "a1.0->m1", "m1->logits", "embed->m1"]
    assert [e.key for e in got.kept_edges] == ["embed->a0.1.v", "a0.1->a1.0.q", "a1.0->m1", "m1->logits"]
    assert got.edges[1].input == "q" and got.edges[2].input is None
    assert got.performance == {"logit_diff_recovered": 0.87}
    assert got.created_at is not None and got.created_at.tzinfo is None  # naive UTC


def test_kept_only_skips_dropped_edges(engine: Engine, make_circuit: NewFactory) -> None:
    _save(engine, make_circuit())
    got = _get(engine, "tiny", kept_only=True)
    assert len(got.edges) == 4 and all(e.kept for e in got.edges)


def test_find_returns_none_and_get_raises_for_an_unknown_name(engine: Engine) -> None:
    with session_scope(engine, read_only=True) as s:
        assert queries.find_circuit(s, "nope") is None
        with pytest.raises(NotFound, match="no circuit named 'nope'"):
            queries.get_circuit(s, "nope")


def test_a_taken_name_is_refused(engine: Engine, make_circuit: NewFactory) -> None:
    _save(engine, make_circuit())
    with pytest.raises(AlreadyExists, match="'tiny' already exists"):
        _save(engine, make_circuit())


def _edges(*keys: str) -> tuple[EdgeRecord, ...]:
    return tuple(EdgeRecord.from_key(k) for k in keys)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(nodes=(NodeRecord(key="head nine", kind="head"),)), "not a component: 'head nine'"),
        (dict(nodes=(NodeRecord.from_key("a1.0"), NodeRecord.from_key("1.0"))), "lists node a1.0 twice"),
        (dict(edges=_edges("a0.1->a1.0.q", "0.1->1.0<q>")), "lists edge a0.1->a1.0.q twice"),
        (dict(edges=_edges("a0.1->m0")), "is kept but m0 is not a kept node"),
        (dict(edges=(EdgeRecord("a1.0", "m1", None, kept=True), EdgeRecord("m1", "a1.0", "q"))), "flow forward"),
        (dict(edges=(EdgeRecord("a0.1", "a1.0", "x"),)), "bad head input 'x'"),
        (dict(edges=(EdgeRecord("a0.1", "m1", "q"),)), "only attention heads have q/k/v"),
        (dict(source="blog"), "source must be one of discovered, published, imported"),
        (dict(threshold=math.nan), "threshold must be finite"),
        (dict(name=" spaced "), "may not start or end with spaces"),
        (dict(name="a/b"), "may not hold / or"),
        (dict(name=".."), "may not hold / or"),
        (dict(name="tab\there"), "control characters"),
        (dict(name="x" * 201), "at most 200 characters"),
        (dict(model=""), "model name must be non-empty"),
        (dict(model="m" * 1000), "model name may have at most 200 characters"),
        (dict(task="t" * 201), "task name may have at most 200 characters"),
    ],
)
def test_malformed_circuits_are_refused_whole(
    sqlite_engine: Engine, make_circuit: NewFactory, change: dict, message: str, fingerprint
) -> None:
    url = sqlite_engine.url.render_as_string(hide_password=False)
    before = fingerprint(url)
    with pytest.raises(InvalidCircuit, match=message):
        _save(sqlite_engine, make_circuit(**change))
    assert fingerprint(url)[:3] == before[:3]


def test_nodes_outside_a_known_model_shape_are_refused(engine: Engine, make_circuit: NewFactory) -> None:
    with session_scope(engine) as s:
        queries.start_run(s, make_config("tiny-model", "ioi", "eap"), _spec("tiny-model", 2, 4))
    bad = make_circuit(model="tiny-model", nodes=(NodeRecord.from_key("a5.0"),), edges=())
    with pytest.raises(InvalidCircuit, match="a5.0 is not in a model of 2 layers x 4 heads"):
        _save(engine, bad)


def _spec(name: str, layers: int, heads: int) -> Any:
    from discovery.results import ModelSpec

    return ModelSpec(name=name, source=f"local/{name}", n_layers=layers, n_heads=heads, d_model=8)


def test_nan_and_infinities_round_trip_everywhere_a_number_is_stored(engine: Engine, make_circuit: NewFactory) -> None:
    odd = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "zero": 0.0, "tiny": 5e-324}
    nodes = (
        NodeRecord.from_key("embed", score=math.nan),
        NodeRecord.from_key("a0.0", score=math.inf, role="r", role_source="analysis", role_score=-math.inf,
                            attributes={"ov": {"copy": math.nan, "list": [math.inf, 1.0]}}),
        NodeRecord.from_key("logits", score=-math.inf),
    )
    edges = (
        EdgeRecord.from_key("embed->a0.0.q", score=math.nan),
        EdgeRecord.from_key("embed->a0.0.k", score=math.inf),
        EdgeRecord.from_key("embed->a0.0.v", score=-math.inf),
        EdgeRecord.from_key("a0.0->logits", score=5e-324),
        EdgeRecord.from_key("embed->logits", score=None, kept=False),
    )
    _save(engine, make_circuit(nodes=nodes, edges=edges, performance=odd, metadata={"odd": odd}))
    got = _get(engine, "tiny")

    def same(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is b
        return (math.isnan(a) and math.isnan(b)) or a == b

    assert [same(n.score, m.score) for n, m in zip(got.nodes, nodes)] == [True] * 3
    assert got.node("a0.0").role_score == -math.inf
    assert math.isnan(got.node("a0.0").attributes["ov"]["copy"]) and got.node("a0.0").attributes["ov"]["list"] == [
        math.inf, 1.0
    ]
    assert [same(e.score, f.score) for e, f in zip(got.edges, edges)] == [True] * 5
    assert got.edges[4].score is None
    for stored in (got.performance, got.metadata["odd"]):
        assert math.isnan(stored["nan"]) and stored["inf"] == math.inf and stored["-inf"] == -math.inf
        assert stored["zero"] == 0.0 and stored["tiny"] == 5e-324


def test_list_circuits_filters_orders_and_counts_kept_members(engine: Engine, make_circuit: NewFactory) -> None:
    _save(engine, make_circuit("b-ioi"))
    _save(engine, make_circuit("a-other", task="greater-than"))
    _save(engine, make_circuit("c-nodes", model="pythia-70m", edges=(), edges_known=False))
    with session_scope(engine, read_only=True) as s:
        everything = queries.list_circuits(s)
        assert [c.name for c in everything] == ["a-other", "b-ioi", "c-nodes"]
        assert (everything[1].n_nodes, everything[1].n_edges, everything[1].edges_known) == (5, 4, True)
        assert (everything[2].n_nodes, everything[2].n_edges, everything[2].edges_known) == (5, 0, False)
        assert [c.name for c in queries.list_circuits(s, model="gpt2")] == ["a-other", "b-ioi"]
        assert [c.name for c in queries.list_circuits(s, model="gpt2", task="ioi")] == ["b-ioi"]
        assert queries.list_circuits(s, task="unknown") == []
        assert queries.count_circuits(s) == 3


def test_circuits_holding_a_node_give_its_role_in_each(engine: Engine, make_circuit: NewFactory) -> None:
    _save(engine, make_circuit("one"))
    _save(engine, make_circuit("two", nodes=(NodeRecord.from_key("a1.0", kept=False), NodeRecord.from_key("m3")),
                               edges=()))
    _save(engine, make_circuit("three"))
    with session_scope(engine) as s:
        queries.set_role(s, "three", "a1.0", "induction", "user:ada", score=0.9, note="by eye")
        held = queries.circuits_holding(s, "1.0")
    assert [(h.circuit, h.key, h.role, h.role_source, h.role_score) for h in held] == [
        ("one", "a1.0", "name mover", "paper", None),
        ("three", "a1.0", "induction", "user:ada", 0.9),
    ]  # "two" scored a1.0 but did not keep it


def test_set_role_and_attributes_need_the_node_in_the_circuit(engine: Engine, make_circuit: NewFactory) -> None:
    _save(engine, make_circuit())
    with session_scope(engine) as s:
        with pytest.raises(NotFound, match="a9.1 is not a node of circuit 'tiny'"):
            queries.set_role(s, "tiny", "9.1", "name mover", "paper")
        with pytest.raises(NotFound, match="no circuit named 'nope'"):
            queries.set_node_attributes(s, "nope", "a1.0", "ov", {})


def test_node_attributes_merge_per_analysis(engine: Engine, make_circuit: NewFactory) -> None:
    _save(engine, make_circuit())
    with session_scope(engine) as s:
        queries.set_node_attributes(s, "tiny", "a1.0", "attention", {"to_name": 0.7, "to_end": 0.1})
        queries.set_node_attributes(s, "tiny", "a1.0", "ov", {"copy_score": 0.93})
        node = queries.set_node_attributes(s, "tiny", "1.0", "attention", {"to_end": 0.2})
    expected = {"attention": {"to_name": 0.7, "to_end": 0.2}, "ov": {"copy_score": 0.93}}
    assert node.attributes == expected
    assert _get(engine, "tiny").node("a1.0").attributes == expected


def test_delete_removes_the_circuit_with_its_rows(engine: Engine, make_circuit: NewFactory) -> None:
    _save(engine, make_circuit("keep"))
    _save(engine, make_circuit("drop"))
    with session_scope(engine) as s:
        queries.delete_circuit(s, "drop")
        with pytest.raises(NotFound):
            queries.delete_circuit(s, "drop")
    with session_scope(engine, read_only=True) as s:
        assert [c.name for c in queries.list_circuits(s)] == ["keep"]
        assert s.scalar(select(func.count()).select_from(EdgeRow)) == 5
        assert s.scalar(select(func.count()).select_from(NodeRow)) == 5


def test_recut_thresholds_stored_scores(engine: Engine, make_circuit: NewFactory) -> None:
    record = _save(engine, make_circuit())
    mid = queries.recut(record, 0.2)  # every edge but embed->m1 (0.01): a connected circuit
    assert [e.key for e in mid.kept_edges] == ["embed->a0.1.v", "a0.1->a1.0.q", "a1.0->m1", "m1->logits"]
    assert [n.key for n in mid.kept_nodes] == ["embed", "a0.1", "a1.0", "m1", "logits"]
    high = queries.recut(record, 1.0)  # a1.0->m1 and m1->logits pass but dangle: a1.0 receives nothing
    assert high.kept_edges == () and [n.key for n in high.kept_nodes] == ["embed", "logits"]
    low = queries.recut(record, 0.0)
    assert len(low.kept_edges) == 5 and high.threshold == 1.0
    with pytest.raises(InvalidCircuit, match="finite number >= 0"):
        queries.recut(record, -1.0)
    nodes_only = _save(engine, make_circuit("nodes", edges=(), edges_known=False))
    with pytest.raises(InvalidCircuit, match="lists nodes only"):
        queries.recut(nodes_only, 0.5)
    unscored = _save(engine, make_circuit("unscored", edges=tuple(EdgeRecord(e.src, e.dst, e.input, None)
                                                                  for e in record.edges if e.kept)))
    with pytest.raises(InvalidCircuit, match="has no stored edge scores"):
        queries.recut(unscored, 0.5)


def test_a_failure_mid_save_leaves_the_database_unchanged(
    engine: Engine, make_circuit: NewFactory, monkeypatch: pytest.MonkeyPatch, fingerprint
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    before = fingerprint(url)

    def explode(*args: Any) -> Any:  # runs after the circuit, node and edge rows are inserted
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(circuits, "_saved_edges", explode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _save(engine, make_circuit(model="brand-new-model", task="brand-new-task"))
    assert fingerprint(url)[:3] == before[:3]


def test_a_database_constraint_failure_mid_save_leaves_it_unchanged(
    engine: Engine, make_circuit: NewFactory, monkeypatch: pytest.MonkeyPatch, fingerprint
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    _save(engine, make_circuit("existing"))
    before = fingerprint(url)
    real = circuits.canonical_rows

    def duplicated(new: NewCircuit, shape: Any) -> Any:  # slip a duplicate edge past validation
        nodes, edges = real(new, shape)
        return nodes, edges + [dict(edges[0])]

    monkeypatch.setattr(circuits, "canonical_rows", duplicated)
    with pytest.raises(CatalogError, match="refused a write that breaks its rules"):
        _save(engine, make_circuit("second"))
    assert fingerprint(url)[:3] == before[:3]


def test_all_scored_edges_go_in_one_executemany(sqlite_url: str) -> None:
    from catalog.db import connect

    engine = connect(sqlite_url)
    graph = ComponentGraph(ModelShape(2, 2))
    edges = tuple(EdgeRecord.from_edge(e, score=0.1 * i, kept=False) for i, e in enumerate(graph.edges))
    statements: list[tuple[str, bool]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _log(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        statements.append((statement.split("(")[0].strip(), executemany))

    new = NewCircuit(name="full", model="toy", task=None, source="discovered", nodes=(), edges=edges,
                     edges_known=True)
    _save(engine, new)
    edge_inserts = [(s, many) for s, many in statements if s.startswith("INSERT INTO edge")]
    assert edge_inserts == [("INSERT INTO edge", True)]
    assert len(_get(engine, "full").edges) == graph.n_edges()
    engine.dispose()


def test_the_returned_record_is_canonical_whatever_spelling_was_given(engine: Engine, make_circuit: NewFactory) -> None:
    nodes = (NodeRecord.from_key("0.1"), NodeRecord.from_key("a1.0"))
    edges = (EdgeRecord("0.1", "a1.0.q", None, 2, True), EdgeRecord("a0.1", "a1.0", "k", 0.5, False))
    saved = _save(engine, make_circuit(nodes=nodes, edges=edges))
    assert saved.edges == (EdgeRecord("a0.1", "a1.0", "q", 2.0, True), edges[1])
    assert type(saved.edges[0].score) is float
    assert _get(engine, "tiny") == saved


def test_circuit_level_analyses_go_into_metadata(engine: Engine, make_circuit: NewFactory) -> None:
    _save(engine, make_circuit(metadata={"note": "kept"}))
    with session_scope(engine) as s:
        queries.set_circuit_analysis(s, "tiny", "dla", {"total": 1.5})
        queries.set_circuit_analysis(s, "tiny", "logit-lens", {"layers": [0.1, math.nan]})
        queries.set_circuit_analysis(s, "tiny", "dla", {"total": 2.0})
    metadata = _get(engine, "tiny").metadata
    assert metadata["note"] == "kept" and metadata["analyses"]["dla"] == {"total": 2.0}
    assert metadata["analyses"]["logit-lens"]["layers"][0] == 0.1
    assert math.isnan(metadata["analyses"]["logit-lens"]["layers"][1])
