"""What every reader shares: strict JSON loading, type checks with a path in the message, known model shapes,
and the one consistency check a circuit passes before anyone may store it.

Readers are strict on purpose. A file we half-understand would be stored as a circuit that silently lacks
what the file meant, and a wrong circuit in a catalog is worse than a refused import. Every refusal is an
``InvalidCircuit`` whose message says where (``nodes[3].kept``) and why, on one line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from catalog.errors import InvalidCircuit
from catalog.records import SOURCES, EdgeRecord, NewCircuit, NodeRecord
from discovery.graph import ComponentGraph, Granularity, InvalidKey, ModelShape, check_edge, parse_edge, parse_node
from discovery.jsonvalues import to_json

# Shapes of the models circuits are published on, so imports can reject a12.0 on a 12-layer model.
# d_model is what EAP-IG's graph config needs besides the shape.
KNOWN_MODELS: dict[str, dict[str, int]] = {
    "gpt2": {"n_layers": 12, "n_heads": 12, "d_model": 768},
    "gpt2-medium": {"n_layers": 24, "n_heads": 16, "d_model": 1024},
    "gpt2-large": {"n_layers": 36, "n_heads": 20, "d_model": 1280},
    "gpt2-xl": {"n_layers": 48, "n_heads": 25, "d_model": 1600},
}
_HUB_PREFIX = "openai-community/"
# The largest shape a file may declare when the model is not known: beyond any model circuits are found in today
# (Llama 3.1 405B has 126 layers of 128 heads), and small enough that building its graph stays cheap.
MAX_LAYERS, MAX_HEADS, MAX_D_MODEL = 256, 256, 65_536
MAX_FILE_BYTES = 512 * 2**20  # a GPT-2 small MIB file is 2.7 MB; a full 32,491-edge native export about 5 MB

_NONFINITE = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}


# ---------------------------------------------------------------------------------------------------------
# Loading


def load_json(path: str | Path) -> Any:
    """Parse a JSON file, refusing duplicate object keys (``json`` would silently keep the last one), files over
    ``MAX_FILE_BYTES`` and nesting deeper than Python's parser can follow (each in one line, before any work)."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidCircuit(f"{path} is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB a circuit "
                                 "file may have")
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidCircuit(f"cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise InvalidCircuit(f"{path} is not a UTF-8 text file") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as err:
        raise InvalidCircuit(f"{path} is not JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise InvalidCircuit(f"{path} nests JSON too deeply to be a circuit file") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidCircuit(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------------
# Type checks: each takes the value and where it sits, and raises with both.


def expect_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidCircuit(f"{where}: expected a JSON object, got {_type_name(value)}")
    return value


def expect_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidCircuit(f"{where}: expected a JSON list, got {_type_name(value)}")
    return value


def expect_str(value: Any, where: str, *, optional: bool = False) -> Optional[str]:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidCircuit(f"{where}: expected a non-empty string, got {_type_name(value)}")
    return value


def expect_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidCircuit(f"{where}: expected true or false, got {_type_name(value)}")
    return value


def expect_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCircuit(f"{where}: expected an integer, got {_type_name(value)}")
    return value


def expect_score(value: Any, where: str) -> Optional[float]:
    """A number, null, or one of the strings nan / inf / -inf (JSON has no literal for them)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in _NONFINITE:
        return _NONFINITE[value.strip().lower()]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidCircuit(f"{where}: expected a number, null, or \"nan\"/\"inf\"/\"-inf\", got {_type_name(value)}")
    return float(value)


def check_fields(obj: Mapping[str, Any], where: str, *, required: Iterable[str], optional: Iterable[str]) -> None:
    """Refuse missing and unknown fields: a misspelt field must not be silently dropped."""
    known = set(required) | set(optional)
    unknown = sorted(set(obj) - known)
    if unknown:
        raise InvalidCircuit(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    missing = [k for k in required if k not in obj]
    if missing:
        raise InvalidCircuit(f"{where}: missing field {missing[0]!r}")


def score_to_json(value: Optional[float]) -> Any:
    return to_json(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {dict: "an object", list: "a list", int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------------------------------
# Model shapes


def known_config(model: str) -> Optional[dict[str, int]]:
    """The shape of a model the field publishes on (GPT-2 sizes), or None."""
    name = model[len(_HUB_PREFIX):] if model.startswith(_HUB_PREFIX) else model
    return dict(KNOWN_MODELS[name]) if name in KNOWN_MODELS else None


def model_config(model: str, metadata: Optional[Mapping[str, Any]] = None) -> Optional[dict[str, int]]:
    """The shape (n_layers, n_heads, and d_model where known) of ``model``, or None when unknown.

    A circuit's own ``metadata["model_shape"]`` wins over the table, so circuits on toy or local models can
    carry their shape with them; it is checked like a file's declared shape (``declared_shape``).
    """
    shape = (metadata or {}).get("model_shape")
    if isinstance(shape, Mapping) and shape:
        return declared_shape(shape, "metadata.model_shape", model, known_config(model))
    return known_config(model)


def declared_shape(cfg: Mapping[str, Any], where: str, model: str,
                   expected: Optional[Mapping[str, int]] = None) -> dict[str, int]:
    """The n_layers, n_heads (and d_model) a file declares, checked: whole numbers of at least 1, within the caps,
    and equal to the named model's where it is known (a file about another model is refused, not mislabelled)."""
    out: dict[str, int] = {}
    for key, cap in (("n_layers", MAX_LAYERS), ("n_heads", MAX_HEADS), ("d_model", MAX_D_MODEL)):
        if key not in cfg and key == "d_model":
            continue
        value = expect_int(cfg.get(key), f"{where}.{key}")
        if not 1 <= value <= cap:
            raise InvalidCircuit(f"{where}.{key}: expected a whole number from 1 to {cap}, got {value}")
        out[key] = value
    if expected:
        differ = [k for k in out if k in expected and expected[k] != out[k]]
        if differ:
            declared = ", ".join(f"{k}={out[k]}" for k in differ)
            actual = ", ".join(f"{k}={expected[k]}" for k in differ)
            raise InvalidCircuit(f"{where} says {declared}, but model {model!r} has {actual}: the file is about "
                                 "another model (name it with --model)")
    return out


def model_shape(model: str, metadata: Optional[Mapping[str, Any]] = None) -> Optional[ModelShape]:
    cfg = model_config(model, metadata)
    return ModelShape(cfg["n_layers"], cfg["n_heads"]) if cfg else None


# ---------------------------------------------------------------------------------------------------------
# Building and checking circuits


def node_from_key(key: Any, where: str, **fields: Any) -> NodeRecord:
    text = expect_str(key, where)
    try:
        return NodeRecord.from_key(text or "", **fields)
    except InvalidKey as err:
        raise InvalidCircuit(f"{where}: {err}") from None


def edge_from_key(key: Any, where: str, *, score: Optional[float] = None, kept: bool = True) -> EdgeRecord:
    text = expect_str(key, where)
    try:
        return EdgeRecord.from_edge(parse_edge(text or ""), score=score, kept=kept)
    except InvalidKey as err:
        raise InvalidCircuit(f"{where}: {err}") from None


def assemble(
    *,
    name: str,
    model: str,
    task: Optional[str],
    nodes: Iterable[NodeRecord],
    edges: Iterable[EdgeRecord],
    edges_known: bool,
    metadata: Optional[Mapping[str, Any]] = None,
    source: str = "imported",
) -> NewCircuit:
    """A foreign file's nodes and edges as a checked circuit.

    Other tools list edges without their nodes, so every node a kept edge touches is added (or marked
    kept); embed and logits are added because every circuit has them. Refuses duplicates.
    """
    by_key: dict[str, NodeRecord] = {}
    for n in nodes:
        if n.key in by_key:
            raise InvalidCircuit(f"node {n.key} is listed twice")
        by_key[n.key] = n
    edge_list = list(edges)
    touched = {k for e in edge_list if e.kept for k in (e.src, e.dst)} | {"embed", "logits"}
    for key in sorted(touched):
        if key not in by_key:
            by_key[key] = NodeRecord.from_key(key)
        elif not by_key[key].kept:
            by_key[key] = replace(by_key[key], kept=True)
    circuit = NewCircuit(
        name=name,
        model=model,
        task=task,
        source=source,
        nodes=tuple(sorted(by_key.values(), key=lambda n: parse_node(n.key).order)),
        edges=tuple(sorted(edge_list, key=lambda e: parse_edge(e.key).order)),
        edges_known=edges_known,
        metadata=dict(metadata or {}),
    )
    return validate(circuit)


def validate(circuit: NewCircuit) -> NewCircuit:
    """Refuse a circuit that could not exist or contradicts itself; return it unchanged otherwise.

    Checks: a name and a model; a known source; canonical, unique node keys inside the model's shape (when
    the shape is known); no edges on a nodes-only circuit; edges that can exist, are unique, join listed
    nodes, and, when kept, join kept nodes.
    """
    expect_str(circuit.name, "name")
    expect_str(circuit.model, "model")
    if circuit.source not in SOURCES:
        raise InvalidCircuit(f"source: {circuit.source!r} is not one of {', '.join(SOURCES)}")
    shape = model_shape(circuit.model, circuit.metadata)
    graph = ComponentGraph(shape, Granularity.NODES) if shape else None
    nodes = _check_nodes(circuit.nodes, graph)
    if circuit.edges and not circuit.edges_known:
        raise InvalidCircuit(
            f"the circuit is marked nodes-only (edges_known false) but lists {len(circuit.edges)} edges"
        )
    _check_edges(circuit.edges, nodes, graph)
    return circuit


def _check_nodes(nodes: Iterable[NodeRecord], graph: Optional[ComponentGraph]) -> dict[str, NodeRecord]:
    seen: dict[str, NodeRecord] = {}
    for i, n in enumerate(nodes):
        try:
            parsed = parse_node(n.key)
            if graph is not None:
                graph.check_node(parsed)
        except InvalidKey as err:
            raise InvalidCircuit(f"nodes[{i}]: {err}") from None
        if parsed.key != n.key or parsed.kind != n.kind:
            raise InvalidCircuit(f"nodes[{i}]: {n.key!r} is not a canonical key (expected {parsed.key!r})")
        if n.key in seen:
            raise InvalidCircuit(f"nodes[{i}]: node {n.key} is listed twice")
        seen[n.key] = n
    return seen


def _check_edges(
    edges: Iterable[EdgeRecord], nodes: Mapping[str, NodeRecord], graph: Optional[ComponentGraph]
) -> None:
    """A kept edge must join kept, listed nodes. A dropped edge is only a score for a candidate edge (a run
    scores all 32,491 of GPT-2 small's), so its ends need only exist in the model."""
    seen: set[str] = set()
    for i, e in enumerate(edges):
        try:
            parsed = parse_edge(e.key)
            check_edge(parsed)
            if graph is not None:
                graph.check_node(parsed.src)
                graph.check_node(parsed.dst)
        except InvalidKey as err:
            raise InvalidCircuit(f"edges[{i}]: {err}") from None
        if parsed.key != e.key:
            raise InvalidCircuit(f"edges[{i}]: {e.key!r} is not a canonical key (expected {parsed.key!r})")
        if e.key in seen:
            raise InvalidCircuit(f"edges[{i}]: edge {e.key} is listed twice")
        seen.add(e.key)
        if not e.kept:
            continue
        for end in (e.src, e.dst):
            if end not in nodes:
                raise InvalidCircuit(f"edges[{i}]: kept edge {e.key} points to node {end}, which the circuit does not list")
            if not nodes[end].kept:
                raise InvalidCircuit(f"edges[{i}]: edge {e.key} is kept but its node {end} is not")
