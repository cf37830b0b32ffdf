"""Reading and writing circuits. The caller owns the session: every function takes it first and never commits.

Verbs: ``get_*`` raises ``NotFound``, ``find_*`` returns None, then ``list_*``, ``count_*``, ``save_*``,
``delete_*``. Rows stay here; callers get the frozen records of ``catalog.records``.

Edges are written with one Core executemany (ORM ``add_all`` is 10x slower on 30k rows) and read as plain
column tuples, so a discovered circuit with every GPT-2 edge scored saves and loads in well under a second.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence

from sqlalchemy import Row, Select, delete, func, insert, select
from sqlalchemy.orm import Session

from catalog.errors import AlreadyExists, InvalidCircuit, NotFound
from catalog.models import Circuit, Edge, Model, Node, Run, Task, decode_score, encode_score, utc_now
from catalog.records import CircuitRecord, CircuitSummary, EdgeRecord, NewCircuit, NodeRecord
from catalog.validate import canonical_rows
from discovery.graph import ModelShape, NodeKind, parse_node

_NODE = Node.__table__
_EDGE = Edge.__table__


# ---------------------------------------------------------------------------------------------------------
# Writing


def save_circuit(session: Session, new: NewCircuit, run_id: Optional[int] = None) -> CircuitRecord:
    """Store a circuit whole: validated first (``InvalidCircuit``), refused if its name is taken
    (``AlreadyExists``); the caller's transaction makes it all-or-nothing."""
    model = model_row(session, new.model)
    shape = ModelShape(model.n_layers, model.n_heads) if model.n_layers and model.n_heads else None
    nodes, edges = canonical_rows(new, shape)
    if find_circuit_id(session, new.name) is not None:
        raise AlreadyExists(f"a circuit named {new.name!r} already exists: pick another name or delete it first")
    if run_id is not None and session.get(Run, run_id) is None:
        raise NotFound(f"no run {run_id} in the catalog")
    circuit = Circuit(
        name=new.name,
        model=model,
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
    )
    session.add(circuit)
    session.flush()
    for row in (*nodes, *edges):
        row["circuit_id"] = circuit.id
    if nodes:
        session.execute(insert(_NODE), nodes)
    if edges:
        session.execute(insert(_EDGE), edges)
    return _record(circuit, [_node_record(r) for r in nodes], [_edge_record(r) for r in edges])


def model_row(session: Session, name: str) -> Model:
    """The model called ``name``, created with nothing but its name if new (a run fills in the rest)."""
    model = session.scalars(select(Model).where(Model.name == name)).one_or_none()
    if model is None:
        model = Model(name=name, versions={}, flags={})
        session.add(model)
        session.flush()
    return model


def task_row(session: Session, name: str) -> Task:
    task = session.scalars(select(Task).where(Task.name == name)).one_or_none()
    if task is None:
        task = Task(name=name)
        session.add(task)
        session.flush()
    return task


def delete_circuit(session: Session, name: str) -> None:
    """Remove a circuit with its nodes and edges (explicit deletes: no loading 30k edge objects to cascade)."""
    circuit_id = get_circuit_id(session, name)
    session.execute(delete(_EDGE).where(_EDGE.c.circuit_id == circuit_id))
    session.execute(delete(_NODE).where(_NODE.c.circuit_id == circuit_id))
    session.execute(delete(Circuit).where(Circuit.id == circuit_id))


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


def _node_row(session: Session, circuit_name: str, node_key: str) -> Node:
    key = parse_node(node_key).key
    circuit_id = get_circuit_id(session, circuit_name)
    node = session.scalars(select(Node).where(Node.circuit_id == circuit_id, Node.key == key)).one_or_none()
    if node is None:
        raise NotFound(f"{key} is not a node of circuit {circuit_name!r}")
    return node


# ---------------------------------------------------------------------------------------------------------
# Reading


def find_circuit_id(session: Session, name: str) -> Optional[int]:
    return session.scalar(select(Circuit.id).where(Circuit.name == name))


def get_circuit_id(session: Session, name: str) -> int:
    circuit_id = find_circuit_id(session, name)
    if circuit_id is None:
        raise NotFound(f"no circuit named {name!r} in the catalog (see `circuits list`)")
    return circuit_id


def find_circuit(session: Session, name: str, *, kept_only: bool = False) -> Optional[CircuitRecord]:
    """The circuit called ``name`` with its nodes and edges, or None.

    ``kept_only`` loads only the circuit's kept nodes and edges, skipping the tens of thousands of
    scored-but-dropped edges a discovered circuit stores (what comparisons need)."""
    circuit = session.scalars(select(Circuit).where(Circuit.name == name)).one_or_none()
    if circuit is None:
        return None
    node_query = select(_NODE).where(_NODE.c.circuit_id == circuit.id).order_by(_NODE.c.id)
    edge_query = select(*_EDGE_COLUMNS).where(_EDGE.c.circuit_id == circuit.id).order_by(_EDGE.c.id)
    if kept_only:
        node_query = node_query.where(_NODE.c.kept == True)  # noqa: E712 (`= 1` can use the index; `IS 1` may not)
        edge_query = edge_query.where(_EDGE.c.kept == True)  # noqa: E712
    nodes = [_node_record(row._mapping) for row in session.execute(node_query)]
    edges = [_edge_tuple_record(row) for row in session.execute(edge_query)]
    return _record(circuit, nodes, edges)


def get_circuit(session: Session, name: str, *, kept_only: bool = False) -> CircuitRecord:
    """As ``find_circuit``, but an unknown name raises ``NotFound``."""
    record = find_circuit(session, name, kept_only=kept_only)
    if record is None:
        raise NotFound(f"no circuit named {name!r} in the catalog (see `circuits list`)")
    return record


def list_circuits(session: Session, model: Optional[str] = None, task: Optional[str] = None) -> list[CircuitSummary]:
    """Every circuit (optionally of one model and/or task) by name, with counts stored at save time."""
    query = _summary_query().order_by(Circuit.name)
    if model is not None:
        query = query.where(Model.name == model)
    if task is not None:
        query = query.where(Task.name == task)
    return [_summary(row) for row in session.execute(query)]


def count_circuits(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Circuit)) or 0


def circuits_holding(session: Session, node_key: str) -> list[tuple[CircuitSummary, NodeRecord]]:
    """Which circuits keep a node (``9.1``, ``a9.1``, ``m5``), with the node as each holds it (its role)."""
    key = parse_node(node_key).key
    query = (
        _summary_query()
        .add_columns(*(c for c in _NODE.c if c.name != "id"))  # the summary's id is the circuit's
        .join(_NODE, _NODE.c.circuit_id == Circuit.id)
        .where(_NODE.c.key == key, _NODE.c.kept.is_(True))
        .order_by(Circuit.name)
    )
    return [(_summary(row), _node_record(row._mapping)) for row in session.execute(query)]


def recut(record: CircuitRecord, threshold: float) -> CircuitRecord:
    """The circuit its stored edge scores give at another threshold: edges with |score| >= threshold kept,
    and the nodes they touch plus embed and logits. This re-reads stored scores; it does not re-run anything.
    """
    if not math.isfinite(threshold):
        raise InvalidCircuit(f"threshold must be a finite number, got {threshold}")
    if not record.edges_known or not any(e.score is not None for e in record.edges):
        raise InvalidCircuit(
            f"circuit {record.name!r} has no stored edge scores (it lists nodes only), so it cannot be re-cut "
            "at another threshold"
        )
    edges = tuple(dataclasses.replace(e, kept=e.score is not None and abs(e.score) >= threshold) for e in record.edges)
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
            Circuit.id,
            Circuit.name,
            Model.name.label("model_name"),
            Task.name.label("task_name"),
            Circuit.source,
            Circuit.method,
            Circuit.n_nodes,
            Circuit.n_edges,
            Circuit.edges_known,
            Circuit.performance,
            Circuit.created_at,
        )
        .join(Model, Circuit.model_id == Model.id)
        .outerjoin(Task, Circuit.task_id == Task.id)
    )


def _summary(row: Row[Any]) -> CircuitSummary:
    return CircuitSummary(
        id=row.id,
        name=row.name,
        model=row.model_name,
        task=row.task_name,
        source=row.source,
        method=row.method,
        n_nodes=row.n_nodes,
        n_edges=row.n_edges,
        edges_known=bool(row.edges_known),
        performance=row.performance or {},
        created_at=row.created_at,
    )


def _record(circuit: Circuit, nodes: Sequence[NodeRecord], edges: Sequence[EdgeRecord]) -> CircuitRecord:
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
    )


def _node_record(row: Mapping[str, Any]) -> NodeRecord:
    kind = row["kind"]
    return NodeRecord(
        key=row["key"],
        kind=kind,
        layer=row["layer"] if kind in (NodeKind.HEAD.value, NodeKind.MLP.value) else None,
        head=row["head"],
        score=decode_score(row["score"], row["score_kind"]),
        kept=bool(row["kept"]),
        role=row["role"],
        role_score=decode_score(row["role_score"], row["role_score_kind"]),
        role_source=row["role_source"],
        role_note=row["role_note"],
        attributes=row["attributes"] or {},
    )


def _node_record_from_row(node: Node) -> NodeRecord:
    return _node_record({c.key: getattr(node, c.key) for c in Node.__table__.c})


def _edge_record(row: Mapping[str, Any]) -> EdgeRecord:
    return EdgeRecord(
        row["src"], row["dst"], row["input"] or None, decode_score(row["score"], row["score_kind"]), bool(row["kept"])
    )


def _edge_tuple_record(row: Row[Any]) -> EdgeRecord:
    src, dst, input_, score, score_kind, kept = row
    return EdgeRecord(src, dst, input_ or None, decode_score(score, score_kind), bool(kept))
