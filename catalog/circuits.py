"""Reading and writing circuits. The caller owns the session: every function takes it first and never commits.

Verbs: ``get_*`` raises ``NotFound``, ``find_*`` returns None, then ``list_*``, ``count_*``, ``save_*``,
``delete_*``. Rows stay here; callers get the frozen records of ``catalog.records``.

Edges are written with one Core executemany (ORM ``add_all`` is 10x slower on 30k rows) and read as plain
column tuples, so a discovered circuit with every GPT-2 edge scored saves and loads in well under a second.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Optional, TypeVar, cast

from sqlalchemy import Select, Table, delete, func, insert, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.errors import AlreadyExists, InvalidCircuit, NotFound
from catalog.records import CircuitRecord, CircuitSummary, EdgeRecord, Holding, NewCircuit, NodeRecord
from catalog.similarity import COMPONENTS, mass, shares
from catalog.tables import (
    CircuitRow,
    DatasetRow,
    EdgeRow,
    ModelRow,
    NodeRow,
    RunRow,
    TaskRow,
    decode_score,
    encode_score,
    utc_now,
)
from catalog.validate import TEXT_LEN, canonical_rows, check_text
from discovery.graph import ModelShape, NodeKind, parse_edge, parse_node
from discovery.topology import cut_threshold

_NODE = cast(Table, NodeRow.__table__)
_EDGE = cast(Table, EdgeRow.__table__)
_CIRCUIT = cast(Table, CircuitRow.__table__)
_MODEL = cast(Table, ModelRow.__table__)
_TASK = cast(Table, TaskRow.__table__)
_Row = TypeVar("_Row", ModelRow, TaskRow, DatasetRow)
_UPSERT: dict[str, Callable[..., Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


# ---------------------------------------------------------------------------------------------------------
# Writing


def save_circuit(session: Session, new: NewCircuit, run_id: Optional[int] = None) -> CircuitRecord:
    """Store a circuit whole: validated first (``InvalidCircuit``), refused if its name is taken
    (``AlreadyExists``); nothing is added to the session before both checks pass, and the caller's
    transaction makes the rest all-or-nothing."""
    model = session.scalars(select(ModelRow).where(ModelRow.name == new.model)).one_or_none()
    shape = ModelShape(model.n_layers, model.n_heads) if model and model.n_layers and model.n_heads else None
    if model is not None:
        _check_declared_shape(new, model)
    nodes, edges = canonical_rows(new, shape)
    if find_circuit_id(session, new.name) is not None:
        raise AlreadyExists(f"a circuit named {new.name!r} already exists: pick another name or delete it first")
    if run_id is not None and session.get(RunRow, run_id) is None:
        raise NotFound(f"no run {run_id} in the catalog")
    circuit = CircuitRow(
        name=new.name,
        model=model or model_row(session, new.model),
        task=task_row(session, new.task) if new.task else None,
        source=new.source,
        citation=new.citation,
        description=new.description,
        method=new.method,
        threshold=new.threshold,
        run_id=run_id,
        performance=dict(new.performance),
        meta=dict(new.metadata),
        edges_known=new.edges_known,
        n_nodes=sum(1 for n in nodes if n["kept"]),
        n_edges=sum(1 for e in edges if e["kept"]),
        created_at=utc_now(),
        **_summary_columns(nodes, edges, new.edges_known),
    )
    session.add(circuit)
    try:
        session.flush()
    except IntegrityError as err:  # another session took the name since the check above
        if any(name in str(err.orig) for name in ("uq_circuit_name", "circuit.name")):
            raise AlreadyExists(f"a circuit named {new.name!r} was just saved by another session") from err
        raise
    for row in (*nodes, *edges):
        row["circuit_id"] = circuit.id
    if nodes:
        session.execute(insert(_NODE), nodes)
    if edges:
        session.execute(insert(_EDGE), edges)
    return _record(circuit, [_node_record(r) for r in nodes], _saved_edges(new.edges, edges))


def _summary_columns(nodes: Sequence[dict[str, Any]], edges: Sequence[dict[str, Any]],
                     edges_known: bool) -> dict[str, Any]:
    """``CircuitRow``'s similarity summary (``catalog.similarity``) from the rows about to be stored (a stored
    score is None where it is missing or non-finite); each kept component's and edge's share is set on its row."""
    for row in (*nodes, *edges):
        row["share"] = None  # every row names every column: one executemany inserts them all
    components = [n for n in nodes if n["kept"] and n["kind"] in COMPONENTS]
    kept_edges = [e for e in edges if e["kept"]]
    for rows in (components, kept_edges):
        for row, share in zip(rows, shares([r["score"] for r in rows])):
            row["share"] = share
    return {
        "n_components": len(components),
        "node_mass": mass(n["score"] for n in components),
        "edge_mass": mass(e["score"] for e in edges if e["kept"]) if edges_known else None,
    }


def _saved_edges(given: Sequence[EdgeRecord], rows: Sequence[Mapping[str, Any]]) -> list[EdgeRecord]:
    """The edge records as stored. A given record already in canonical form is returned as is: building
    30k new frozen records would cost more than the insert's index upkeep."""
    out = []
    for record, row in zip(given, rows):
        canonical = (
            record.src == row["src"]
            and record.dst == row["dst"]
            and (record.input or "") == row["input"]
            and (record.score is None or type(record.score) is float)
            and type(record.kept) is bool
        )
        out.append(record if canonical else _edge_record(row))
    return out


def _check_declared_shape(new: NewCircuit, model: ModelRow) -> None:
    """A circuit that says it is about a model of another shape (an EAP-IG file's cfg, a native file's
    model_shape) than the catalog's model of that name is refused: it is about another model."""
    declared = new.metadata.get("model_shape")
    if not isinstance(declared, Mapping):
        return
    differ = [k for k in ("n_layers", "n_heads", "d_model")
              if isinstance(declared.get(k), int) and getattr(model, k) is not None and getattr(model, k) != declared[k]]
    if differ:
        says = ", ".join(f"{k}={declared[k]}" for k in differ)
        has = ", ".join(f"{k}={getattr(model, k)}" for k in differ)
        raise InvalidCircuit(f"circuit {new.name!r} says its model has {says}, but the catalog's {new.model!r} has "
                             f"{has}: it is about another model (name it with --model)")


def model_row(session: Session, name: str) -> ModelRow:
    """The model called ``name``, created with nothing but its name if new (a run fills in the rest)."""
    return get_or_create(session, ModelRow, {"name": name}, {"versions": {}, "flags": {}})


def find_model_shape(session: Session, name: str) -> Optional[dict[str, int]]:
    """The sizes the catalog knows for a model (from the runs that used it), or None."""
    model = session.scalars(select(ModelRow).where(ModelRow.name == name)).first()
    if model is None or model.n_layers is None or model.n_heads is None:
        return None
    shape = {"n_layers": model.n_layers, "n_heads": model.n_heads}
    return shape | ({"d_model": model.d_model} if model.d_model is not None else {})


def task_row(session: Session, name: str) -> TaskRow:
    return get_or_create(session, TaskRow, {"name": name}, {})


def get_or_create(session: Session, entity: type[_Row], key: Mapping[str, Any], values: Mapping[str, Any]) -> _Row:
    """The row with these unique ``key`` values, inserted if missing. Race-free: on PostgreSQL two sessions
    creating the same model at once would otherwise both insert and one would fail on the unique constraint;
    ``ON CONFLICT DO NOTHING`` makes the second wait for the first and then find its row."""
    query = select(entity).filter_by(**key)
    row = session.scalars(query).one_or_none()
    if row is not None:
        return row
    dialect = session.get_bind().dialect.name
    if dialect in _UPSERT:
        session.execute(_UPSERT[dialect](entity).values(**key, **values).on_conflict_do_nothing())
        return session.scalars(query).one()
    row = entity(**key, **values)
    session.add(row)
    session.flush()
    return row


def delete_circuit(session: Session, name: str) -> None:
    """Remove a circuit with its nodes and edges (explicit deletes: no loading 30k edge objects to cascade)."""
    circuit_id = get_circuit_id(session, name)
    session.execute(delete(_EDGE).where(_EDGE.c.circuit_id == circuit_id))
    session.execute(delete(_NODE).where(_NODE.c.circuit_id == circuit_id))
    session.execute(delete(CircuitRow).where(CircuitRow.id == circuit_id))


def set_role(
    session: Session,
    circuit_name: str,
    node_key: str,
    role: Optional[str],
    source: str,
    score: Optional[float] = None,
    note: Optional[str] = None,
) -> NodeRecord:
    """Say what a node does in a circuit (``name mover``), who says so (``paper``, ``analysis``,
    ``user:NAME``) and on what evidence. The node must already be in the circuit (``NotFound``)."""
    if not source:
        raise InvalidCircuit("a role needs its source: paper, analysis or user:NAME")
    check_text(role, "a role", optional=True)
    check_text(source, "a role's source")
    check_text(note, "a role's note", TEXT_LEN, optional=True)
    node = _node_row(session, circuit_name, node_key)
    node.role, node.role_source, node.role_note = role, source, note
    node.role_score, node.role_score_kind = encode_score(score)
    session.flush()
    return _node_record_from_row(node)


def set_node_attributes(
    session: Session, circuit_name: str, node_key: str, analysis: str, figures: Mapping[str, Any]
) -> NodeRecord:
    """Merge an analysis' figures into the node's attributes under ``analysis`` (earlier figures of other
    analyses, and of this one not given again, stay)."""
    node = _node_row(session, circuit_name, node_key)
    attributes = dict(node.attributes or {})
    attributes[analysis] = {**dict(attributes.get(analysis) or {}), **dict(figures)}
    node.attributes = attributes  # a new dict, so the ORM sees the change
    session.flush()
    return _node_record_from_row(node)


def set_circuit_analysis(session: Session, circuit_name: str, analysis: str, figures: Mapping[str, Any]) -> None:
    """Keep a circuit-level analysis' figures (a logit-lens table, DLA totals: about the whole model on the
    task, not one node) in the circuit's metadata under ``analyses.<analysis>``, replacing that analysis'
    earlier figures; other metadata stays."""
    circuit = session.scalars(select(CircuitRow).where(CircuitRow.id == get_circuit_id(session, circuit_name))).one()
    meta = dict(circuit.meta or {})
    meta["analyses"] = {**dict(meta.get("analyses") or {}), analysis: dict(figures)}
    circuit.meta = meta  # a new dict, so the ORM sees the change
    session.flush()


def _node_row(session: Session, circuit_name: str, node_key: str) -> NodeRow:
    key = parse_node(node_key).key
    circuit_id = get_circuit_id(session, circuit_name)
    node = session.scalars(select(NodeRow).where(NodeRow.circuit_id == circuit_id, NodeRow.key == key)).one_or_none()
    if node is None:
        raise NotFound(f"{key} is not a node of circuit {circuit_name!r}")
    return node


# ---------------------------------------------------------------------------------------------------------
# Reading


def find_circuit_id(session: Session, name: str) -> Optional[int]:
    return session.scalar(select(CircuitRow.id).where(CircuitRow.name == name))


def get_circuit_id(session: Session, name: str) -> int:
    circuit_id = find_circuit_id(session, name)
    if circuit_id is None:
        raise NotFound(f"no circuit named {name!r} in the catalog (see `circuits list`)")
    return circuit_id


def find_circuit(session: Session, name: str, *, kept_only: bool = False) -> Optional[CircuitRecord]:
    """The circuit called ``name`` with its nodes and edges, or None.

    ``kept_only`` loads only the circuit's kept nodes and edges, skipping the tens of thousands of
    scored-but-dropped edges a discovered circuit stores (what comparisons need)."""
    circuit = session.scalars(select(CircuitRow).where(CircuitRow.name == name)).one_or_none()
    if circuit is None:
        return None
    node_query = select(_NODE).where(_NODE.c.circuit_id == circuit.id).order_by(_NODE.c.id)
    edge_query = select(*_EDGE_COLUMNS).where(_EDGE.c.circuit_id == circuit.id).order_by(_EDGE.c.id)
    if kept_only:
        node_query = node_query.where(_NODE.c.kept == true())  # `= 1` can use the partial index; `IS 1` cannot
        edge_query = edge_query.where(_EDGE.c.kept == true())
    nodes = [_node_record(row._mapping) for row in session.execute(node_query)]
    edges = [_edge_tuple_record(row) for row in session.execute(edge_query)]
    return _record(circuit, nodes, edges)


def get_circuit(session: Session, name: str, *, kept_only: bool = False) -> CircuitRecord:
    """As ``find_circuit``, but an unknown name raises ``NotFound``."""
    record = find_circuit(session, name, kept_only=kept_only)
    if record is None:
        raise NotFound(f"no circuit named {name!r} in the catalog (see `circuits list`)")
    return record


def list_circuits(session: Session, model: Optional[str] = None, task: Optional[str] = None,
                  ids: Optional[Collection[int]] = None, among: Optional[Select[Any]] = None) -> list[CircuitSummary]:
    """Every circuit (optionally of one model and/or task, only those with these ``ids``, or only those whose ids
    the query ``among`` selects) by name, with counts stored at save time. ``among`` keeps a catalog-wide
    answer in the database: thousands of ids sent back as bound parameters cost more than the question. Names
    are sorted here, not by the database: code-point order on every backend, whatever PostgreSQL's collation,
    and sorting ten thousand rows there costs more than sorting their names in Python."""
    query = _summary_query()
    if model is not None:
        query = query.where(ModelRow.name == model)
    if task is not None:
        query = query.where(TaskRow.name == task)
    if among is not None:
        query = query.where(CircuitRow.id.in_(among))
    if ids is None:
        found = [_summary(row) for row in session.execute(query).mappings()]
    else:
        wanted = sorted(set(ids))
        found = [_summary(row) for i in range(0, len(wanted), _ID_CHUNK)
                 for row in session.execute(query.where(CircuitRow.id.in_(wanted[i:i + _ID_CHUNK]))).mappings()]
    return sorted(found, key=lambda c: c.name)


_ID_CHUNK = 5_000  # ids per IN list: well under SQLite's 32,766 bound parameters


def count_circuits(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CircuitRow)) or 0


def circuits_holding(session: Session, node_key: str) -> list[Holding]:
    """Which circuits keep a node (``9.1``, ``a9.1``, ``m5``), with the node's score and role in each, by circuit
    name (in code-point order, as ``list_circuits``). Only the columns the answer needs are read, as plain rows
    (a node held by ten thousand circuits is what a sweep gives, and the ORM's row handling would cost more than
    the query)."""
    key = parse_node(node_key).key
    n, c, m, t = _NODE.c, _CIRCUIT.c, _MODEL.c, _TASK.c
    query = (
        select(c.name, m.name, t.name, n.score, n.score_kind, n.role, n.role_score, n.role_score_kind,
               n.role_source, n.role_note)
        .select_from(_CIRCUIT.join(_MODEL, c.model_id == m.id).outerjoin(_TASK, c.task_id == t.id)
                     .join(_NODE, n.circuit_id == c.id))
        .where(n.key == key, n.kept == true())
    )
    held = [Holding(name, model, task, key, decode_score(score, kind), role, decode_score(role_score, role_kind),
                    source, note)
            for name, model, task, score, kind, role, role_score, role_kind, source, note
            in session.execute(query)]
    return sorted(held, key=lambda h: h.circuit)


def recut(record: CircuitRecord, threshold: float) -> CircuitRecord:
    """The circuit its stored edge scores give at another threshold, by the one cut rule
    (``discovery.topology``): edges with |score| >= threshold, dangling ones removed; its nodes those the kept
    edges touch plus embed and logits. This re-reads stored scores; it does not re-run anything."""
    if not (math.isfinite(threshold) and threshold >= 0):
        raise InvalidCircuit(f"--threshold: a bound on |score| must be a finite number >= 0, got {threshold}")
    if not record.edges_known:
        raise InvalidCircuit(
            f"circuit {record.name!r} lists nodes only (no edge scores), so it cannot be re-cut at another threshold"
        )
    if not any(e.score is not None for e in record.edges):
        raise InvalidCircuit(
            f"circuit {record.name!r} has no stored edge scores, so it cannot be re-cut at another threshold"
        )
    parsed = [(parse_edge(e.key), e) for e in record.edges]
    kept = cut_threshold([(edge, e.score) for edge, e in parsed if e.score is not None], threshold)
    edges = tuple(dataclasses.replace(e, kept=edge in kept) for edge, e in parsed)
    touched = {"embed", "logits"} | {k for e in edges if e.kept for k in (e.src, e.dst)}
    known = {n.key: n for n in record.nodes}
    nodes = [dataclasses.replace(n, kept=n.key in touched) for n in record.nodes]
    nodes += [NodeRecord.from_key(k) for k in touched - known.keys()]
    nodes.sort(key=lambda n: parse_node(n.key))
    return dataclasses.replace(record, nodes=tuple(nodes), edges=edges, threshold=threshold)


# ---------------------------------------------------------------------------------------------------------
# Rows to records (the one translation point, as Optuna's _build_frozen_trial_from_trial_model)

_EDGE_COLUMNS = (_EDGE.c.src, _EDGE.c.dst, _EDGE.c.input, _EDGE.c.score, _EDGE.c.score_kind, _EDGE.c.kept)


def _summary_query() -> Select[Any]:
    return (
        select(
            CircuitRow.id,
            CircuitRow.name,
            ModelRow.name.label("model_name"),
            TaskRow.name.label("task_name"),
            CircuitRow.source,
            CircuitRow.method,
            CircuitRow.n_nodes,
            CircuitRow.n_edges,
            CircuitRow.edges_known,
            CircuitRow.performance,
            CircuitRow.created_at,
        )
        .join(ModelRow, CircuitRow.model_id == ModelRow.id)
        .outerjoin(TaskRow, CircuitRow.task_id == TaskRow.id)
    )


def _summary(row: Mapping[Any, Any]) -> CircuitSummary:
    """A summary from a row of ``_summary_query`` read with ``.mappings()`` (a third cheaper than ``Row._mapping``
    per row, which counts when ten thousand circuits answer)."""
    return CircuitSummary(
        id=row["id"],
        name=row["name"],
        model=row["model_name"],
        task=row["task_name"],
        source=row["source"],
        method=row["method"],
        n_nodes=row["n_nodes"],
        n_edges=row["n_edges"],
        edges_known=bool(row["edges_known"]),
        performance=row["performance"] or {},
        created_at=row["created_at"],
    )


def _record(circuit: CircuitRow, nodes: Sequence[NodeRecord], edges: Sequence[EdgeRecord]) -> CircuitRecord:
    return CircuitRecord(
        id=circuit.id,
        name=circuit.name,
        model=circuit.model.name,
        task=circuit.task.name if circuit.task else None,
        source=circuit.source,
        nodes=tuple(nodes),
        edges=tuple(edges),
        edges_known=bool(circuit.edges_known),
        citation=circuit.citation,
        description=circuit.description,
        method=circuit.method,
        threshold=circuit.threshold,
        run_id=circuit.run_id,
        performance=circuit.performance or {},
        metadata=circuit.meta or {},
        created_at=circuit.created_at,
        group=circuit.group_name,
    )


def _node_record(row: Mapping[Any, Any]) -> NodeRecord:
    kind = NodeKind(row["kind"])
    return NodeRecord(
        key=row["key"],
        kind=kind,
        layer=row["layer"] if kind in (NodeKind.HEAD, NodeKind.MLP) else None,
        head=row["head"],
        score=decode_score(row["score"], row["score_kind"]),
        kept=bool(row["kept"]),
        role=row["role"],
        role_score=decode_score(row["role_score"], row["role_score_kind"]),
        role_source=row["role_source"],
        role_note=row["role_note"],
        attributes=row["attributes"] or {},
    )


def _node_record_from_row(node: NodeRow) -> NodeRecord:
    return _node_record({c.key: getattr(node, c.key) for c in NodeRow.__table__.c})


def _edge_record(row: Mapping[str, Any]) -> EdgeRecord:
    return EdgeRecord(
        row["src"], row["dst"], row["input"] or None, decode_score(row["score"], row["score_kind"]), bool(row["kept"])
    )


def _edge_tuple_record(row: Sequence[Any]) -> EdgeRecord:
    src, dst, input_, score, score_kind, kept = row
    return EdgeRecord(src, dst, input_ or None, decode_score(score, score_kind), bool(kept))
