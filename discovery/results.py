"""Plain values that leave discovery: what model, what data, and the scored graph a method found.

A discovery method returns a ``DiscoveryResult`` and knows nothing of the database; the catalog turns it into
rows in one place (``catalog.queries.save_result``). Nothing here imports torch, so the catalog can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from discovery.config import RunConfig
from discovery.graph import Edge, Granularity, Node


@dataclass(frozen=True)
class ModelSpec:
    """What identifies a model: where it came from, its weights, its shape, and what changes its hooks.

    ``name`` is what the user typed (``toy``, ``gpt2``); ``source`` the full hub id or the folder loaded.
    ``flags`` holds the weight-processing and hook-enabling switches (fold_ln, use_attn_result, ...),
    because they decide which nodes exist and what their activations are.
    """

    name: str
    source: str
    n_layers: int
    n_heads: int
    d_model: int
    d_head: Optional[int] = None
    d_mlp: Optional[int] = None
    n_ctx: Optional[int] = None
    d_vocab: Optional[int] = None
    architecture: str = "GPT2LMHeadModel"
    weights_hash: Optional[str] = None
    versions: Mapping[str, str] = field(default_factory=dict)
    flags: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """A task's prompts, identified by content: ``content_hash`` is sha256 of the canonical JSON of the token ids.

    ``filter`` names the correctness filter that chose these ``size`` prompts out of ``drawn`` (None: no filter,
    and ``drawn`` is None). ``resample`` is the seed of a bootstrap resample of those prompts (drawn with
    replacement, ``discovery.tasks.filtering.resample``; None: the prompts themselves), so a resampled run can be
    made again.
    """

    task: str
    corruption: str
    size: int
    seed: int
    content_hash: str
    seq_len: Optional[int] = None
    filter: Optional[str] = None
    drawn: Optional[int] = None
    resample: Optional[int] = None


@dataclass(frozen=True)
class ScoredEdge:
    edge: Edge
    score: float
    kept: bool


@dataclass(frozen=True)
class ScoredNode:
    node: Node
    score: Optional[float]
    kept: bool
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DiscoveryResult:
    """The scored graph one method produced, before it is persisted.

    ``config`` is the run's resolved configuration (``discovery.config``); ``params`` what the method reports
    having used (its settings, plus anything it decided, e.g. EAP's k). ``edges`` holds every edge the method
    scored, kept or not, so a circuit at another threshold can be cut from the stored scores later; ``nodes``
    likewise. ``granularity`` is NODES for node-level methods (node pruning), whose circuits are their kept nodes.
    ``performance`` holds the figures measured for the circuit by real ablation (e.g. ``{"kept_fraction": 0.83}``).
    """

    config: RunConfig
    model: ModelSpec
    dataset: DatasetSpec
    granularity: Granularity
    params: Mapping[str, Any] = field(default_factory=dict)
    edges: tuple[ScoredEdge, ...] = ()
    nodes: tuple[ScoredNode, ...] = ()
    threshold: Optional[float] = None
    performance: Mapping[str, float] = field(default_factory=dict)
    code_version: str = ""
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def metric(self) -> str:
        return self.config.metric

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def kept_edges(self) -> tuple[Edge, ...]:
        return tuple(e.edge for e in self.edges if e.kept)

    @property
    def kept_nodes(self) -> tuple[Node, ...]:
        return tuple(n.node for n in self.nodes if n.kept)
