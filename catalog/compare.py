"""Comparing circuits: which components and edges several circuits share, and what changed between two.

Pure functions over ``CircuitRecord`` (or ``NewCircuit``): no database, so a notebook can compare circuits
it loaded from files as easily as the CLI compares stored ones.

Two choices shape every answer here:

* Only kept nodes and edges count. A record may carry scored-but-dropped components (a run keeps every
  edge score); they are not part of the circuit and must not inflate overlaps.
* At node level the comparison is over heads and MLPs. ``embed`` and ``logits`` belong to every circuit,
  so counting them would push every Jaccard index towards 1 for small circuits.

Keys are canonical (``a9.1``, ``m5``, ``a0.1->a9.1.q``) and always listed in topological order
(``Node.order``), so output is stable and reads from the bottom of the model to the top.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from catalog.errors import InvalidCircuit
from catalog.records import CircuitLike, EdgeRecord, NodeRecord
from discovery.graph import NodeKind, parse_edge, parse_node
from discovery.topology import connected_core

LEVELS: tuple[str, ...] = ("nodes", "edges")
COMPONENT_KINDS: tuple[str, ...] = ("head", "mlp")

# Hub ids and the short names people type for the same weights; a mismatch outside these is worth a warning.
_MODEL_ALIASES = {"openai-community/gpt2": "gpt2"}


@dataclass(frozen=True)
class Overlap:
    """What several circuits share.

    ``jaccard[A][B]`` is |A ∩ B| / |A ∪ B| over the compared keys (1.0 when both are empty: two empty
    circuits agree). ``counts[A][B]`` is the (intersection, union) pair behind it, because papers quote
    overlaps as fractions like 13/20. ``membership`` lists, for every key in any circuit, the circuits
    holding it. ``shared_nodes``/``shared_edges`` are the shared sub-circuit (see ``overlap``).
    """

    circuits: tuple[str, ...]
    level: str
    kinds: tuple[str, ...]
    shared: tuple[str, ...]
    jaccard: dict[str, dict[str, float]]
    counts: dict[str, dict[str, tuple[int, int]]]
    membership: dict[str, list[str]]
    shared_nodes: tuple[str, ...]
    shared_edges: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "circuits": list(self.circuits),
            "level": self.level,
            "kinds": list(self.kinds),
            "shared": list(self.shared),
            "jaccard": self.jaccard,
            "counts": {a: {b: list(c) for b, c in row.items()} for a, row in self.counts.items()},
            "membership": self.membership,
            "shared_subcircuit": {"nodes": list(self.shared_nodes), "edges": list(self.shared_edges)},
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ScoreChange:
    """A shared node or edge whose score differs; ``delta`` is b - a, None when either score is missing."""

    key: str
    a: Optional[float]
    b: Optional[float]
    delta: Optional[float]


@dataclass(frozen=True)
class RoleChange:
    key: str
    a: Optional[str]
    b: Optional[str]


@dataclass(frozen=True)
class Diff:
    """Circuit ``a`` against circuit ``b`` at one level (edges when both know their edges, else nodes)."""

    a: str
    b: str
    level: str
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    shared: tuple[str, ...]
    score_changes: tuple[ScoreChange, ...]
    role_changes: tuple[RoleChange, ...]
    jaccard: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "level": self.level,
            "only_a": list(self.only_a),
            "only_b": list(self.only_b),
            "shared": list(self.shared),
            "jaccard": self.jaccard,
            "score_changes": [dataclasses.asdict(c) for c in self.score_changes],
            "role_changes": [dataclasses.asdict(c) for c in self.role_changes],
        }


# ---------------------------------------------------------------------------------------------------------
# Keys and their order


def node_sort_key(key: str) -> tuple[int, int, int]:
    return parse_node(key).order


def edge_sort_key(key: str) -> tuple[object, ...]:
    return parse_edge(key).order


def sort_keys(keys: Collection[str], level: str) -> tuple[str, ...]:
    """Topological order: nodes by layer (heads before the MLP), edges by destination then source."""
    return tuple(sorted(keys, key=edge_sort_key if level == "edges" else node_sort_key))


def kept_nodes(circuit: CircuitLike) -> tuple[NodeRecord, ...]:
    return tuple(n for n in circuit.nodes if n.kept)


def kept_edges(circuit: CircuitLike) -> tuple[EdgeRecord, ...]:
    return tuple(e for e in circuit.edges if e.kept)


def component_keys(circuit: CircuitLike, kinds: Collection[str] = COMPONENT_KINDS) -> frozenset[str]:
    """The kept nodes compared at node level: heads and MLPs unless ``kinds`` says otherwise."""
    return frozenset(n.key for n in kept_nodes(circuit) if n.kind in kinds)


def edge_keys(circuit: CircuitLike) -> frozenset[str]:
    return frozenset(e.key for e in kept_edges(circuit))


def jaccard(a: Collection[str], b: Collection[str]) -> float:
    union = len(set(a) | set(b))
    return 1.0 if union == 0 else len(set(a) & set(b)) / union


# ---------------------------------------------------------------------------------------------------------
# Overlap


def overlap(
    circuits: Sequence[CircuitLike], level: str = "nodes", *, kinds: Collection[str] = COMPONENT_KINDS
) -> Overlap:
    """What ``circuits`` share at ``level``.

    The shared sub-circuit is the components every circuit keeps plus, at edge level, the edges every circuit
    keeps; at node level, the edges between shared components (embed and logits included) that every
    circuit known by its edges keeps, so a nodes-only circuit narrows the nodes but says nothing on edges.
    Raises InvalidCircuit for edge level when a circuit is known only by its nodes, and for duplicate names.
    """
    _check_inputs(circuits, level, kinds)
    names = tuple(c.name for c in circuits)
    node_sets = {c.name: component_keys(c, kinds) for c in circuits}
    sets = node_sets if level == "nodes" else {c.name: edge_keys(c) for c in circuits}
    shared = frozenset.intersection(*sets.values())
    shared_nodes = frozenset.intersection(*node_sets.values())
    if level == "edges":
        shared_edges = shared
    else:
        shared_edges = _edges_among(circuits, shared_nodes)
    union = frozenset.union(*sets.values())
    return Overlap(
        circuits=names,
        level=level,
        kinds=tuple(k for k in COMPONENT_KINDS if k in kinds),
        shared=sort_keys(shared, level),
        jaccard={a: {b: jaccard(sets[a], sets[b]) for b in names} for a in names},
        counts={a: {b: (len(sets[a] & sets[b]), len(sets[a] | sets[b])) for b in names} for a in names},
        membership={key: [n for n in names if key in sets[n]] for key in sort_keys(union, level)},
        shared_nodes=sort_keys(shared_nodes, "nodes"),
        shared_edges=sort_keys(shared_edges, "edges"),
        warnings=_model_warnings(circuits),
    )


def connected_part(result: Overlap) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The part of the shared sub-circuit that carries anything from ``embed`` to ``logits``: its shared edges
    that lie on an embed->logits path of shared edges (``discovery.topology.connected_core``), and the heads and
    MLPs they pass through. Empty when the circuits share no edges, or none is known by its edges."""
    edges = connected_core(parse_edge(k) for k in result.shared_edges)
    nodes = {n.key for e in edges for n in (e.src, e.dst) if n.kind in (NodeKind.HEAD, NodeKind.MLP)}
    return sort_keys(nodes, "nodes"), sort_keys({e.key for e in edges}, "edges")


def _check_inputs(circuits: Sequence[CircuitLike], level: str, kinds: Collection[str]) -> None:
    if level not in LEVELS:
        raise InvalidCircuit(f"unknown comparison level {level!r}: use nodes or edges")
    if len(circuits) < 1:
        raise InvalidCircuit("nothing to compare: give at least one circuit")
    unknown = sorted(set(kinds) - set(COMPONENT_KINDS))
    if unknown or not kinds:
        raise InvalidCircuit(f"components compared are head and/or mlp, not {unknown or 'nothing'}")
    names = [c.name for c in circuits]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidCircuit(f"circuit {dupes[0]!r} is given twice")
    if level == "edges":
        nodes_only = [c.name for c in circuits if not c.edges_known]
        if nodes_only:
            raise InvalidCircuit(
                f"circuit {nodes_only[0]!r} is known only by its nodes, so it has no edges to compare: "
                "compare at node level (--level nodes)"
            )


def _edges_among(circuits: Sequence[CircuitLike], components: frozenset[str]) -> frozenset[str]:
    """Edges between the given components (plus embed/logits) that every edge-known circuit keeps."""
    with_edges = [c for c in circuits if c.edges_known]
    if not with_edges:
        return frozenset()
    allowed = components | {"embed", "logits"}
    common = frozenset.intersection(*(edge_keys(c) for c in with_edges))
    return frozenset(k for k in common if _endpoints(k) <= allowed)


def _endpoints(edge_key: str) -> set[str]:
    edge = parse_edge(edge_key)
    return {edge.src.key, edge.dst.key}


def _model_warnings(circuits: Sequence[CircuitLike]) -> tuple[str, ...]:
    models = sorted({_MODEL_ALIASES.get(c.model, c.model) for c in circuits})
    if len(models) > 1:
        return (f"these circuits come from different models ({', '.join(models)}): shared keys name "
                "components in the same place, not the same weights",)
    return ()


# ---------------------------------------------------------------------------------------------------------
# Diff


def diff(a: CircuitLike, b: CircuitLike, level: Optional[str] = None) -> Diff:
    """``a`` against ``b``: what only one keeps, what both keep, and how shared scores and roles moved.

    ``level`` defaults to edges when both circuits know their edges, else nodes. Role changes are reported
    at node level only (edges have no roles).
    """
    if level is None:
        level = "edges" if a.edges_known and b.edges_known else "nodes"
    _check_inputs([a, b], level, COMPONENT_KINDS)
    nodes_a = {n.key: n for n in kept_nodes(a) if n.kind in COMPONENT_KINDS}
    nodes_b = {n.key: n for n in kept_nodes(b) if n.kind in COMPONENT_KINDS}
    if level == "nodes":
        scores_a = {k: n.score for k, n in nodes_a.items()}
        scores_b = {k: n.score for k, n in nodes_b.items()}
    else:
        scores_a = {e.key: e.score for e in kept_edges(a)}
        scores_b = {e.key: e.score for e in kept_edges(b)}
    shared = sort_keys(scores_a.keys() & scores_b.keys(), level)
    changes = (_score_change(k, scores_a[k], scores_b[k]) for k in shared)
    roles = () if level != "nodes" else tuple(
        RoleChange(k, nodes_a[k].role, nodes_b[k].role) for k in shared if nodes_a[k].role != nodes_b[k].role
    )
    return Diff(
        a=a.name,
        b=b.name,
        level=level,
        only_a=sort_keys(scores_a.keys() - scores_b.keys(), level),
        only_b=sort_keys(scores_b.keys() - scores_a.keys(), level),
        shared=shared,
        score_changes=tuple(c for c in changes if c is not None),
        role_changes=roles,
        jaccard=jaccard(scores_a.keys(), scores_b.keys()),
    )


def _score_change(key: str, a: Optional[float], b: Optional[float]) -> Optional[ScoreChange]:
    """A change worth reporting: scores differ, or one side has a score and the other none."""
    if a is None and b is None:
        return None
    if a is not None and b is not None:
        if a == b or (math.isnan(a) and math.isnan(b)):
            return None
        return ScoreChange(key, a, b, b - a)
    return ScoreChange(key, a, b, None)

