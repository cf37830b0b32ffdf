"""Checking a ``NewCircuit`` and turning it into canonical rows, before anything touches the database.

Keys go through ``discovery.graph`` (the one vocabulary), so ``9.1``, ``A9.1`` and ``a9.1`` are stored as
``a9.1``. A circuit is refused whole (``InvalidCircuit``, one line naming the first problem) when a key does
not parse, names a component the model lacks, repeats, or when a kept edge touches a node the circuit does not
keep. Pure functions: no session, no I/O.
"""

from __future__ import annotations

import math
from typing import Any, Optional, cast

from catalog.errors import InvalidCircuit
from catalog.records import SOURCES, EdgeRecord, NewCircuit, NodeRecord
from catalog.tables import NAME_LEN, encode_score
from discovery.graph import (
    QKV,
    ComponentGraph,
    Edge,
    InputName,
    InvalidKey,
    ModelShape,
    Node,
    NodeKind,
    check_edge,
    parse_destination,
    parse_node,
)

Row = dict[str, Any]


class _Keys:
    """Parses keys once each: a full GPT-2 edge list repeats ~160 distinct keys 65,000 times."""

    def __init__(self, circuit: str, shape: Optional[ModelShape]):
        self.circuit = circuit
        self.graph = ComponentGraph(shape) if shape else None
        self._nodes: dict[str, Node] = {}
        self._destinations: dict[tuple[str, Optional[str]], tuple[Node, Optional[str]]] = {}
        self._keys: dict[Node, str] = {}

    def key(self, node: Node) -> str:
        found = self._keys.get(node)
        if found is None:
            found = self._keys[node] = node.key
        return found

    def node(self, text: str) -> Node:
        found = self._nodes.get(text)
        if found is None:
            try:
                found = parse_node(text)
                if self.graph is not None:
                    found = self.graph.check_node(found)
            except InvalidKey as err:
                raise InvalidCircuit(f"circuit {self.circuit!r}: {err}") from None
            self._nodes[text] = found
        return found

    def destination(self, text: str, input_: Optional[str]) -> tuple[Node, Optional[str]]:
        found = self._destinations.get((text, input_))
        if found is None:
            try:
                node, parsed_input = parse_destination(text)
            except InvalidKey as err:
                raise InvalidCircuit(f"circuit {self.circuit!r}: {err}") from None
            if input_ not in (None, *QKV) or (parsed_input and input_ and parsed_input != input_):
                raise InvalidCircuit(f"circuit {self.circuit!r}: bad head input {input_!r} for {text!r}")
            found = (self.node(node.key), input_ or parsed_input)
            self._destinations[(text, input_)] = found
        return found


TEXT_LEN = 100_000  # notes, descriptions, citations: any length both backends keep, bounded to stay sane


def check_name(name: object, what: str = "circuit name") -> str:
    """A name a circuit (or group, sweep) may have: printable text, no leading or trailing space, no path
    separator, not ``.`` or ``..``, at most ``NAME_LEN`` characters. Names become file names (``analyze --plots``)
    and travel between SQLite and PostgreSQL, so anything else is refused here, at every entry."""
    if not isinstance(name, str) or not name:
        raise InvalidCircuit(f"a {what} must be non-empty text, got {name!r}")
    if name != name.strip():
        raise InvalidCircuit(f"a {what} may not start or end with spaces: {name!r}")
    if not name.isprintable():
        raise InvalidCircuit(f"a {what} may not hold control characters: {name!r}")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidCircuit(f"a {what} may not hold / or \\ or be . or .. (names become file names): {name!r}")
    if len(name) > NAME_LEN:
        raise InvalidCircuit(f"a {what} may have at most {NAME_LEN} characters, got {len(name)}: {name[:40]!r}...")
    return name


def check_text(value: object, what: str, limit: int = NAME_LEN, *, optional: bool = False) -> Optional[str]:
    """A text field both backends keep: a string of at most ``limit`` characters (PostgreSQL refuses longer
    ones where SQLite would not, so a catalog must not hold what cannot move between them)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidCircuit(f"{what} must be non-empty text, got {value!r}")
    if len(value) > limit:
        raise InvalidCircuit(f"{what} may have at most {limit} characters, got {len(value)}: {value[:40]!r}...")
    if "\x00" in value:
        raise InvalidCircuit(f"{what} may not hold a NUL character")
    return value


def check_header(new: NewCircuit) -> None:
    """The circuit's own fields: a usable name, model and task, a known source, a finite threshold."""
    check_name(new.name)
    check_text(new.model, f"circuit {new.name!r}: model name")
    check_text(new.task, f"circuit {new.name!r}: task name", optional=True)
    check_text(new.method, f"circuit {new.name!r}: method", optional=True)
    check_text(new.citation, f"circuit {new.name!r}: citation", TEXT_LEN, optional=True)
    check_text(new.description, f"circuit {new.name!r}: description", TEXT_LEN, optional=True)
    for n in new.nodes:
        check_text(n.role, f"circuit {new.name!r}: node {n.key}'s role", optional=True)
        check_text(n.role_source, f"circuit {new.name!r}: node {n.key}'s role source", optional=True)
        check_text(n.role_note, f"circuit {new.name!r}: node {n.key}'s role note", TEXT_LEN, optional=True)
    if new.source not in SOURCES:
        raise InvalidCircuit(f"circuit {new.name!r}: source must be one of {', '.join(SOURCES)}, got {new.source!r}")
    if new.threshold is not None and not math.isfinite(new.threshold):
        raise InvalidCircuit(f"circuit {new.name!r}: threshold must be finite, got {new.threshold}")


def canonical_rows(new: NewCircuit, shape: Optional[ModelShape]) -> tuple[list[Row], list[Row]]:
    """Node and edge rows (without ``circuit_id``), nodes in topological order, edges in the given order."""
    check_header(new)
    keys = _Keys(new.name, shape)
    nodes = _node_rows(new, keys)
    edges = _edge_rows(new, keys)
    kept_nodes = {n["key"] for n in nodes if n["kept"]}
    for e in edges:
        if e["kept"]:
            for end in (e["src"], e["dst"]):
                if end not in kept_nodes:
                    raise InvalidCircuit(
                        f"circuit {new.name!r}: edge {_edge_key(e)} is kept but {end} is not a kept node of it"
                    )
    return nodes, edges


def _node_rows(new: NewCircuit, keys: _Keys) -> list[Row]:
    seen: dict[str, Node] = {}
    records: dict[str, NodeRecord] = {}
    for record in new.nodes:
        node = keys.node(record.key)
        if node.key in seen:
            raise InvalidCircuit(f"circuit {new.name!r} lists node {node.key} twice")
        seen[node.key] = node
        records[node.key] = record
    ordered = sorted(seen.values())
    return [_node_row(node, records[node.key]) for node in ordered]


def _node_row(node: Node, record: NodeRecord) -> Row:
    score, score_kind = encode_score(record.score)
    role_score, role_score_kind = encode_score(record.role_score)
    placed = node.kind in (NodeKind.HEAD, NodeKind.MLP)
    return {
        "key": node.key,
        "kind": node.kind.value,
        "layer": node.layer if placed else None,
        "head": node.head,
        "score": score,
        "score_kind": score_kind,
        "kept": bool(record.kept),
        "role": record.role,
        "role_score": role_score,
        "role_score_kind": role_score_kind,
        "role_source": record.role_source,
        "role_note": record.role_note,
        "attributes": dict(record.attributes),
    }


def _edge_rows(new: NewCircuit, keys: _Keys) -> list[Row]:
    rows: list[Row] = []
    seen: set[tuple[str, str, str]] = set()
    checked: set[tuple[str, str, bool]] = set()  # q, k and v edges of a pair pass or fail together
    for record in new.edges:
        src = keys.node(record.src)
        dst, input_ = keys.destination(record.dst, record.input)
        triple = (keys.key(src), keys.key(dst), input_ or "")
        if triple in seen:
            raise InvalidCircuit(f"circuit {new.name!r} lists edge {_edge_key(_bare(triple))} twice")
        seen.add(triple)
        pair = (triple[0], triple[1], input_ is None)
        if pair not in checked:
            _check_edge(new.name, Edge(src, dst, cast(Optional[InputName], input_)))  # checked above: q, k, v
            checked.add(pair)
        score, score_kind = encode_score(record.score)
        rows.append(
            {
                "src": triple[0],
                "dst": triple[1],
                "input": triple[2],
                "score": score,
                "score_kind": score_kind,
                "kept": bool(record.kept),
            }
        )
    return rows


def _check_edge(circuit: str, edge: Edge) -> None:
    try:
        check_edge(edge)
    except InvalidKey as err:
        raise InvalidCircuit(f"circuit {circuit!r}: {err}") from None


def _bare(triple: tuple[str, str, str]) -> Row:
    return {"src": triple[0], "dst": triple[1], "input": triple[2]}


def _edge_key(row: Row) -> str:
    return EdgeRecord(row["src"], row["dst"], row["input"] or None).key
