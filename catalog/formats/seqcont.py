"""Lan, Torr & Barez's circuit files (apartresearch/seqcont_circuits, ``results/*_circuit_thres_0.8.json``).

Shape: ``{"heads": [[layer, head], ...], "mlps": [layer, ...]}``. Nodes only: the method prunes whole
heads and MLPs, so the circuit is imported with ``edges_known`` false and compares at node level.
Either list may be empty or left out, not both; any other field is refused.
"""

from __future__ import annotations

from typing import Any, Optional

from catalog.errors import InvalidCircuit
from catalog.formats.common import assemble, check_fields, expect_int, expect_list, expect_object
from catalog.records import NewCircuit, NodeRecord
from discovery.graph import head, mlp

FORMAT = "seqcont"


def read_seqcont(data: Any, *, name: str, model: str, task: Optional[str] = None) -> NewCircuit:
    obj = expect_object(data, "file")
    check_fields(obj, "file", required=(), optional=("heads", "mlps"))
    nodes: list[NodeRecord] = []
    for i, item in enumerate(expect_list(obj.get("heads", []), "heads")):
        pair = expect_list(item, f"heads[{i}]")
        if len(pair) != 2:
            raise InvalidCircuit(f"heads[{i}]: expected [layer, head], got {len(pair)} numbers")
        layer, h = (expect_int(v, f"heads[{i}]") for v in pair)
        nodes.append(NodeRecord.from_key(head(_natural(layer, f"heads[{i}]"), _natural(h, f"heads[{i}]")).key))
    for i, item in enumerate(expect_list(obj.get("mlps", []), "mlps")):
        nodes.append(NodeRecord.from_key(mlp(_natural(expect_int(item, f"mlps[{i}]"), f"mlps[{i}]")).key))
    if not nodes:
        raise InvalidCircuit("file: lists no heads and no MLPs")
    return assemble(
        name=name, model=model, task=task, nodes=nodes, edges=(), edges_known=False,
        metadata={"imported_from": FORMAT},
    )


def _natural(value: int, where: str) -> int:
    if value < 0:
        raise InvalidCircuit(f"{where}: layers and heads count from 0, got {value}")
    return value
