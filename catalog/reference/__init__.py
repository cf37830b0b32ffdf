"""The published GPT-2 small circuits, shipped as data files, and their loader.

Each circuit is one JSON file in this folder, written from the papers' facts (never from their code or
prose) and citing where every list comes from. The files use a small reference schema rather than the
export format, so that they read like the papers' tables and can be checked against them by eye::

    {
      "format": "circuit-catalog-reference", "version": 1,
      "name": "ioi-wang2022", "title": "...", "task": "ioi", "description": "...",
      "model": "gpt2", "model_hub_id": "openai-community/gpt2",
      "model_shape": {"n_layers": 12, "n_heads": 12, "d_model": 768},
      "citation": "Authors (year). Title. arXiv:id",
      "sources": [{"id": "...", "authors": [...], "year": 2022, "title": "...", "arxiv": "...", "used_for": "..."}],
      "node_list_from": "where the node lists come from",
      "edges_known": true, "edges_note": "what the edges are (and are not)",
      "groups": [{"name": "name mover", "role": "name mover", "nodes": ["9.9", "10.0", "9.6"]}, ...],
      "connections": [{"from": "embed", "to": "name mover", "inputs": ["k", "v"], "position": "IO",
                       "cites": "file:lines"}, ...],
      "performance": {"logit_diff_recovered": 0.81},
      "node_attributes": {"9.1": {...}}, "role_scores": {"9.1": 0.874},
      "evaluation": {"ablation": "mean", "corruption": "abc", "level": "edges", "note": "how the paper evaluated it"},
      ...any other field (task_setup, contested, notes): kept in the circuit's metadata
    }

A group's nodes get its ``role`` (``role_source`` ``paper``) and ``attributes.group``; a group without a
``role`` (e.g. the MLPs a paper keeps on the paths between its heads) gives them only ``attributes.group``.
When edges are known they are expanded from ``connections``: every sender in ``from`` to every receiver in
``to`` (a group name or a node key, or a list of them), into each of the receiver's listed ``inputs`` when it
is a head; pairs that cannot exist (a later layer feeding an earlier one, a node feeding itself) are skipped,
so "MLPs within a group connect forward" is a connection from a group to itself, and "every MLP into every
head above it" is one connection from the MLP group to the head groups. An edge that two connections both
give is refused. A connection's other keys (``position``, ``cites``) are not part of its edges; like every
other field they stay in the metadata. embed and logits are in every circuit. ``evaluation`` (how the paper
evaluated the circuit: ablation, corruption, level) is a default for the evaluator, kept in the metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any, Optional, cast

from catalog.errors import InvalidCircuit, NotFound
from catalog.formats.common import validate
from catalog.records import EdgeRecord, NewCircuit, NodeRecord
from discovery.graph import QKV, Edge, InputName, InvalidKey, Node, NodeKind, check_edge, feeds, parse_node

FORMAT = "circuit-catalog-reference"
VERSION = 1
# Fields that become the circuit itself; every other field of a file is kept in its metadata.
_CIRCUIT_FIELDS = {"format", "version", "name", "task", "model", "description", "citation", "edges_known",
                   "groups", "performance", "node_attributes", "role_scores"}


@dataclass(frozen=True)
class ReferenceInfo:
    """One line of ``circuits reference list``: enough to choose, without building the circuit."""

    name: str
    title: str
    task: Optional[str]
    model: str
    edges_known: bool
    n_heads: int
    n_mlps: int
    n_edges: int
    citation: str


def list_references() -> list[ReferenceInfo]:
    """Every shipped reference circuit, by name."""
    out = []
    for name in reference_names():
        data = _read(name)
        circuit = build_reference(data)
        kinds = [n.kind for n in circuit.nodes]
        out.append(
            ReferenceInfo(
                name=circuit.name,
                title=str(data.get("title", circuit.name)),
                task=circuit.task,
                model=circuit.model,
                edges_known=circuit.edges_known,
                n_heads=kinds.count(NodeKind.HEAD),
                n_mlps=kinds.count(NodeKind.MLP),
                n_edges=len(circuit.edges),
                citation=circuit.citation or "",
            )
        )
    return out


def reference_names() -> list[str]:
    folder = resources.files(__package__)
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def load_reference(name: str) -> NewCircuit:
    """The named reference circuit, checked like any import; NotFound lists the known names."""
    if name not in reference_names():
        raise NotFound(f"no reference circuit {name!r} (known: {', '.join(reference_names())})")
    return build_reference(_read(name))


def _read(name: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    if data.get("format") != FORMAT or data.get("version") != VERSION or data.get("name") != name:
        raise InvalidCircuit(f"reference file {name}.json: expected format {FORMAT} v{VERSION} named {name!r}")
    return data


# ---------------------------------------------------------------------------------------------------------
# Building a circuit from a reference file


def build_reference(data: dict[str, Any]) -> NewCircuit:
    groups = _groups(data["groups"])
    nodes = _nodes(data, groups)
    edges_known = bool(data["edges_known"])
    edges = tuple(_expand(data.get("connections", []), groups)) if edges_known else ()
    metadata = {k: v for k, v in data.items() if k not in _CIRCUIT_FIELDS}
    metadata["groups"] = {g["name"]: [n.key for n in groups[g["name"]]] for g in data["groups"]}
    return validate(
        NewCircuit(
            name=data["name"],
            model=data["model"],
            task=data.get("task"),
            source="published",
            nodes=nodes,
            edges=edges,
            edges_known=edges_known,
            citation=data["citation"],
            description=data.get("description"),
            performance=dict(data.get("performance", {})),
            metadata=metadata,
        )
    )


def _groups(raw: list[dict[str, Any]]) -> dict[str, list[Node]]:
    groups: dict[str, list[Node]] = {}
    for g in raw:
        if g["name"] in groups:
            raise InvalidCircuit(f"group {g['name']!r} is defined twice")
        groups[g["name"]] = [_node(k) for k in g["nodes"]]
    return groups


def _nodes(data: dict[str, Any], groups: dict[str, list[Node]]) -> tuple[NodeRecord, ...]:
    attributes = {_node(k).key: v for k, v in data.get("node_attributes", {}).items()}
    role_scores = {_node(k).key: v for k, v in data.get("role_scores", {}).items()}
    records: dict[Node, NodeRecord] = {}
    for g in data["groups"]:
        for node in groups[g["name"]]:
            if node in records:
                raise InvalidCircuit(f"node {node.key} is in two groups")
            role = g.get("role")
            records[node] = NodeRecord.from_key(
                node.key,
                role=role,
                role_source="paper" if role else None,
                role_score=role_scores.get(node.key),
                role_note=g.get("role_note"),
                attributes={"group": g["name"], **attributes.get(node.key, {})},
            )
    for frame in ("embed", "logits"):
        node = _node(frame)
        records.setdefault(node, NodeRecord.from_key(frame))
    unknown = set(attributes) - {n.key for n in records}
    if unknown:
        raise InvalidCircuit(f"node_attributes name {sorted(unknown)[0]}, which no group holds")
    return tuple(records[n] for n in sorted(records))


def _expand(connections: list[dict[str, Any]], groups: dict[str, list[Node]]) -> Iterator[EdgeRecord]:
    for c in connections:
        inputs = c.get("inputs")
        for src in _resolve(c["from"], groups):
            for dst in _resolve(c["to"], groups):
                if src == dst or not feeds(src, dst):
                    continue
                yield from _edges(src, dst, inputs)


def _edges(src: Node, dst: Node, inputs: Optional[list[str]]) -> Iterator[EdgeRecord]:
    if dst.kind is NodeKind.HEAD:
        if not inputs or any(i not in QKV for i in inputs):
            raise InvalidCircuit(f"a connection into head {dst.key} must list its inputs (q, k, v)")
        for inp in inputs:
            yield _edge(Edge(src, dst, cast(InputName, inp)))
    else:
        yield _edge(Edge(src, dst))


def _edge(edge: Edge) -> EdgeRecord:
    check_edge(edge)
    return EdgeRecord.from_edge(edge)


def _resolve(ref: Any, groups: dict[str, list[Node]]) -> Iterable[Node]:
    refs = ref if isinstance(ref, list) else [ref]
    nodes: list[Node] = []
    for r in refs:
        nodes.extend(groups[r] if r in groups else [_node(r)])
    return nodes


def _node(key: str) -> Node:
    try:
        return parse_node(key)
    except InvalidKey as err:
        raise InvalidCircuit(f"reference data: {err}") from None
