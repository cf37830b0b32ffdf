"""Hand-made circuits for the comparison tests: keys in, a stored-looking CircuitRecord out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Optional

from catalog.records import CircuitRecord, EdgeRecord, NodeRecord


def make_circuit(
    name: str,
    nodes: Iterable[str],
    edges: Iterable[tuple[str, Optional[float]]] = (),
    *,
    edges_known: Optional[bool] = None,
    dropped_nodes: Iterable[str] = (),
    dropped_edges: Iterable[tuple[str, Optional[float]]] = (),
    roles: Optional[dict[str, str]] = None,
    scores: Optional[dict[str, float]] = None,
    model: str = "gpt2",
    task: Optional[str] = "toy",
) -> CircuitRecord:
    """A stored-looking circuit from keys; embed and logits are added as every circuit has them."""
    roles, scores = roles or {}, scores or {}
    node_records = [NodeRecord.from_key(k) for k in ("embed", "logits")]
    node_records += [NodeRecord.from_key(k, role=roles.get(k), score=scores.get(k)) for k in nodes]
    node_records += [NodeRecord.from_key(k, kept=False) for k in dropped_nodes]
    edge_records = [EdgeRecord.from_key(k, score=s) for k, s in edges]
    edge_records += [EdgeRecord.from_key(k, score=s, kept=False) for k, s in dropped_edges]
    known = bool(edge_records) if edges_known is None else edges_known
    return CircuitRecord(
        id=1,
        name=name,
        model=model,
        task=task,
        source="discovered",
        nodes=tuple(node_records),
        edges=tuple(edge_records),
        edges_known=known,
        created_at=dt.datetime(2024, 1, 1),
    )
