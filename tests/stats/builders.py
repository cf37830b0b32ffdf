"""Circuits built by hand for the statistics tests: node sets and edge chains of known overlap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from catalog.records import EdgeRecord, NewCircuit, NodeRecord


def nodes_circuit(name: str, keys: Sequence[str], model: str = "toy", task: str = "digits", **kw: Any) -> NewCircuit:
    """A nodes-only circuit keeping ``keys`` (heads ``a0.1``, MLPs ``m2``) plus embed and logits."""
    nodes = tuple(NodeRecord.from_key(k) for k in ("embed", *keys, "logits"))
    return NewCircuit(name=name, model=model, task=task, source="published", nodes=nodes, **kw)


def edges_circuit(name: str, edges: Sequence[str], model: str = "toy", task: str = "digits",
                  **kw: Any) -> NewCircuit:
    """An edge circuit keeping ``edges`` (``a0.1->m1``), its nodes those the edges touch."""
    records = tuple(EdgeRecord.from_key(e) for e in edges)
    keys = sorted({k for e in records for k in (e.src, e.dst)}, key=lambda k: (k != "embed", k == "logits", k))
    return NewCircuit(name=name, model=model, task=task, source="published",
                      nodes=tuple(NodeRecord.from_key(k) for k in keys), edges=records, edges_known=True, **kw)
