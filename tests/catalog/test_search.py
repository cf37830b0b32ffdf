"""Covers: catalog-wide graph questions in SQL (catalog.search: similar, containing) and the similarity summaries
save_circuit stores for them, on SQLite and PostgreSQL, against answers worked out by hand."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from catalog import queries
from catalog.db import session_scope
from catalog.errors import InvalidCircuit, NotFound
from catalog.records import EdgeRecord, NewCircuit, NodeRecord
from catalog.search import containing, similar
from catalog.similarity import mass, weighted_jaccard, weights
from catalog.tables import CircuitRow, EdgeRow, NodeRow

A_EDGES = ["embed->a0.0.q", "a0.0->a1.0.v", "a1.0->logits", "embed->a0.1.k", "a0.1->logits"]


def circuit(name: str, edges: list[str], *, model: str = "toy", scores: dict[str, float] | None = None,
            node_scores: dict[str, float] | None = None, extra_nodes: tuple[str, ...] = ()) -> NewCircuit:
    records = tuple(EdgeRecord.from_key(k, (scores or {}).get(k)) for k in edges)
    keys = {"embed", "logits", *extra_nodes} | {x for e in records for x in (e.src, e.dst)}
    nodes = tuple(NodeRecord.from_key(k, score=(node_scores or {}).get(k)) for k in sorted(keys))
    return NewCircuit(name=name, model=model, task="t", source="discovered", nodes=nodes, edges=records,
                      edges_known=bool(edges))


@pytest.fixture
def catalog(engine: Engine) -> Engine:
    """A: five edges scored 1; B: A's first three scored 2; C: A's last two, unscored; D: A on another model;
    N: heads a0.0 and a0.1 listed without edges; E: A's first edge plus one of its own."""
    with session_scope(engine) as s:
        queries.save_circuit(s, circuit("A", A_EDGES, scores={k: 1.0 for k in A_EDGES},
                                        node_scores={"a0.0": 3.0, "a0.1": 1.0, "a1.0": 0.0}))
        queries.save_circuit(s, circuit("B", A_EDGES[:3], scores={k: 2.0 for k in A_EDGES[:3]}))
        queries.save_circuit(s, circuit("C", A_EDGES[3:]))
        queries.save_circuit(s, circuit("D", A_EDGES, model="other"))
        queries.save_circuit(s, circuit("N", [], extra_nodes=("a0.0", "a0.1")))
        queries.save_circuit(s, circuit("E", ["embed->a0.0.q", "a0.0->logits"], scores={"embed->a0.0.q": 3.0,
                                                                                      "a0.0->logits": 1.0}))
    return engine


def test_save_stores_the_similarity_summary_each_circuit_needs(catalog: Engine) -> None:
    with session_scope(catalog, read_only=True) as s:
        stored = {r.name: (r.n_components, r.node_mass, r.edge_mass) for r in s.scalars(select(CircuitRow))}
        for name in stored:  # as catalog.similarity defines them
            record = queries.get_circuit(s, name)
            components = [n for n in record.kept_nodes if n.is_component]
            edge_mass = mass(e.score for e in record.kept_edges) if record.edges_known else None
            assert stored[name] == (len(components), mass(n.score for n in components), edge_mass), name
    assert stored["A"] == (3, 4.0, 5.0)  # heads a0.0 (3), a0.1 (1), a1.0 (0); five edges of 1
    with session_scope(catalog, read_only=True) as s:  # each kept key carries its weight in its circuit
        a = queries.get_circuit(s, "A")
        node_shares = dict(s.execute(select(NodeRow.key, NodeRow.share).where(NodeRow.circuit_id == a.id)).all())
        edge_shares = {EdgeRecord(src, dst, inp or None).key: share for src, dst, inp, share in s.execute(
            select(EdgeRow.src, EdgeRow.dst, EdgeRow.input, EdgeRow.share).where(EdgeRow.circuit_id == a.id))}
    assert node_shares == {"embed": None, "logits": None, **weights(a, "nodes")}
    assert node_shares["a0.0"] == 0.75 and edge_shares == weights(a, "edges")
    assert stored["B"][1:] == (None, 6.0)  # unscored nodes; three edges of 2
    assert stored["C"][2] is None and stored["N"] == (2, None, None)


def test_similar_ranks_by_jaccard_within_the_model(catalog: Engine) -> None:
    with session_scope(catalog, read_only=True) as s:
        edges = similar(s, "A", level="edges")
        nodes = similar(s, "A", level="nodes")
        everywhere = similar(s, "A", level="edges", all_models=True)
    # Edges: B shares 3 of 5 (3/5), C 2 (2/5), E 1 of 2 (1/6). D is another model; N lists no edges.
    assert [(x.name, x.shared, x.size, x.jaccard) for x in edges.circuits] == [
        ("B", 3, 3, 0.6), ("C", 2, 2, 0.4), ("E", 1, 2, pytest.approx(1 / 6))]
    assert (edges.compared, edges.sharing, edges.ranked_by) == (3, 3, "Jaccard")  # B, C, E: N lists no edges
    assert everywhere.circuits[0].name == "D" and everywhere.circuits[0].jaccard == 1.0
    # Nodes (heads and MLPs): A keeps a0.0, a0.1, a1.0. N {a0.0, a0.1}: 2/3; B {a0.0, a1.0}: 2/3; C {a0.1}: 1/3;
    # E {a0.0}: 1/3. Ties by name.
    assert [(x.name, x.jaccard) for x in nodes.circuits] == [
        ("B", pytest.approx(2 / 3)), ("N", pytest.approx(2 / 3)), ("C", pytest.approx(1 / 3)),
        ("E", pytest.approx(1 / 3))]


def test_weighted_similarity_compares_score_distributions(catalog: Engine) -> None:
    with session_scope(catalog, read_only=True) as s:
        result = similar(s, "A", level="edges", weighted=True, top=2)
        every = {r.name: r.weighted for r in similar(s, "A", level="edges", weighted=True, top=None).circuits}
        records = {n: queries.get_circuit(s, n) for n in "ABCE"}
    # A weighs its 5 edges 1/5 each. B: 3 edges of 1/3; min-sum 3/5: 0.6 / 1.4. C unscored: 1/2 each; min-sum
    # 2/5: 0.4 / 1.6. E: embed->a0.0.q weighs 3/4; min-sum 1/5: 0.2 / 1.8.
    assert every == pytest.approx({"B": 0.6 / 1.4, "C": 0.25, "E": 0.2 / 1.8})
    assert [r.name for r in result.circuits] == ["B", "C"] and result.ranked_by == "weighted Jaccard"
    for name, value in every.items():  # SQL agrees with the pure definition
        assert value == pytest.approx(weighted_jaccard(weights(records["A"], "edges"), weights(records[name], "edges")))


def test_similar_refuses_what_it_cannot_compare(catalog: Engine) -> None:
    with session_scope(catalog, read_only=True) as s:
        with pytest.raises(InvalidCircuit, match="nodes only"):
            similar(s, "N", level="edges")
        with pytest.raises(NotFound):
            similar(s, "nobody")
        with pytest.raises(InvalidCircuit, match="--top"):
            similar(s, "A", top=0)


def test_containing_nodes_edges_paths_and_circuits(catalog: Engine) -> None:
    def names(**asked: object) -> list[str]:
        with session_scope(catalog, read_only=True) as s:
            return [c.name for c in containing(s, **asked).circuits]  # type: ignore[arg-type]

    assert names(nodes=["0.0", "a0.1"]) == ["A", "D", "N"]
    assert names(nodes=["a0.0"], model="toy") == ["A", "B", "E", "N"]
    assert names(edges=["embed->a0.0.q", "a1.0->logits"]) == ["A", "B", "D"]
    assert names(edges=["embed->a0.0.q"], nodes=["a0.1"]) == ["A", "D"]
    assert names(path=["a0.0", "logits"]) == ["A", "B", "D", "E"]  # E: directly; A, B, D through a1.0
    assert names(path=["a0.0", "a1.0", "logits"]) == ["A", "B", "D"]
    assert names(path=["a0.1", "a1.0"]) == []
    assert names(circuit="B") == ["A"]  # all of B's edges, within B's model, B itself left out
    assert names(circuit="N") == ["A"]  # N lists nodes only: both its heads, within its model
    assert names(circuit="B", edges=["a0.1->logits"]) == ["A"]  # every condition at once
    assert names(circuit="E") == []  # A keeps embed->a0.0.q but reaches the logits from a0.0 through a1.0 only
    assert names(circuit="A", model="other") == ["D"]
    with session_scope(catalog, read_only=True) as s:
        found = containing(s, path=["a0.0", "logits"])
        assert found.skipped == 1  # N holds a0.0 but lists no edges
        with pytest.raises(InvalidCircuit, match="say what to look for"):
            containing(s)
        with pytest.raises(InvalidCircuit, match="at least two nodes"):
            containing(s, path=["a0.0"])
        with pytest.raises(InvalidCircuit, match="at most 2,000 edges"):
            containing(s, edges=[f"a{i % 12}.{i // 12 % 12}->m{i // 144 + 12}" for i in range(2_001)])
