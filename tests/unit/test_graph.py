"""Covers: canonical node/edge keys, their parsing, and the component graph's counts pinned from shape alone."""

from __future__ import annotations

import pytest

from discovery.graph import (
    EMBED,
    ComponentGraph,
    Edge,
    Granularity,
    InvalidKey,
    ModelShape,
    NodeKind,
    head,
    mlp,
    parse_destination,
    parse_edge,
    parse_node,
)

GPT2_SMALL = ModelShape(n_layers=12, n_heads=12)


def test_gpt2_small_edge_counts_match_published_counts() -> None:
    g = ComponentGraph(GPT2_SMALL, Granularity.QKV)
    assert g.n_edges() == len(g.edges) == 32_491
    into = {"head": 0, "mlp": 0, "logits": 0}
    for e in g.edges:
        into[e.dst.kind.value] += 1
    assert into == {"head": 31_320, "mlp": 1_014, "logits": 157}
    # ACDC also counts the 432 q/k/v -> head edges (144 heads x 3).
    assert g.n_edges() + 3 * 144 == 32_923


def test_granularities() -> None:
    assert ComponentGraph(GPT2_SMALL, "heads").n_edges() == 11_611
    nodes = ComponentGraph(GPT2_SMALL, "nodes")
    assert nodes.n_edges() == 0 and len(nodes.nodes) == 158


def test_sources_are_numbered_in_topological_order() -> None:
    g = ComponentGraph(ModelShape(2, 3))
    assert [n.key for n in g.sources] == ["embed", "a0.0", "a0.1", "a0.2", "m0", "a1.0", "a1.1", "a1.2", "m1"]
    assert [n.key for n in g.upstream(head(1, 0))] == ["embed", "a0.0", "a0.1", "a0.2", "m0"]
    assert [n.key for n in g.upstream(mlp(0))] == ["embed", "a0.0", "a0.1", "a0.2"]
    assert sorted(g.sources, reverse=True)[0].key == "m1"


@pytest.mark.parametrize(
    "text,key",
    [("9.1", "a9.1"), ("a9.1", "a9.1"), ("A9.1", "a9.1"), ("a0.h1", "a0.1"), ("m5", "m5"), ("MLP 5", "m5"),
     ("mlp5", "m5"), ("embed", "embed"), ("input", "embed"), ("logits", "logits"), (" 10.7 ", "a10.7")],
)
def test_parse_node_accepts_paper_and_tool_spellings(text: str, key: str) -> None:
    assert parse_node(text).key == key


@pytest.mark.parametrize("text", ["", "9", "a9", "x1.2", "9.1.q", "m", "attn"])
def test_parse_node_rejects_garbage(text: str) -> None:
    with pytest.raises(InvalidKey):
        parse_node(text)


def test_edge_keys_round_trip() -> None:
    e = Edge(head(0, 1), head(3, 2), "q")
    assert e.key == "a0.1->a3.2.q"
    assert parse_edge(e.key) == e
    assert parse_edge("input->a0.h0<q>").key == "embed->a0.0.q"
    assert parse_destination("a9.1.v") == (head(9, 1), "v")


@pytest.mark.parametrize("text", ["a3.0->a2.0.q", "m1->m1", "a1.0->embed", "m0->a3.0.x", "logits->m1", "m0->m1.q"])
def test_impossible_edges_are_rejected(text: str) -> None:
    with pytest.raises(InvalidKey):
        parse_edge(text)


def test_heads_of_a_layer_feed_its_mlp_but_not_its_heads() -> None:
    g = ComponentGraph(ModelShape(2, 2))
    assert g.contains(Edge(head(0, 1), mlp(0)))
    assert not g.contains(Edge(head(0, 1), head(0, 0), "q"))
    assert g.contains(Edge(EMBED, head(0, 0), "k"))
    assert not g.contains(Edge(head(5, 0), mlp(6)))
    assert g.check_node(parse_node("logits")).kind is NodeKind.LOGITS
