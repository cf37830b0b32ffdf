"""Covers: a circuit as a networkx graph and back (catalog.graphs), and the graph questions on one circuit, each on
a small circuit whose answer is worked out by hand in the test."""

from __future__ import annotations

import math

import networkx as nx
import pytest

from catalog.errors import InvalidCircuit
from catalog.formats.native import export_circuit
from catalog.graphs import (
    connected_edges,
    edge_weights,
    from_networkx,
    graph_stats,
    neighbours,
    path_through,
    strongest_paths,
    to_networkx,
)
from catalog.reference import load_reference
from tests.compare.builders import make_circuit


def diamond() -> object:
    """embed feeds a0.0 (q 1, v 4) and a0.1 (v 4); a0.0 -> a1.0 (k 2) -> logits (-4); a0.1 -> logits (1);
    a0.1 -> m1 (0.5) dangles (m1 feeds nothing); embed -> logits is scored but dropped."""
    return make_circuit(
        "diamond",
        ["a0.0", "a0.1", "a1.0", "m1"],
        [("embed->a0.0.q", 1.0), ("embed->a0.0.v", 4.0), ("a0.0->a1.0.k", 2.0), ("a1.0->logits", -4.0),
         ("embed->a0.1.v", 4.0), ("a0.1->logits", 1.0), ("a0.1->m1", 0.5)],
        dropped_edges=[("embed->logits", 8.0)],
        roles={"a1.0": "mover"},
    )


def canonical(circuit: object) -> tuple:
    data = export_circuit(circuit)  # type: ignore[arg-type]
    return data["circuit"], sorted(map(str, data["nodes"])), sorted(map(str, data["edges"]))


def test_a_circuit_becomes_a_multidigraph_with_its_fields_and_back_unchanged() -> None:
    c = diamond()
    g = to_networkx(c)
    assert isinstance(g, nx.DiGraph) and g.is_multigraph()
    assert sorted(g.nodes) == sorted(["embed", "a0.0", "a0.1", "a1.0", "m1", "logits"])  # kept only
    assert g.number_of_edges() == 7 and not g.has_edge("embed", "logits")
    assert g.nodes["a1.0"] == {"kind": "head", "layer": 1, "head": 0, "score": None, "kept": True, "role": "mover",
                               "role_score": None, "role_source": None, "role_note": None, "attributes": {}}
    assert set(g["embed"]["a0.0"]) == {"q", "v"}  # one edge per input, keyed by it
    assert g.edges["a0.0", "a1.0", "k"] == {"input": "k", "score": 2.0, "kept": True}
    assert g.graph["name"] == "diamond" and g.graph["edges_known"] is True
    every = to_networkx(c, kept_only=False)
    assert every.edges["embed", "logits", ""]["kept"] is False
    assert canonical(from_networkx(every)) == canonical(c)


def test_from_networkx_refuses_what_no_circuit_can_hold() -> None:
    g = to_networkx(diamond())
    g.add_edge("a1.0", "a0.0", key="q", input="q", score=1.0, kept=True)  # backwards through the layers
    with pytest.raises(InvalidCircuit, match="a1.0"):
        from_networkx(g)
    g = to_networkx(diamond())
    g.graph["colour"] = "red"
    with pytest.raises(InvalidCircuit, match="unknown field 'colour'"):
        from_networkx(g)


def test_weights_are_scores_over_the_largest_and_paths_multiply_them() -> None:
    c = diamond()
    w = edge_weights(c)
    assert w["embed->a0.0.v"] == 1.0 and w["embed->a0.0.q"] == 0.25 and w["a0.1->m1"] == 0.125
    paths = strongest_paths(c)
    # embed-v->a0.0 (1) -k-> a1.0 (0.5) -> logits (1): 0.5; embed -> a0.1 (1) -> logits (0.25): 0.25
    assert [(p.nodes, p.strength) for p in paths] == [(("embed", "a0.0", "a1.0", "logits"), 0.5),
                                                     (("embed", "a0.1", "logits"), 0.25)]
    assert paths[0].edges == ("embed->a0.0.v", "a0.0->a1.0.k", "a1.0->logits")  # the stronger of q and v
    assert [p.nodes for p in strongest_paths(c, k=1)] == [("embed", "a0.0", "a1.0", "logits")]
    assert [p.nodes for p in strongest_paths(c, "a0.1", "m1")] == [("a0.1", "m1")]
    assert strongest_paths(c, "m1", "logits") == []  # m1 feeds nothing


def test_unscored_paths_come_shortest_first() -> None:
    c = make_circuit("flat", ["a0.0", "a1.0"], [("embed->a0.0.v", None), ("a0.0->a1.0.q", None),
                                               ("a1.0->logits", None), ("embed->a1.0.k", None)])
    assert [p.nodes for p in strongest_paths(c)] == [("embed", "a1.0", "logits"),
                                                    ("embed", "a0.0", "a1.0", "logits")]
    assert all(p.strength == 1.0 for p in strongest_paths(c))


def test_graph_questions_refuse_nodes_only_circuits_and_missing_nodes() -> None:
    with pytest.raises(InvalidCircuit, match="lists nodes only"):
        strongest_paths(load_reference("digits-lan2023"))
    with pytest.raises(InvalidCircuit, match="does not keep a5.5"):
        strongest_paths(diamond(), "5.5")
    with pytest.raises(InvalidCircuit, match="--depth"):
        neighbours(diamond(), "logits", depth=0)


def test_neighbours_by_ring_with_the_edges_that_reach_them() -> None:
    up = neighbours(diamond(), "logits", "up", depth=2)
    assert [(n.key, n.distance) for n in up] == [("a0.1", 1), ("a1.0", 1), ("embed", 2), ("a0.0", 2)]
    assert up[1].role == "mover" and up[1].via == (("a1.0->logits", -4.0),)
    assert up[2].via == (("embed->a0.1.v", 4.0),)  # embed reaches a0.1 in ring 1; its edge into a0.0 is ring 3
    down = neighbours(diamond(), "a0.1", "down")
    assert [(n.key, n.via) for n in down] == [("m1", (("a0.1->m1", 0.5),)), ("logits", (("a0.1->logits", 1.0),))]


def test_stats_count_by_layer_and_find_depth_width_and_dangling_edges() -> None:
    s = graph_stats(diamond())
    assert (s.n_heads, s.n_mlps, s.n_edges, s.width) == (3, 1, 7, 2)
    assert s.per_layer == {0: {"heads": 2, "mlps": 0, "edges_in": 3}, 1: {"heads": 1, "mlps": 1, "edges_in": 2}}
    assert s.edges_to_logits == 2 and s.edges_by_input == {"-": 3, "k": 1, "q": 1, "v": 2}
    assert (s.depth, s.components, s.dangling) == (3, 1, 1)  # the longest path; a0.1->m1 dangles
    assert s.top_in[0] == ("a0.0", 2) and s.top_out[0] == ("embed", 3)
    assert s.kept_share == pytest.approx(7 / 8)
    nodes_only = graph_stats(load_reference("digits-lan2023"))
    assert nodes_only.n_edges is None and nodes_only.depth is None and nodes_only.n_heads == 14


def test_connected_edges_and_paths_through_nodes_in_order() -> None:
    c = diamond()
    assert connected_edges(c) == frozenset(e.key for e in c.kept_edges) - {"a0.1->m1"}
    assert path_through(c, ["a0.0", "logits"]) and path_through(c, ["embed", "a1.0", "logits"])
    assert not path_through(c, ["a0.1", "a1.0"])  # no edge joins them
    assert not path_through(c, ["logits", "embed"])  # order matters
    assert not path_through(load_reference("digits-lan2023"), ["a9.1", "logits"])  # edges unknown


def test_an_edge_without_a_finite_score_weighs_one() -> None:
    c = make_circuit("inf", ["a0.0"], [("embed->a0.0.v", math.inf), ("a0.0->logits", 2.0), ("embed->logits", 1.0)])
    w = edge_weights(c)
    assert w == {"embed->a0.0.v": 1.0, "a0.0->logits": 1.0, "embed->logits": 0.5}


def test_the_connected_part_of_a_shared_subcircuit_runs_from_embed_to_logits() -> None:
    from catalog.compare import connected_part, overlap

    a = make_circuit("a", ["a0.0", "a1.0", "m1"], [("embed->a0.0.v", 1.0), ("a0.0->a1.0.k", 1.0),
                                                  ("a1.0->logits", 1.0), ("a0.0->m1", 1.0), ("m1->logits", 1.0)])
    b = make_circuit("b", ["a0.0", "a1.0", "m1"], [("embed->a0.0.v", 1.0), ("a0.0->a1.0.k", 1.0),
                                                  ("a0.0->m1", 1.0), ("m1->logits", 1.0), ("embed->a1.0.q", 1.0)])
    # Shared: embed->a0.0.v, a0.0->a1.0.k, a0.0->m1, m1->logits. a0.0->a1.0.k dangles (a1.0->logits is a's only).
    nodes, edges = connected_part(overlap([a, b], "edges"))
    assert nodes == ("a0.0", "m1") and edges == ("embed->a0.0.v", "a0.0->m1", "m1->logits")
    assert connected_part(overlap([load_reference("digits-lan2023"), load_reference("months-lan2023")])) == ((), ())
