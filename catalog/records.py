"""Frozen records: what the catalog hands out and takes in. ORM rows never leave ``catalog/``.

Node keys and edge keys are the canonical strings of ``discovery.graph`` (``a9.1``, ``m5``, ``a0.1->a9.1.q``).
Timestamps are naive UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, Protocol

from discovery.graph import Edge, NodeKind, edge_key, parse_destination, parse_node

SOURCES = ("discovered", "published", "imported")
RUN_STATUSES = ("running", "succeeded", "failed", "interrupted", "lost")


@dataclass(frozen=True)
class NodeRecord:
    """A component of a circuit. ``layer`` and ``head`` are None where they do not apply (embed, logits, MLP head).

    ``kept`` is False for a node the method scored but left out. ``role`` comes with who set it
    (``role_source``: ``paper``, ``analysis`` or ``user:NAME``), the score behind it and a note.
    ``attributes`` holds analysis figures (attention shares, OV scores, ...) keyed by analysis name.
    """

    key: str
    kind: NodeKind
    layer: Optional[int] = None
    head: Optional[int] = None
    score: Optional[float] = None
    kept: bool = True
    role: Optional[str] = None
    role_score: Optional[float] = None
    role_source: Optional[str] = None
    role_note: Optional[str] = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_component(self) -> bool:
        """A head or an MLP: what circuits choose among (embed and logits are in every circuit)."""
        return self.kind in (NodeKind.HEAD, NodeKind.MLP)

    @classmethod
    def from_key(cls, key: str, **kw: Any) -> "NodeRecord":
        """Build from any accepted spelling (``9.1``, ``a9.1``, ``m5``); the stored key is canonical."""
        node = parse_node(key)
        layer = node.layer if node.kind in (NodeKind.HEAD, NodeKind.MLP) else None
        return cls(key=node.key, kind=node.kind, layer=layer, head=node.head, **kw)


@dataclass(frozen=True)
class EdgeRecord:
    """An edge of a circuit: ``dst`` is a node key, ``input`` the head input (q/k/v) or None."""

    src: str
    dst: str
    input: Optional[str] = None
    score: Optional[float] = None
    kept: bool = True

    @property
    def key(self) -> str:
        return edge_key(self.src, self.dst, self.input)

    @classmethod
    def from_edge(cls, edge: Edge, score: Optional[float] = None, kept: bool = True) -> "EdgeRecord":
        return cls(src=edge.src.key, dst=edge.dst.key, input=edge.input, score=score, kept=kept)

    @classmethod
    def from_key(cls, key: str, score: Optional[float] = None, kept: bool = True) -> "EdgeRecord":
        src_text, _, dst_text = key.partition("->")
        dst, inp = parse_destination(dst_text)
        return cls(src=parse_node(src_text).key, dst=dst.key, input=inp, score=score, kept=kept)


@dataclass(frozen=True)
class NewCircuit:
    """A circuit to be saved (published, imported, or cut from a run's scores).

    ``edges_known`` is False when the source lists only nodes (most papers): such a circuit compares at node
    level only. ``edges`` may include edges with ``kept=False`` (scored but not in the circuit).
    """

    name: str
    model: str
    task: Optional[str]
    source: str
    nodes: tuple[NodeRecord, ...]
    edges: tuple[EdgeRecord, ...] = ()
    edges_known: bool = False
    citation: Optional[str] = None
    description: Optional[str] = None
    method: Optional[str] = None
    threshold: Optional[float] = None
    performance: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CircuitRecord:
    """A stored circuit. ``nodes``/``edges`` include scored-but-not-kept ones; use ``kept_*`` for the circuit."""

    id: int
    name: str
    model: str
    task: Optional[str]
    source: str
    nodes: tuple[NodeRecord, ...]
    edges: tuple[EdgeRecord, ...]
    edges_known: bool
    citation: Optional[str] = None
    description: Optional[str] = None
    method: Optional[str] = None
    threshold: Optional[float] = None
    run_id: Optional[int] = None
    performance: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created_at: Optional[dt.datetime] = None
    group: Optional[str] = None  # the group it was found with (a stability study's), if any

    @property
    def kept_nodes(self) -> tuple[NodeRecord, ...]:
        return tuple(n for n in self.nodes if n.kept)

    @property
    def kept_edges(self) -> tuple[EdgeRecord, ...]:
        return tuple(e for e in self.edges if e.kept)

    def node(self, key: str) -> Optional[NodeRecord]:
        canonical = parse_node(key).key
        return next((n for n in self.nodes if n.key == canonical), None)

    def evaluation_defaults(self) -> dict[str, Any]:
        """How this circuit is evaluated unless told otherwise, and why: as its paper evaluated it (a published
        circuit's ``evaluation``), as its run found it (a discovered circuit's ablation, corruption and metric), or
        MIB's counterfactual patching; at node level when its edges are unknown."""
        level = "edges" if self.edges_known else "nodes"
        paper = self.metadata.get("evaluation")
        if isinstance(paper, Mapping):
            keys = ("ablation", "corruption", "level")
            return {"level": level, **{k: paper[k] for k in keys if k in paper}, "from": "its paper"}
        config = self.metadata.get("config")
        if isinstance(config, Mapping):
            return {"level": level, "ablation": config.get("ablation"), "corruption": config.get("corruption"),
                    "from": "its run"}
        return {"level": level, "ablation": "patch", "from": "MIB's counterfactual patching"}


class CircuitLike(Protocol):
    """What any circuit is, stored (``CircuitRecord``) or about to be (``NewCircuit``): the one circuit type that
    comparisons, drawings and file formats take."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def task(self) -> Optional[str]: ...

    @property
    def nodes(self) -> tuple[NodeRecord, ...]: ...

    @property
    def edges(self) -> tuple[EdgeRecord, ...]: ...

    @property
    def edges_known(self) -> bool: ...

    @property
    def metadata(self) -> Mapping[str, Any]: ...

    @property
    def source(self) -> str: ...

    @property
    def citation(self) -> Optional[str]: ...

    @property
    def description(self) -> Optional[str]: ...

    @property
    def method(self) -> Optional[str]: ...

    @property
    def threshold(self) -> Optional[float]: ...

    @property
    def performance(self) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class CircuitSummary:
    """One row of ``circuits list``: no nodes or edges loaded."""

    id: int
    name: str
    model: str
    task: Optional[str]
    source: str
    method: Optional[str]
    n_nodes: int
    n_edges: int
    edges_known: bool
    performance: Mapping[str, float] = field(default_factory=dict)
    created_at: Optional[dt.datetime] = None


class Holding(NamedTuple):
    """A circuit that keeps a node, and the node as it holds it: its score and its role, with who said so. What
    ``circuits holds`` answers, read without the circuits' other fields. Ten thousand may answer (a sweep's
    circuits all hold its heads), so a named tuple: a frozen dataclass's ``__init__`` costs four times as much to
    build, a fifth of the whole question."""

    circuit: str
    model: str
    task: Optional[str]
    key: str
    score: Optional[float]
    role: Optional[str]
    role_score: Optional[float]
    role_source: Optional[str]
    role_note: Optional[str]


@dataclass(frozen=True)
class RunRecord:
    """One discovery run, from ``running`` to ``succeeded``/``failed``/``interrupted``, or ``lost`` when its
    worker stopped renewing its heartbeat (killed, node lost) without saying how it ended."""

    id: int
    method: str
    metric: Optional[str]
    model: str
    task: Optional[str]
    status: str
    settings: Mapping[str, Any]
    seed: Optional[int]
    device: Optional[str]
    dtype: Optional[str]
    code_version: Optional[str]
    started_at: dt.datetime
    finished_at: Optional[dt.datetime] = None
    error: Optional[str] = None
    dataset_hash: Optional[str] = None
    circuit_names: tuple[str, ...] = ()
    job_key: Optional[str] = None
    heartbeat_at: Optional[dt.datetime] = None
    sweep_id: Optional[int] = None


@dataclass(frozen=True)
class NewEvaluation:
    """An evaluation to keep (``catalog.evaluations.save_evaluation``): the circuit measured, the key of everything
    that determined the figures, and what ``EvaluationRecord`` holds."""

    circuit: str
    eval_key: str
    model: str
    task: str
    metric: str
    ablation: str
    level: str
    settings: Mapping[str, Any]
    results: Mapping[str, Any]
    dataset_hash: Optional[str] = None
    code_version: Optional[str] = None


@dataclass(frozen=True)
class EvaluationRecord:
    """One kept evaluation of a circuit: what it was measured on (model, task, dataset, metric, ablation, level,
    ``settings``: corruption, positions, prompts, seed) and the figures (``results``: the metric value,
    kept_fraction, faithfulness, KL, accuracy, per-prompt spread)."""

    id: int
    circuit: str
    eval_key: str
    model: str
    task: str
    dataset_hash: Optional[str]
    metric: str
    ablation: str
    level: str
    settings: Mapping[str, Any]
    results: Mapping[str, Any]
    code_version: Optional[str]
    created_at: dt.datetime
