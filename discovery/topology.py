"""What "connected" means for a circuit, and random circuits that are connected, for baselines.

Node level. Under node ablation (``PatchSetup.mask_from_nodes``) a kept node is ablated nowhere: it reads the
whole residual stream, which always holds ``embed``, and writes into the stream that ``logits`` read. So every
kept node lies on the path ``embed -> node -> logits``, and every node set is connected; what one might
worry about (a random circuit falling apart) cannot happen at node level. Random node circuits are therefore
uniform draws of the requested numbers of heads and MLPs.

Edge level. A circuit is its edges; it is connected when it is not empty and every edge lies on a directed path
``embed -> ... -> logits`` made of its own edges: the edge's source is ``embed`` or receives a circuit edge (into
any of its q/k/v inputs, for a head), and its destination is ``logits`` or sends a circuit edge. Edges failing
this are *dangling*; ``connected_core`` removes them, as EAP-IG's ``Graph.prune`` does before MIB evaluates a
circuit (MIB, arXiv 2504.13151; hannamw/EAP-IG ``graph.py`` ``prune``, which repeats until nothing changes; the
EAP-IG commit MIB pins, 7af394a, stops after one pass inside ``apply_topn`` and prunes again before evaluating,
which on rare sizes leaves a dangling edge or two).

The one cut rule. Every circuit cut from edge scores (EAP and EAP-IG by top-k, threshold or target, ``show
--threshold``, MIB's curve) is ``connected_core`` of the edges the rule selects (``cut``): sizes are reported after
that pruning. A method's own decisions (ACDC's, path patching's) are not cut from scores and are kept as made.

Pure Python over ``discovery.graph``: no torch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Literal, Optional, Union

from discovery.errors import SettingsError
from discovery.graph import EMBED, QKV, ComponentGraph, Edge, Granularity, InputName, Node, NodeKind, feeds

Level = Literal["nodes", "edges"]
Size = Union[int, Sequence[int]]

_MAX_TRIES = 200


def connected_core(edges: Iterable[Edge]) -> frozenset[Edge]:
    """The edges that lie on an ``embed -> logits`` path of the given edges (dangling edges removed)."""
    edges = frozenset(edges)
    into: dict[Node, list[Node]] = {}
    out_of: dict[Node, list[Node]] = {}
    for e in edges:
        into.setdefault(e.dst, []).append(e.src)
        out_of.setdefault(e.src, []).append(e.dst)
    order = sorted(set(into) | set(out_of))
    reached = {EMBED}
    for node in order:  # topological order: every edge into a node comes from an earlier node
        if any(src in reached for src in into.get(node, ())):
            reached.add(node)
    reaches = {n for n in order if n.kind is NodeKind.LOGITS}
    for node in reversed(order):
        if any(dst in reaches for dst in out_of.get(node, ())):
            reaches.add(node)
    return frozenset(e for e in edges if e.src in reached and e.dst in reaches)


def ranked(scored: Iterable[tuple[Edge, float]], order: Iterable[Edge], key: str = "absolute") -> list[Edge]:
    """The scored edges best first: by |score| (``absolute``) or by score (``signed``), ties in ``order`` (the
    graph's), NaN scores last (never selected by a threshold)."""
    position = {e: i for i, e in enumerate(order)}
    finite = [(e, s) for e, s in scored if not math.isnan(s)]
    value = (lambda s: abs(s)) if key == "absolute" else (lambda s: s)
    best = sorted(finite, key=lambda p: (-value(p[1]), position.get(p[0], len(position))))
    return [e for e, _ in best] + [e for e, s in scored if math.isnan(s)]


def cut(ranked_edges: Sequence[Edge], k: int) -> frozenset[Edge]:
    """The one cut rule: the top ``k`` of ``ranked_edges``, dangling edges removed."""
    return connected_core(ranked_edges[:k])


def cut_threshold(scored: Iterable[tuple[Edge, float]], threshold: float) -> frozenset[Edge]:
    """The one cut rule by threshold: edges with |score| >= threshold, dangling edges removed."""
    return connected_core(e for e, s in scored if abs(s) >= threshold)


def is_connected(edges: Iterable[Edge]) -> bool:
    """Whether an edge circuit is non-empty and has no dangling edge."""
    edges = frozenset(edges)
    return bool(edges) and connected_core(edges) == edges


def internal_nodes(graph: ComponentGraph) -> tuple[Node, ...]:
    """Heads and MLPs: what a circuit chooses among (embed and logits belong to every circuit)."""
    return tuple(n for n in graph.sources if n.kind is not NodeKind.EMBED)


def random_circuits(
    graph: ComponentGraph, size: Size, n: int, seed: int = 0, level: Level = "nodes",
) -> list[frozenset]:
    """``n`` random connected circuits of ``size``, reproducible from ``seed``.

    nodes: ``size`` is the number of heads and MLPs together, or ``(n_heads, n_mlps)``; each circuit is a
        frozenset of Nodes holding those plus ``embed`` and ``logits``.
    edges: ``size`` is the number of edges, or ``(n_edges, n_nodes)`` to also fix how many heads and MLPs they
        touch; each circuit is a frozenset of ``graph``'s Edges (q/k/v edges for a QKV graph), connected as
        defined above. Construction: draw the nodes; give each node, in topological order, one edge from
        ``embed`` or an earlier drawn node; give each node that still sends nothing one edge to a later drawn
        node or ``logits``; then add uniformly drawn edges among ``embed``, the nodes and ``logits`` (each keeps
        the circuit connected) up to the size.
    """
    if n < 0:
        raise SettingsError("the number of random circuits must be >= 0")
    rng = random.Random(seed)
    if level == "nodes":
        return [_random_node_circuit(graph, size, rng) for _ in range(n)]
    if level == "edges":
        if graph.granularity is Granularity.NODES:
            raise SettingsError("edge-level random circuits need a graph with edges (QKV or HEADS granularity)")
        return [_random_edge_circuit(graph, size, rng) for _ in range(n)]
    raise SettingsError(f"unknown level {level!r}: choose nodes or edges")


def _random_node_circuit(graph: ComponentGraph, size: Size, rng: random.Random) -> frozenset[Node]:
    nodes = internal_nodes(graph)
    if isinstance(size, int):
        if not 0 <= size <= len(nodes):
            raise SettingsError(f"cannot draw {size} of {len(nodes)} heads and MLPs")
        chosen = rng.sample(nodes, size)
    else:
        n_heads, n_mlps = (int(x) for x in size)
        heads = [x for x in nodes if x.kind is NodeKind.HEAD]
        mlps = [x for x in nodes if x.kind is NodeKind.MLP]
        if not (0 <= n_heads <= len(heads) and 0 <= n_mlps <= len(mlps)):
            raise SettingsError(f"cannot draw {n_heads} of {len(heads)} heads and {n_mlps} of {len(mlps)} MLPs")
        chosen = rng.sample(heads, n_heads) + rng.sample(mlps, n_mlps)
    return frozenset([EMBED, graph.logits, *chosen])


def _random_edge_circuit(graph: ComponentGraph, size: Size, rng: random.Random) -> frozenset[Edge]:
    n_edges, n_nodes = (size, None) if isinstance(size, int) else (int(size[0]), int(size[1]))
    pool = internal_nodes(graph)
    if n_edges < 1:
        raise SettingsError("a connected edge circuit has at least one edge")
    if n_nodes is not None and not 0 <= n_nodes <= min(len(pool), n_edges - 1 if n_edges > 1 else 0):
        raise SettingsError(f"{n_edges} edges cannot connect {n_nodes} heads and MLPs")
    for _ in range(_MAX_TRIES):
        k = n_nodes if n_nodes is not None else rng.randint(0 if n_edges == 1 else 1, min(len(pool), n_edges - 1))
        edges = _try_edge_circuit(graph, sorted(rng.sample(pool, k)), n_edges, rng)
        if edges is not None:
            return edges
    raise SettingsError(f"found no connected circuit of {n_edges} edges over {n_nodes} nodes in {_MAX_TRIES} tries")


def _try_edge_circuit(graph: ComponentGraph, chosen: list[Node], n_edges: int,
                      rng: random.Random) -> Optional[frozenset[Edge]]:
    """One attempt: a spanning set of edges through ``chosen`` (sorted), filled up to ``n_edges``; or None."""
    inputs: tuple[Optional[InputName], ...] = QKV if graph.granularity is Granularity.QKV else (None,)

    def edge(src: Node, dst: Node) -> Edge:
        return Edge(src, dst, rng.choice(inputs) if dst.kind is NodeKind.HEAD else None)

    edges: set[Edge] = set()
    if not chosen:
        edges.add(Edge(EMBED, graph.logits))
    for node in chosen:
        edges.add(edge(rng.choice([EMBED, *(m for m in chosen if feeds(m, node))]), node))
    for node in chosen:
        if not any(e.src == node for e in edges):
            edges.add(edge(node, rng.choice([*(m for m in chosen if feeds(node, m)), graph.logits])))
    if len(edges) > n_edges:
        return None
    allowed = {EMBED, graph.logits, *chosen}
    spare = [e for e in graph.edges if e.src in allowed and e.dst in allowed and e not in edges]
    if len(spare) < n_edges - len(edges):
        return None
    edges.update(rng.sample(spare, n_edges - len(edges)))
    return frozenset(edges)
