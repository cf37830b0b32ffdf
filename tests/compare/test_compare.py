"""Covers: overlap (Jaccard, membership, shared sub-circuit) and diff on hand-made circuits, hand-computed."""

from __future__ import annotations

import pytest

from catalog.compare import diff, overlap
from catalog.errors import InvalidCircuit
from tests.compare.builders import make_circuit


def test_node_overlap_ignores_embed_logits_and_dropped_nodes() -> None:
    a = make_circuit("A", ["a0.1", "a5.5", "m3"], dropped_nodes=["a9.9"])
    b = make_circuit("B", ["9.9", "a5.5", "m3", "m7"])
    result = overlap([a, b])
    # A = {a0.1, a5.5, m3}; B = {a5.5, m3, m7, a9.9}: 2 shared of 5 -> 0.4 (A's a9.9 is dropped).
    assert result.shared == ("m3", "a5.5")
    assert result.jaccard == {"A": {"A": 1.0, "B": 0.4}, "B": {"A": 0.4, "B": 1.0}}
    assert result.counts["A"]["B"] == (2, 5)
    assert result.membership == {
        "a0.1": ["A"], "m3": ["A", "B"], "a5.5": ["A", "B"], "m7": ["B"], "a9.9": ["B"],
    }
    assert list(result.membership) == ["a0.1", "m3", "a5.5", "m7", "a9.9"]  # topological, heads before MLP


def test_three_way_overlap_and_kinds() -> None:
    a = make_circuit("A", ["a1.0", "a2.0", "m2"])
    b = make_circuit("B", ["a1.0", "a2.0", "a3.0"])
    c = make_circuit("C", ["a1.0", "m2"])
    result = overlap([a, b, c])
    assert result.shared == ("a1.0",)
    assert result.jaccard["A"]["B"] == pytest.approx(2 / 4)
    assert result.jaccard["B"]["C"] == pytest.approx(1 / 4)
    assert result.jaccard["A"]["C"] == pytest.approx(2 / 3)
    heads = overlap([a, c], kinds=("head",))
    assert heads.counts["A"]["C"] == (1, 2)


def test_edge_overlap_and_shared_subcircuit() -> None:
    a = make_circuit("A", ["a0.1", "a3.0"], [("embed->a0.1.q", 1.0), ("a0.1->a3.0.k", 0.5), ("a3.0->logits", 2.0)])
    b = make_circuit(
        "B", ["a0.1", "a3.0"], [("a0.1->a3.0.k", 0.7), ("a3.0->logits", -1.0), ("a0.1->logits", 0.1)],
        dropped_edges=[("embed->a0.1.q", 0.01)],
    )
    result = overlap([a, b], "edges")
    assert result.shared == ("a0.1->a3.0.k", "a3.0->logits")
    assert result.counts["A"]["B"] == (2, 4)
    assert result.shared_nodes == ("a0.1", "a3.0")
    assert result.shared_edges == result.shared
    # At node level the shared sub-circuit keeps the edges among shared nodes that both circuits keep.
    nodes = overlap([a, b], "nodes")
    assert nodes.shared == ("a0.1", "a3.0") and nodes.jaccard["A"]["B"] == 1.0
    assert nodes.shared_edges == ("a0.1->a3.0.k", "a3.0->logits")


def test_node_level_with_a_nodes_only_circuit_takes_edges_from_edge_known_ones() -> None:
    a = make_circuit("A", ["a0.1", "a3.0"], [("a0.1->a3.0.k", 0.5), ("a3.0->logits", 2.0), ("embed->a0.1.q", 1.0)])
    papers = make_circuit("P", ["a3.0", "m5"])
    result = overlap([a, papers])
    assert result.shared_nodes == ("a3.0",)
    assert result.shared_edges == ("a3.0->logits",)  # a0.1 is not shared, so its edges go


def test_edge_level_refuses_nodes_only_circuits() -> None:
    a = make_circuit("A", ["a0.1"], [("a0.1->logits", 1.0)])
    b = make_circuit("lan", ["a0.1"])
    with pytest.raises(InvalidCircuit, match="'lan' is known only by its nodes.*--level nodes"):
        overlap([a, b], "edges")


def test_overlap_refuses_duplicates_and_bad_levels() -> None:
    a = make_circuit("A", ["a0.1"])
    with pytest.raises(InvalidCircuit, match="given twice"):
        overlap([a, a])
    with pytest.raises(InvalidCircuit, match="unknown comparison level"):
        overlap([a], "heads")


def test_empty_circuits_agree() -> None:
    assert overlap([make_circuit("A", []), make_circuit("B", [])]).jaccard["A"]["B"] == 1.0


def test_model_mismatch_warns_but_hub_id_alias_does_not() -> None:
    a = make_circuit("A", ["a0.1"], model="gpt2")
    assert overlap([a, make_circuit("B", ["a0.1"], model="openai-community/gpt2")]).warnings == ()
    assert "different models" in overlap([a, make_circuit("C", ["a0.1"], model="toy")]).warnings[0]


def test_diff_edges_with_score_changes() -> None:
    a = make_circuit("A", ["a0.1", "a3.0"], [("a0.1->a3.0.k", 0.5), ("a3.0->logits", 2.0), ("embed->a0.1.q", 1.0)])
    b = make_circuit("B", ["a0.1", "a3.0"], [("a0.1->a3.0.k", 0.75), ("a3.0->logits", 2.0), ("a0.1->logits", None)])
    d = diff(a, b)
    assert d.level == "edges"
    assert d.only_a == ("embed->a0.1.q",)
    assert d.only_b == ("a0.1->logits",)
    assert d.shared == ("a0.1->a3.0.k", "a3.0->logits")
    assert [(c.key, c.a, c.b, c.delta) for c in d.score_changes] == [("a0.1->a3.0.k", 0.5, 0.75, 0.25)]
    assert d.jaccard == pytest.approx(2 / 4)
    assert d.to_dict()["score_changes"][0] == {"key": "a0.1->a3.0.k", "a": 0.5, "b": 0.75, "delta": 0.25}


def test_diff_nodes_reports_roles_and_missing_scores() -> None:
    a = make_circuit("A", ["a9.1", "a9.9"], roles={"a9.1": "successor"}, scores={"a9.9": 0.3})
    b = make_circuit("B", ["a9.1", "m10"], roles={"a9.1": "mover"})
    d = diff(a, b)
    assert d.level == "nodes"
    assert (d.only_a, d.only_b, d.shared) == (("a9.9",), ("m10",), ("a9.1",))
    assert [(r.key, r.a, r.b) for r in d.role_changes] == [("a9.1", "successor", "mover")]
    assert d.score_changes == ()
    c = diff(make_circuit("C", ["a1.0"], scores={"a1.0": 1.0}), make_circuit("D", ["a1.0"]))
    assert [(x.key, x.a, x.b, x.delta) for x in c.score_changes] == [("a1.0", 1.0, None, None)]
