"""Covers: connectedness (connected_core, is_connected) and random_circuits: connected, right size, seeded, at node and edge level."""

from __future__ import annotations

import pytest

from discovery.errors import SettingsError
from discovery.evaluation import connected_core, is_connected, random_circuits
from discovery.graph import EMBED, ComponentGraph, Edge, Granularity, ModelShape, NodeKind, head, logits, mlp

QKV_GRAPH = ComponentGraph(ModelShape(3, 4), Granularity.QKV)
HEADS_GRAPH = ComponentGraph(ModelShape(3, 4), Granularity.HEADS)
OUT = logits(3)


def test_connected_core_drops_dangling_edges() -> None:
    path = {Edge(EMBED, head(0, 1), "k"), Edge(head(0, 1), mlp(1)), Edge(mlp(1), OUT)}
    no_input = Edge(head(1, 2), head(2, 0), "v")  # a1.2 receives nothing
    no_output = Edge(head(0, 1), head(2, 3), "q")  # a2.3 sends nothing
    assert connected_core(path | {no_input, no_output}) == path
    assert is_connected(path)
    assert not is_connected(path | {no_output})
    assert not is_connected(set())
    # a head that receives through any of its q/k/v inputs counts as reached
    assert is_connected({Edge(EMBED, head(1, 0), "q"), Edge(head(1, 0), OUT)})


@pytest.mark.parametrize("graph", [QKV_GRAPH, HEADS_GRAPH])
def test_edge_circuits_are_connected_of_the_right_size_and_seeded(graph) -> None:
    circuits = random_circuits(graph, 12, 20, seed=4, level="edges")
    assert len(circuits) == 20
    every = set(graph.edges)
    for c in circuits:
        assert len(c) == 12 and c <= every and is_connected(c)
    assert circuits == random_circuits(graph, 12, 20, seed=4, level="edges")
    assert circuits != random_circuits(graph, 12, 20, seed=5, level="edges")


def test_edge_circuits_with_a_node_count() -> None:
    for c in random_circuits(QKV_GRAPH, (9, 5), 15, seed=0, level="edges"):
        touched = {n for e in c for n in (e.src, e.dst) if n.kind in (NodeKind.HEAD, NodeKind.MLP)}
        assert len(c) == 9 and len(touched) == 5 and is_connected(c)
    assert random_circuits(QKV_GRAPH, 1, 3, seed=0, level="edges") == [frozenset({Edge(EMBED, OUT)})] * 3
    with pytest.raises(SettingsError):
        random_circuits(QKV_GRAPH, (3, 5), 1, level="edges")


def test_node_circuits_have_the_requested_heads_and_mlps_and_are_seeded() -> None:
    circuits = random_circuits(QKV_GRAPH, (5, 2), 10, seed=1, level="nodes")
    for c in circuits:
        assert EMBED in c and OUT in c  # connected through the residual stream by construction
        assert sum(n.kind is NodeKind.HEAD for n in c) == 5 and sum(n.kind is NodeKind.MLP for n in c) == 2
        # the edges a node circuit implies (every kept node into every later one and the logits) are connected
        assert is_connected({e for e in QKV_GRAPH.edges if e.src in c and e.dst in c})
    assert circuits == random_circuits(QKV_GRAPH, (5, 2), 10, seed=1, level="nodes")
    assert len({c for c in circuits}) > 1
    assert all(len(c) == 6 + 2 for c in random_circuits(QKV_GRAPH, 6, 4, seed=0))
    with pytest.raises(SettingsError):
        random_circuits(QKV_GRAPH, (13, 0), 1)
