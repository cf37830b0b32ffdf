"""The catalog's own circuit file (``format: circuit-catalog``); the layout is documented in ``catalog.interchange``.

Writing is total (every field, nulls included, in a fixed order) so two exports of one circuit are
byte-identical; reading refuses what it does not know, so a misspelt field fails loudly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from catalog.errors import InvalidCircuit
from catalog.formats.common import (
    check_fields,
    edge_from_key,
    expect_bool,
    expect_list,
    expect_object,
    expect_score,
    expect_str,
    node_from_key,
    score_to_json,
    validate,
)
from catalog.records import CircuitLike, CircuitRecord, EdgeRecord, NewCircuit, NodeRecord
from discovery.graph import QKV

FORMAT = "circuit-catalog"
VERSION = 1

_TOP_REQUIRED = ("format", "version", "circuit", "nodes")
_TOP_OPTIONAL = ("edges",)
_CIRCUIT_REQUIRED = ("name", "model")
_CIRCUIT_OPTIONAL = (
    "task", "source", "edges_known", "citation", "description", "method", "threshold", "performance", "metadata",
)
_NODE_REQUIRED = ("key",)
_NODE_OPTIONAL = ("score", "kept", "role", "role_score", "role_source", "role_note", "attributes")
_EDGE_REQUIRED = ("src", "dst")
_EDGE_OPTIONAL = ("input", "score", "kept")


# ---------------------------------------------------------------------------------------------------------
# Writing


def export_circuit(circuit: CircuitLike) -> dict[str, Any]:
    """The circuit as a JSON-ready dict. Database ids and timestamps stay behind: they mean nothing elsewhere."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "circuit": {
            "name": circuit.name,
            "model": circuit.model,
            "task": circuit.task,
            "source": circuit.source,
            "edges_known": circuit.edges_known,
            "citation": circuit.citation,
            "description": circuit.description,
            "method": circuit.method,
            "threshold": score_to_json(circuit.threshold),
            "performance": {k: score_to_json(v) for k, v in circuit.performance.items()},
            "metadata": dict(circuit.metadata),
        },
        "nodes": [_node_json(n) for n in circuit.nodes],
        "edges": [_edge_json(e) for e in circuit.edges],
    }


def _node_json(n: NodeRecord) -> dict[str, Any]:
    return {
        "key": n.key,
        "score": score_to_json(n.score),
        "kept": n.kept,
        "role": n.role,
        "role_score": score_to_json(n.role_score),
        "role_source": n.role_source,
        "role_note": n.role_note,
        "attributes": dict(n.attributes),
    }


def _edge_json(e: EdgeRecord) -> dict[str, Any]:
    return {"src": e.src, "dst": e.dst, "input": e.input, "score": score_to_json(e.score), "kept": e.kept}


def as_new_circuit(record: CircuitRecord) -> NewCircuit:
    """The stored circuit as one to save again (in another catalog, or under another name)."""
    return NewCircuit(
        name=record.name,
        model=record.model,
        task=record.task,
        source=record.source,
        nodes=record.nodes,
        edges=record.edges,
        edges_known=record.edges_known,
        citation=record.citation,
        description=record.description,
        method=record.method,
        threshold=record.threshold,
        performance=dict(record.performance),
        metadata=dict(record.metadata),
    )


# ---------------------------------------------------------------------------------------------------------
# Reading


def import_circuit(data: Any) -> NewCircuit:
    """A circuit from a parsed native file; InvalidCircuit names the first problem found."""
    top = expect_object(data, "file")
    if top.get("format") != FORMAT:
        raise InvalidCircuit(
            f"format: expected {FORMAT!r}, got {top.get('format')!r} (a file from another tool needs --from)"
        )
    check_fields(top, "file", required=_TOP_REQUIRED, optional=_TOP_OPTIONAL)
    version = top["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidCircuit(f"version: expected a positive integer, got {version!r}")
    if version > VERSION:
        raise InvalidCircuit(f"version {version} is newer than this catalog reads ({VERSION}): upgrade circuit-catalog")
    meta = expect_object(top["circuit"], "circuit")
    check_fields(meta, "circuit", required=_CIRCUIT_REQUIRED, optional=_CIRCUIT_OPTIONAL)
    nodes = tuple(_read_node(n, f"nodes[{i}]") for i, n in enumerate(expect_list(top["nodes"], "nodes")))
    edges = tuple(_read_edge(e, f"edges[{i}]") for i, e in enumerate(expect_list(top.get("edges", []), "edges")))
    edges_known = meta.get("edges_known", bool(edges))
    circuit = NewCircuit(
        name=expect_str(meta["name"], "circuit.name") or "",
        model=expect_str(meta["model"], "circuit.model") or "",
        task=expect_str(meta.get("task"), "circuit.task", optional=True),
        source=expect_str(meta.get("source", "imported"), "circuit.source") or "",
        nodes=nodes,
        edges=edges,
        edges_known=expect_bool(edges_known, "circuit.edges_known"),
        citation=expect_str(meta.get("citation"), "circuit.citation", optional=True),
        description=expect_str(meta.get("description"), "circuit.description", optional=True),
        method=expect_str(meta.get("method"), "circuit.method", optional=True),
        threshold=expect_score(meta.get("threshold"), "circuit.threshold"),
        performance=_read_performance(meta.get("performance", {})),
        metadata=expect_object(meta.get("metadata", {}), "circuit.metadata"),
    )
    return validate(circuit)


def _read_node(value: Any, where: str) -> NodeRecord:
    obj = expect_object(value, where)
    check_fields(obj, where, required=_NODE_REQUIRED, optional=_NODE_OPTIONAL)
    return node_from_key(
        obj["key"],
        f"{where}.key",
        score=expect_score(obj.get("score"), f"{where}.score"),
        kept=expect_bool(obj.get("kept", True), f"{where}.kept"),
        role=expect_str(obj.get("role"), f"{where}.role", optional=True),
        role_score=expect_score(obj.get("role_score"), f"{where}.role_score"),
        role_source=expect_str(obj.get("role_source"), f"{where}.role_source", optional=True),
        role_note=expect_str(obj.get("role_note"), f"{where}.role_note", optional=True),
        attributes=expect_object(obj.get("attributes", {}), f"{where}.attributes"),
    )


def _read_edge(value: Any, where: str) -> EdgeRecord:
    obj = expect_object(value, where)
    check_fields(obj, where, required=_EDGE_REQUIRED, optional=_EDGE_OPTIONAL)
    src = expect_str(obj["src"], f"{where}.src")
    dst = expect_str(obj["dst"], f"{where}.dst")
    inp = _read_input(obj.get("input"), f"{where}.input")
    # Parse through the one edge grammar, so src/dst spellings and q/k/v are checked exactly as elsewhere.
    text = EdgeRecord(src=src or "", dst=dst or "", input=inp).key
    return edge_from_key(
        text,
        where,
        score=expect_score(obj.get("score"), f"{where}.score"),
        kept=expect_bool(obj.get("kept", True), f"{where}.kept"),
    )


def _read_input(value: Any, where: str) -> Optional[str]:
    if value is None:
        return None
    if value not in QKV:
        raise InvalidCircuit(f"{where}: a head input is \"q\", \"k\" or \"v\" (or null), not {value!r}")
    return str(value)


def _read_performance(value: Any) -> Mapping[str, float]:
    obj = expect_object(value, "circuit.performance")
    out: dict[str, float] = {}
    for k, v in obj.items():
        score = expect_score(v, f"circuit.performance.{k}")
        if score is None:
            raise InvalidCircuit(f"circuit.performance.{k}: expected a number, got null")
        out[k] = score
    return out
