"""A circuit as a networkx graph, and the graph questions asked of one circuit: its strongest paths, what feeds
a node and what it feeds, its shape, whether a path runs through given nodes.

The graph is a ``networkx.MultiDiGraph`` (a ``DiGraph`` subclass) keyed by canonical node keys (``embed``,
``a9.1``, ``m5``, ``logits``): a head reads one source through up to three inputs (q, k, v), which are three
edges between the same pair of nodes, each keyed by its input (``""`` where the destination is not a head).
Nodes carry ``kind``, ``layer``, ``head``, ``score``, ``kept``, ``role`` (with ``role_score``, ``role_source``,
``role_note``) and ``attributes``; edges ``input``, ``score``, ``kept``; the graph its circuit's fields (name,
model, task, source, method, threshold, ...). ``to_networkx`` and ``from_networkx`` are lossless inverses.

"Connected" is ``discovery.topology``'s rule, written once there and used here: an edge belongs to the
connected core when it lies on an ``embed -> ... -> logits`` path of the circuit's own edges.

Path strength. Each kept edge gets a weight w = |score| / the largest |score| among the circuit's kept edges, so
the strongest edge weighs 1; a path's strength is the product of its edges' weights (1 for a path of the
strongest edges, smaller for every weaker or extra step). Where a head reads the previous node through more than
one of q/k/v, a path takes the strongest of them. An edge without a finite score weighs 1 (a published circuit
lists no scores: its paths are then ordered by length). The K strongest paths are Yen's K shortest simple paths
(``networkx.shortest_simple_paths``) under the cost −log w, ties broken by fewer edges.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Optional

import networkx as nx

from catalog.errors import InvalidCircuit
from catalog.records import CircuitLike, NewCircuit
from discovery.graph import Edge, InvalidKey, edge_key, parse_edge, parse_node
from discovery.jsonvalues import to_json
from discovery.topology import connected_core

# The circuit fields a graph carries, in this order (``g.graph``).
CIRCUIT_FIELDS = ("name", "model", "task", "source", "edges_known", "citation", "description", "method",
                  "threshold", "performance", "metadata")
_NODE_FIELDS = ("score", "kept", "role", "role_score", "role_source", "role_note", "attributes")
_TIE = 1e-9  # a hair of cost per edge: among equally strong paths, shorter ones first


def to_networkx(circuit: CircuitLike, *, kept_only: bool = True) -> nx.MultiDiGraph:
    """The circuit as a graph (see the module docstring): its kept nodes and edges, or every scored one."""
    g = nx.MultiDiGraph()
    g.graph.update({f: getattr(circuit, f) for f in CIRCUIT_FIELDS})
    g.graph["performance"] = dict(circuit.performance)
    g.graph["metadata"] = dict(circuit.metadata)
    for n in circuit.nodes:
        if n.kept or not kept_only:
            g.add_node(n.key, kind=str(n.kind), layer=n.layer, head=n.head,
                       **{f: getattr(n, f) for f in _NODE_FIELDS})
    for e in circuit.edges:
        if e.kept or not kept_only:  # a circuit lists both ends of its edges, kept where the edge is
            g.add_edge(e.src, e.dst, key=e.input or "", input=e.input, score=e.score, kept=e.kept)
    return g


def from_networkx(g: nx.MultiDiGraph) -> NewCircuit:
    """The circuit a graph from ``to_networkx`` (or a file read by ``catalog.formats.graphs``) holds, read by the
    native format's strict reader (``catalog.formats.native``): an unknown field, a wrong type, a key that is not
    a component, an edge that cannot exist are refused with the reason, as in any import."""
    from catalog.formats.native import FORMAT, VERSION, import_circuit

    circuit = {f: to_json(v) for f, v in g.graph.items() if f in CIRCUIT_FIELDS and v is not None}
    unknown = sorted(str(f) for f in g.graph if f not in CIRCUIT_FIELDS)
    if unknown:
        raise InvalidCircuit(f"graph: unknown field {unknown[0]!r}")
    nodes = [{"key": str(key), **{f: to_json(v) for f, v in data.items() if v is not None and f not in _DERIVED}}
             for key, data in sorted(g.nodes(data=True), key=lambda item: _order(parse_node, item[0]))]
    edges = []
    for src, dst, key, data in g.edges(keys=True, data=True):
        edge = {f: to_json(v) for f, v in data.items() if v is not None}
        edge.setdefault("input", key or None)
        edges.append({"src": str(src), "dst": str(dst), **edge})
    edges.sort(key=lambda e: _order(parse_edge, edge_key(e["src"], e["dst"], e["input"])))
    return import_circuit({"format": FORMAT, "version": VERSION, "circuit": circuit, "nodes": nodes, "edges": edges})


def _order(parse: Any, key: Any) -> tuple[int, Any]:
    """Topological order for keys that parse (whatever order a file lists them in); the rest after, as given, for
    the strict reader to refuse with its reason."""
    try:
        return 0, parse(str(key)).order
    except (InvalidKey, TypeError, ValueError):
        return 1, ()


_DERIVED = ("kind", "layer", "head")  # follow from the key: a graph carries them for its readers, files need not


def connected_edges(circuit: CircuitLike) -> frozenset[str]:
    """The keys of the circuit's kept edges on an ``embed -> logits`` path (``discovery.topology``)."""
    return frozenset(e.key for e in connected_core(_edges(circuit)))


def _edges(circuit: CircuitLike) -> list[Edge]:
    return [parse_edge(e.key) for e in circuit.edges if e.kept]


def _require_edges(circuit: CircuitLike, question: str) -> None:
    if not circuit.edges_known:
        raise InvalidCircuit(f"circuit {circuit.name!r} lists nodes only: its edges are unknown, so it has no "
                             f"{question}")


def _node_key(circuit: CircuitLike, g: nx.MultiDiGraph, text: str) -> str:
    key = parse_node(text).key
    if key not in g:
        raise InvalidCircuit(f"circuit {circuit.name!r} does not keep {key}")
    return key


# ---------------------------------------------------------------------------------------------------------
# Paths


@dataclass(frozen=True)
class Path:
    """A directed path: its nodes, the edges it takes (keys with their inputs) and its strength."""

    nodes: tuple[str, ...]
    edges: tuple[str, ...]
    strength: float


def edge_weights(circuit: CircuitLike) -> dict[str, float]:
    """Each kept edge's weight, |score| / the largest kept |score| (1 where unscored); see the module docstring."""
    kept = [e for e in circuit.edges if e.kept]
    finite = [abs(e.score) for e in kept if e.score is not None and math.isfinite(e.score)]
    top = max(finite, default=0.0)
    return {e.key: (abs(e.score) / top if top > 0 and e.score is not None and math.isfinite(e.score) else 1.0)
            for e in kept}


def strongest_paths(circuit: CircuitLike, source: str = "embed", target: str = "logits", k: int = 10) -> list[Path]:
    """The ``k`` strongest directed paths from ``source`` to ``target`` through the circuit's kept edges,
    strongest first (see the module docstring)."""
    _require_edges(circuit, "paths")
    if k < 1:
        raise InvalidCircuit(f"--top: ask for at least one path, got {k}")
    g = to_networkx(circuit)
    src, dst = _node_key(circuit, g, source), _node_key(circuit, g, target)
    weights = edge_weights(circuit)
    best: dict[tuple[str, str], tuple[float, str]] = {}  # (u, v) -> (weight, edge key) of the strongest input
    for e in circuit.edges:
        if e.kept and weights[e.key] >= best.get((e.src, e.dst), (-1.0, ""))[0]:
            best[(e.src, e.dst)] = (weights[e.key], e.key)
    simple = nx.DiGraph()
    simple.add_nodes_from(g.nodes)
    for (u, v), (w, key) in best.items():
        simple.add_edge(u, v, cost=_cost(w), weight=w, key=key)
    if src == dst or not nx.has_path(simple, src, dst):
        return []
    paths = []
    for nodes in islice(nx.shortest_simple_paths(simple, src, dst, weight="cost"), k):
        steps = list(zip(nodes, nodes[1:]))
        strength = math.prod(simple.edges[u, v]["weight"] for u, v in steps)
        paths.append(Path(tuple(nodes), tuple(simple.edges[u, v]["key"] for u, v in steps), strength))
    return paths


def _cost(weight: float) -> float:
    return (-math.log(weight) if weight > 0 else 1e6) + _TIE


def path_through(circuit: CircuitLike, nodes: Sequence[str]) -> bool:
    """Whether a directed path of the circuit's kept edges visits ``nodes`` in this order (not necessarily
    adjacent: ``a0.1, a9.1, logits`` holds when a0.1 reaches a9.1 and a9.1 reaches the logits)."""
    if not circuit.edges_known or len(nodes) < 2:
        return False
    return reaches_in_order(adjacency((e.src, e.dst) for e in circuit.edges if e.kept), nodes)


def adjacency(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for src, dst in pairs:
        out.setdefault(src, set()).add(dst)
    return out


def reaches_in_order(succ: Mapping[str, set[str]], nodes: Sequence[str]) -> bool:
    """Whether each of ``nodes`` reaches the next through ``succ`` (a DAG's successor sets)."""
    for a, b in zip(nodes, nodes[1:]):
        seen, frontier = {a}, [a]
        while frontier and b not in seen:
            nxt = [m for n in frontier for m in succ.get(n, ()) if m not in seen]
            seen.update(nxt)
            frontier = nxt
        if b not in seen:
            return False
    return True


# ---------------------------------------------------------------------------------------------------------
# Neighbours


@dataclass(frozen=True)
class Neighbour:
    """A node reached from the asked one, ``distance`` edges up (what feeds it) or down (what it feeds)."""

    key: str
    distance: int
    role: Optional[str]
    score: Optional[float]
    via: tuple[tuple[str, Optional[float]], ...]  # the edges from the previous ring that reach it, with scores


def neighbours(circuit: CircuitLike, node: str, direction: str = "up", depth: int = 1) -> list[Neighbour]:
    """What feeds ``node`` (``up``) or what it feeds (``down``), up to ``depth`` edges away, by distance then
    topological order."""
    _require_edges(circuit, "neighbours")
    if direction not in ("up", "down"):
        raise InvalidCircuit(f"direction must be up or down, got {direction!r}")
    if depth < 1:
        raise InvalidCircuit(f"--depth must be at least 1, got {depth}")
    g = to_networkx(circuit)
    start = _node_key(circuit, g, node)
    step = g.in_edges if direction == "up" else g.out_edges
    seen, frontier, found = {start}, [start], []
    for distance in range(1, depth + 1):
        via: dict[str, list[tuple[str, Optional[float]]]] = {}
        for current in frontier:
            for u, v, data in step(current, data=True):
                other = u if direction == "up" else v
                if other not in seen:
                    inp = data.get("input")
                    via.setdefault(other, []).append((f"{u}->{v}.{inp}" if inp else f"{u}->{v}", data.get("score")))
        ordered = sorted(via, key=parse_node)
        for key in ordered:
            data = g.nodes[key]
            found.append(Neighbour(key, distance, data.get("role"), data.get("score"), tuple(sorted(via[key]))))
        seen.update(ordered)
        frontier = ordered
    return found


# ---------------------------------------------------------------------------------------------------------
# Shape


@dataclass(frozen=True)
class GraphStats:
    """A circuit's shape. Edge figures are None for a circuit known by its nodes only.

    ``per_layer``: for each layer, kept ``heads``, ``mlps`` and ``edges_in`` (kept edges into that layer's heads
    and MLP); ``edges_to_logits`` the rest. ``depth``: the longest directed path from embed to logits, in edges;
    ``width``: the most heads and MLPs in one layer; ``components``: weakly connected pieces among the kept nodes
    and edges; ``dangling``: kept edges on no embed->logits path; ``top_in``/``top_out``: the nodes with the most
    kept edges in/out; ``kept_share``: kept edges / every edge the circuit stores, for a circuit that stores the
    edges it scored and dropped (a discovered one), else None."""

    name: str
    n_heads: int
    n_mlps: int
    width: int
    per_layer: Mapping[int, Mapping[str, int]]
    n_edges: Optional[int] = None
    edges_to_logits: Optional[int] = None
    edges_by_input: Mapping[str, int] = field(default_factory=dict)
    depth: Optional[int] = None
    components: Optional[int] = None
    dangling: Optional[int] = None
    top_in: tuple[tuple[str, int], ...] = ()
    top_out: tuple[tuple[str, int], ...] = ()
    kept_share: Optional[float] = None


def graph_stats(circuit: CircuitLike, top: int = 3) -> GraphStats:
    """The figures of ``GraphStats`` for one circuit; ``top`` nodes by in- and out-degree."""
    g = to_networkx(circuit)
    per_layer: dict[int, Counter[str]] = {}
    for _, data in g.nodes(data=True):
        if data["kind"] in ("head", "mlp"):
            per_layer.setdefault(int(data["layer"]), Counter())[data["kind"] + "s"] += 1
    layers = {layer: {k: c[k] for k in ("heads", "mlps")} for layer, c in sorted(per_layer.items())}
    shape = GraphStats(
        name=circuit.name, n_heads=sum(c["heads"] for c in layers.values()),
        n_mlps=sum(c["mlps"] for c in layers.values()),
        width=max((c["heads"] + c["mlps"] for c in layers.values()), default=0), per_layer=layers,
    )
    if not circuit.edges_known:
        return shape
    into = Counter(g.nodes[dst]["layer"] for _, dst in g.edges())
    to_logits = into.pop(None, 0)
    for layer, n in into.items():
        layers.setdefault(int(layer), {"heads": 0, "mlps": 0})["edges_in"] = n
    for counts in layers.values():
        counts.setdefault("edges_in", 0)
    stored_dropped = circuit.source == "discovered" or any(not e.kept for e in circuit.edges)
    return dataclasses.replace(
        shape,
        per_layer=dict(sorted(layers.items())),
        n_edges=g.number_of_edges(),
        edges_to_logits=to_logits,
        edges_by_input=dict(sorted(Counter(d["input"] or "-" for _, _, d in g.edges(data=True)).items())),
        depth=_depth(g),
        components=nx.number_weakly_connected_components(g) if len(g) else 0,
        dangling=g.number_of_edges() - len(connected_edges(circuit)),
        top_in=_top_degree(g.in_degree(), top),
        top_out=_top_degree(g.out_degree(), top),
        kept_share=g.number_of_edges() / len(circuit.edges) if stored_dropped and circuit.edges else None,
    )


def _top_degree(degrees: Iterable[tuple[str, int]], top: int) -> tuple[tuple[str, int], ...]:
    ranked = sorted(((n, d) for n, d in degrees if d), key=lambda p: (-p[1], parse_node(p[0])))
    return tuple(ranked[:top])


def _depth(g: nx.MultiDiGraph) -> Optional[int]:
    """The longest embed -> logits path, in edges (None when no path joins them)."""
    if "embed" not in g or "logits" not in g or not nx.has_path(g, "embed", "logits"):
        return None
    longest = {"embed": 0}
    for node in nx.topological_sort(g):
        if node in longest:
            for succ in g.successors(node):
                longest[succ] = max(longest.get(succ, 0), longest[node] + 1)
    return longest.get("logits")
