"""Questions across the whole catalog, asked of the database rather than of circuits loaded into Python: which
circuits are most like this one (``similar``), which contain these nodes, edges, a path, or another circuit
(``containing``).

Both read only kept nodes and edges, through the indexes made for them (``node.key``; the partial index of kept
edges by ``(src, dst, input, circuit_id, score)``, migration 0002) and the per-circuit summaries stored at save
time (``CircuitRow.n_components``, ``n_edges``, ``node_mass``, ``edge_mass``; ``catalog.similarity``). With ten
thousand circuits of 300 kept edges each, ``similar`` at edge level touches the index entries of the query's
edges and nothing else (timings: ``benchmarks/catalog_bench.py``, in the README).

Circuits are compared within one model unless asked otherwise: the same key (``a9.1``) names different heads in
different models. At edge level only circuits known by their edges take part.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import Float, Select, String, and_, case, column, func, select, true, values
from sqlalchemy.orm import Session, aliased

from catalog.circuits import get_circuit, list_circuits
from catalog.errors import InvalidCircuit
from catalog.graphs import adjacency, reaches_in_order
from catalog.records import CircuitRecord, CircuitSummary
from catalog.similarity import COMPONENTS, LEVELS, jaccard, weighted_from_min, weights
from catalog.tables import CircuitRow, EdgeRow, ModelRow, NodeRow
from discovery.graph import edge_key, parse_edge, parse_node

_CHUNK = 2_000  # keys per VALUES list (3 parameters an edge: well under SQLite's 32,766)
_EDGE_CHUNK = 500  # circuits whose kept edges are read at once when checking paths


@dataclass(frozen=True)
class Similar:
    """A circuit's likeness to the one asked about: ``shared`` keys of its ``size``, the Jaccard index and the
    score-weighted Jaccard (``catalog.similarity``)."""

    name: str
    model: str
    task: Optional[str]
    method: Optional[str]
    shared: int
    size: int
    jaccard: float
    weighted: float


@dataclass(frozen=True)
class SimilarResult:
    circuit: str
    level: str
    ranked_by: str
    size: int
    compared: int  # circuits compared (same model unless all models were asked for; at edge level, with edges)
    sharing: int  # of which share at least one key
    circuits: tuple[Similar, ...]


def similar(session: Session, name: str, *, level: str = "nodes", weighted: bool = False, top: Optional[int] = 10,
            all_models: bool = False) -> SimilarResult:
    """The catalog's circuits ranked by likeness to circuit ``name`` at ``level``: by Jaccard, or by weighted
    Jaccard when ``weighted`` (ties by name); the ``top`` first (None: all that share a key)."""
    if level not in LEVELS:
        raise InvalidCircuit(f"unknown level {level!r}: use nodes or edges")
    if top is not None and top < 1:
        raise InvalidCircuit(f"--top must be at least 1, got {top}")
    record = get_circuit(session, name, kept_only=True)
    if level == "edges" and not record.edges_known:
        raise InvalidCircuit(f"circuit {name!r} lists nodes only: compare it at node level")
    mine = weights(record, level)
    shared = _shared(session, mine, level)
    shared.pop(record.id, None)
    sizes = _sizes(session, shared, level, None if all_models else record.model)  # other models' drop out here
    scores = {i: (jaccard(int(shared[i][0]), len(mine), size), weighted_from_min(shared[i][1], not mine, size == 0))
              for i, (_, size) in sizes.items()}
    rank = 1 if weighted else 0
    ranked = sorted(scores, key=lambda i: (-scores[i][rank], sizes[i][0]))
    chosen = ranked if top is None else ranked[:top]
    summaries = {c.id: c for c in list_circuits(session, ids=chosen)} if chosen else {}
    found = tuple(Similar(summaries[i].name, summaries[i].model, summaries[i].task, summaries[i].method,
                          int(shared[i][0]), sizes[i][1], *scores[i]) for i in chosen)
    return SimilarResult(
        circuit=name, level=level, ranked_by="weighted Jaccard" if weighted else "Jaccard", size=len(mine),
        compared=_compared(session, record, level, all_models), sharing=len(scores), circuits=found,
    )


def _shared(session: Session, mine: dict[str, float], level: str) -> dict[int, list[float]]:
    """Per circuit sharing a kept key with ``mine``: [keys shared, Σ min(its share, mine)], from the kept keys'
    index alone (a chunk of ``mine`` at a time)."""
    keys = list(mine.items())
    out: dict[int, list[float]] = {}
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i:i + _CHUNK]
        item: Any
        if level == "nodes":
            query = values(column("key", String), column("w", Float), name="q").data(chunk).cte("q")
            # ``mine`` holds heads and MLPs only, and a key fixes its kind: the kept-node index answers alone
            item, on = NodeRow, and_(NodeRow.key == query.c.key, NodeRow.kept == true())
        else:
            rows = [(*_edge_parts(k), w) for k, w in chunk]
            query = values(column("src", String), column("dst", String), column("inp", String),
                           column("w", Float), name="q").data(rows).cte("q")
            item, on = EdgeRow, and_(EdgeRow.src == query.c.src, EdgeRow.dst == query.c.dst,
                                     EdgeRow.input == query.c.inp, EdgeRow.kept == true())
        smaller = case((item.share < query.c.w, item.share), else_=query.c.w)
        statement = (select(item.circuit_id, func.count(), func.sum(smaller)).select_from(query).join(item, on)
                     .group_by(item.circuit_id))
        for circuit_id, n, min_sum in session.execute(statement):
            entry = out.setdefault(circuit_id, [0, 0.0])
            entry[0] += n
            entry[1] += float(min_sum or 0.0)
    return out


def _sizes(session: Session, ids: Iterable[int], level: str, model: Optional[str]) -> dict[int, tuple[str, int]]:
    """Name and size at ``level`` of each of ``ids`` (those of ``model`` only, when given)."""
    size = CircuitRow.n_components if level == "nodes" else CircuitRow.n_edges
    wanted, out = sorted(ids), dict[int, tuple[str, int]]()
    for i in range(0, len(wanted), _CHUNK):
        query = select(CircuitRow.id, CircuitRow.name, size).where(CircuitRow.id.in_(wanted[i:i + _CHUNK]))
        if model is not None:
            query = query.join(ModelRow, ModelRow.id == CircuitRow.model_id).where(ModelRow.name == model)
        out.update((circuit_id, (name, n)) for circuit_id, name, n in session.execute(query))
    return out


def _edge_parts(key: str) -> tuple[str, str, str]:
    """An edge key as its stored columns, checked (an edge that cannot exist is refused, not searched for)."""
    edge = parse_edge(key)
    return edge.src.key, edge.dst.key, edge.input or ""


def _compared(session: Session, record: CircuitRecord, level: str, all_models: bool) -> int:
    query = select(func.count()).select_from(CircuitRow).where(CircuitRow.id != record.id)
    if level == "edges":
        query = query.where(CircuitRow.edges_known.is_(True))
    if not all_models:
        query = query.join(ModelRow, ModelRow.id == CircuitRow.model_id).where(ModelRow.name == record.model)
    return session.scalar(query) or 0


# ---------------------------------------------------------------------------------------------------------
# Containment


@dataclass(frozen=True)
class Containing:
    """The circuits that contain everything asked; ``skipped``: circuits not searched for edges or a path because
    they list nodes only."""

    circuits: tuple[CircuitSummary, ...]
    asked: dict[str, Any]
    skipped: int = 0


def containing(session: Session, *, nodes: Sequence[str] = (), edges: Sequence[str] = (), path: Sequence[str] = (),
               circuit: Optional[str] = None, model: Optional[str] = None) -> Containing:
    """The circuits whose kept nodes include all ``nodes``, whose kept edges include all ``edges``, with a directed
    path through ``path`` in that order (``catalog.graphs.path_through``), and that contain all of ``circuit``
    (its kept edges, or its heads and MLPs when it lists nodes only): every condition given must hold.

    Each condition is a query of circuit ids, and the answer one query over their intersection: ten thousand
    matching ids never travel to Python and back as bound parameters. Only the path is checked in Python, on
    the circuits that hold its nodes."""
    node_keys = sorted({parse_node(k).key for k in nodes}, key=parse_node)
    edge_keys = sorted({_edge_parts(k) for k in edges})
    path_keys = [parse_node(k).key for k in path]
    if path and len(path_keys) < 2:
        raise InvalidCircuit("--path: give at least two nodes, in order (e.g. a0.1,a9.1,logits)")
    if len(edge_keys) > _CHUNK:
        raise InvalidCircuit(f"--edges: at most {_CHUNK:,} edges at once; for a whole circuit's, use --circuit")
    asked: dict[str, Any] = {"nodes": node_keys, "edges": [edge_key(*e) for e in edge_keys], "path": path_keys}
    asked = {k: v for k, v in asked.items() if v}
    conditions: list[Select[Any]] = []
    if node_keys or path_keys:
        conditions.append(_holding_nodes(sorted(set(node_keys) | set(path_keys))))
    if edge_keys:
        conditions.append(_holding_edges(edge_keys))
    candidates = select(CircuitRow.id)
    by_edges = bool(edge_keys)
    if circuit is not None:
        record = get_circuit(session, circuit, kept_only=True)
        model = model or record.model
        asked["circuit"] = circuit
        conditions.append(_holding_circuit(record))
        by_edges = by_edges or record.edges_known
        candidates = candidates.where(CircuitRow.id != record.id)
    if not asked:
        raise InvalidCircuit("say what to look for: --nodes, --edges, --path or --circuit")
    for condition in conditions:
        candidates = candidates.where(CircuitRow.id.in_(condition))
    if model is not None:
        candidates = candidates.join(ModelRow, ModelRow.id == CircuitRow.model_id).where(ModelRow.name == model)
    skipped = 0
    if path_keys:
        skipped = session.scalar(select(func.count()).select_from(
            candidates.where(CircuitRow.edges_known.is_(False)).subquery())) or 0
    if path_keys or by_edges:
        candidates = candidates.where(CircuitRow.edges_known.is_(True))
    if not path_keys:
        return Containing(tuple(list_circuits(session, among=candidates)), asked, skipped)
    found = _with_path(session, set(session.scalars(candidates)), path_keys)
    return Containing(tuple(list_circuits(session, ids=found) if found else ()), asked, skipped)


def _holding_nodes(keys: Sequence[str]) -> Select[Any]:
    """Ids of the circuits that keep every node of ``keys`` (from the kept-node index alone)."""
    return (select(NodeRow.circuit_id).where(NodeRow.key.in_(keys), NodeRow.kept == true())
            .group_by(NodeRow.circuit_id).having(func.count(func.distinct(NodeRow.key)) == len(keys)))


def _holding_edges(keys: Sequence[tuple[str, str, str]]) -> Select[Any]:
    """Ids of the circuits that keep every edge of ``keys`` (distinct ``(src, dst, input)``; from the kept-edge
    index alone)."""
    query = values(column("src", String), column("dst", String), column("inp", String), name="q").data(
        list(keys)).cte("q")
    return (select(EdgeRow.circuit_id).select_from(query)
            .join(EdgeRow, and_(EdgeRow.src == query.c.src, EdgeRow.dst == query.c.dst,
                                EdgeRow.input == query.c.inp, EdgeRow.kept == true()))
            .group_by(EdgeRow.circuit_id).having(func.count() == len(keys)))


def _holding_circuit(record: CircuitRecord) -> Select[Any]:
    """Ids of the circuits that keep all of ``record``'s kept edges, or, when it lists nodes only, all of its
    kept heads and MLPs: its own rows joined to everyone's, so its keys are never sent as parameters."""
    row: Any = EdgeRow if record.edges_known else NodeRow
    mine, theirs = aliased(row), aliased(row)
    if record.edges_known:
        n = len(record.kept_edges)
        same = and_(theirs.src == mine.src, theirs.dst == mine.dst, theirs.input == mine.input)
        chosen = mine.kept == true()
    else:
        n = sum(1 for k in record.kept_nodes if str(k.kind) in COMPONENTS)
        same, chosen = theirs.key == mine.key, and_(mine.kept == true(), mine.kind.in_(COMPONENTS))
    if n == 0:  # nothing to hold: every circuit holds it
        return select(CircuitRow.id)
    return (select(theirs.circuit_id).select_from(mine).join(theirs, and_(same, theirs.kept == true()))
            .where(mine.circuit_id == record.id, chosen).group_by(theirs.circuit_id).having(func.count() == n))


def _with_path(session: Session, ids: set[int], path: Sequence[str]) -> set[int]:
    """Those of ``ids`` with a directed path through ``path`` in order: their kept edges, read a batch at a time."""
    wanted, out = sorted(ids), set[int]()
    for i in range(0, len(wanted), _EDGE_CHUNK):
        batch = wanted[i:i + _EDGE_CHUNK]
        pairs: dict[int, list[tuple[str, str]]] = {c: [] for c in batch}
        query = select(EdgeRow.circuit_id, EdgeRow.src, EdgeRow.dst).where(EdgeRow.circuit_id.in_(batch),
                                                                           EdgeRow.kept == true())
        for circuit_id, src, dst in session.execute(query):
            pairs[circuit_id].append((src, dst))
        out.update(c for c, p in pairs.items() if reaches_in_order(adjacency(p), path))
    return out

