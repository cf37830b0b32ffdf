"""What every discovery method returns, and the conversions at its boundary.

Algorithms work on dense ``[S, D]`` score and keep matrices over the engine's graph (auto-circuit's habit:
one tensor per graph, indexed like the engine); ``edge_scores`` turns them into canonical ``ScoredEdge``s
once, at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor

from discovery.graph import ComponentGraph, Granularity, Node
from discovery.results import ScoredEdge, ScoredNode

Progress = Callable[[int, int], None]  # (done, total)


def no_progress(done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class MethodOutput:
    """A method's scored graph. ``edges``/``nodes`` include what was scored but not kept."""

    granularity: Granularity
    edges: tuple[ScoredEdge, ...] = ()
    nodes: tuple[ScoredNode, ...] = ()
    threshold: Optional[float] = None
    params: Mapping[str, Any] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kept_edges(self) -> tuple:
        return tuple(e.edge for e in self.edges if e.kept)

    @property
    def kept_nodes(self) -> tuple[Node, ...]:
        return tuple(n.node for n in self.nodes if n.kept)


def edge_scores(graph: ComponentGraph, scores: Tensor, kept: Tensor) -> tuple[ScoredEdge, ...]:
    """Every edge of ``graph`` with its score and keep flag, read from ``[S, D]`` matrices."""
    s_cpu, k_cpu = scores.detach().float().cpu().tolist(), kept.detach().bool().cpu().tolist()
    out = []
    for edge in graph.edges:
        s = graph.source_index[edge.src]
        d = graph.dest_index[(edge.dst, edge.input)]
        value = s_cpu[s][d]
        out.append(ScoredEdge(edge, float(value) if not math.isnan(value) else float("nan"), bool(k_cpu[s][d])))
    return tuple(out)


def edge_matrix(graph: ComponentGraph, device: torch.device | str = "cpu") -> Tensor:
    """``[S, D]`` bool: which (source, destination) pairs are edges of the graph."""
    m = torch.zeros(len(graph.sources), len(graph.destinations), dtype=torch.bool)
    for d, (dst, _) in enumerate(graph.destinations):
        m[: graph.n_upstream(dst), d] = True
    return m.to(device)
