"""MIB's faithfulness curve over circuit sizes, and its areas CPR and CMD.

Mueller, Geiger, Wiegreffe et al. (2025), "MIB: A Mechanistic Interpretability Benchmark", arXiv 2504.13151,
circuit-localization track. For each k in ``ks`` (fractions of the graph's edges) the circuit C_k is the top
``int(k * n_edges)`` edges by |score| (by score with ``absolute=False``), with dangling edges removed as EAP-IG's
``Graph.prune`` removes them (``prune=False`` keeps them), and

    f(k) = (m(C_k) - m(empty)) / (m(model) - m(empty)).

CPR = area under f over k; CMD = area under |1 - f|. Integration rule: the trapezoid rule over the k values
themselves (linear k, no extra point at k = 0, no renormalisation), exactly as MIB's evaluation code
(``MIB_circuit_track/evaluation.py``, ``evaluate_area_under_curve`` with ``log_scale=False``); with MIB's
default ks (0.001 .. 1) the areas lie in [0, 0.999] for f in [0, 1]. ``n_edges`` counts every edge of the
graph at the scores' granularity (32,491 q/k/v edges for GPT-2 small, as MIB counts); edges without a score
rank after every scored edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence, Union

import torch

from discovery.errors import SettingsError
from discovery.evaluation.connectivity import connected_core
from discovery.graph import ComponentGraph, Edge, Granularity, NodeKind
from discovery.metrics import faithfulness
from discovery.patching import PatchSetup

MIB_KS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)

EdgeScores = Union[Iterable[tuple[Edge, float]], Iterable[Any], Any]  # pairs, ScoredEdges, or a method output


@dataclass(frozen=True)
class Curve:
    """A faithfulness curve: for each k, how many edges were asked for and kept, m(C_k), and f(k)."""

    ks: tuple[float, ...]
    n_requested: tuple[int, ...]
    n_kept: tuple[int, ...]  # after removing dangling edges
    values: tuple[float, ...]
    faithfulness: tuple[float, ...]
    model_value: float
    empty_value: float
    n_edges: int  # edges in the graph
    metric: str = "logit-diff"

    @property
    def cpr(self) -> float:
        """Integrated circuit performance ratio: area under f over k (higher is better)."""
        return trapezoid(self.ks, self.faithfulness)

    @property
    def cmd(self) -> float:
        """Integrated circuit-model difference: area under |1 - f| over k (lower is better)."""
        return trapezoid(self.ks, [abs(1.0 - f) for f in self.faithfulness])

    @property
    def average(self) -> float:
        return sum(self.faithfulness) / len(self.faithfulness)

    def as_dict(self) -> dict[str, Any]:
        return {"ks": list(self.ks), "n_requested": list(self.n_requested), "n_kept": list(self.n_kept),
                "values": list(self.values), "faithfulness": list(self.faithfulness), "cpr": self.cpr,
                "cmd": self.cmd, "model_value": self.model_value, "empty_value": self.empty_value,
                "n_edges": self.n_edges, "metric": self.metric}


def trapezoid(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Trapezoid-rule area of ys over xs (increasing), as MIB integrates its curves."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    if len(xs) < 2:
        raise ValueError("an area needs at least two points")
    return sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))


def faithfulness_curve(
    setup: PatchSetup,
    edge_scores: EdgeScores,
    ks: Sequence[float] = MIB_KS,
    *,
    absolute: bool = True,
    prune: bool = True,
) -> Curve:
    """f(k) for the top k of edges by score, all ks evaluated as stacked masks in one batched run."""
    ks = tuple(float(k) for k in ks)
    if not ks or any(not 0 <= k <= 1 for k in ks) or list(ks) != sorted(ks):
        raise SettingsError(f"ks must be increasing fractions of the edges in [0, 1], got {ks}")
    scored = _pairs(edge_scores)
    graph = _graph_for(setup, [e for e, _ in scored])
    ranked = _ranked(graph, scored, absolute)
    circuits = []
    for k in ks:
        top = ranked[: int(k * len(ranked))]
        circuits.append(connected_core(top) if prune else frozenset(top))
    masks = torch.stack([setup.mask_from_edges(c) for c in circuits])
    values = setup.values(masks).tolist()
    model, empty = setup.model_value, setup.empty_value
    return Curve(
        ks=ks, n_requested=tuple(int(k * len(ranked)) for k in ks), n_kept=tuple(len(c) for c in circuits),
        values=tuple(values), faithfulness=tuple(faithfulness(v, model, empty) for v in values),
        model_value=model, empty_value=empty, n_edges=len(ranked), metric=setup.metric.name,
    )


def _pairs(edge_scores: EdgeScores) -> list[tuple[Edge, float]]:
    if hasattr(edge_scores, "edges") and not isinstance(edge_scores, (list, tuple)):
        edge_scores = edge_scores.edges  # a MethodOutput or DiscoveryResult
    out = []
    for item in edge_scores:
        edge, score = (item.edge, item.score) if hasattr(item, "edge") else item
        out.append((edge, float(score)))
    return out


def _graph_for(setup: PatchSetup, edges: list[Edge]) -> ComponentGraph:
    into_heads = [e for e in edges if e.dst.kind is NodeKind.HEAD]
    if into_heads and all(e.input is None for e in into_heads):
        return ComponentGraph(setup.graph.shape, Granularity.HEADS)
    return setup.graph


def _ranked(graph: ComponentGraph, scored: list[tuple[Edge, float]], absolute: bool) -> list[Edge]:
    """Every edge of the graph, best first: scored edges by (|)score(|) (ties in graph order), then the rest."""
    every = graph.edges
    position = {e: i for i, e in enumerate(every)}
    unknown = [e for e, _ in scored if e not in position]
    if unknown:
        raise SettingsError(f"{unknown[0].key} is not an edge of a {graph.granularity.value} graph of this model")
    best: dict[Edge, float] = {}
    for e, s in scored:
        if not math.isnan(s):
            best[e] = abs(s) if absolute else s
    top = sorted(best, key=lambda e: (-best[e], position[e]))
    return top + [e for e in every if e not in best]


def curves_summary(curves: dict[str, Curve]) -> list[dict[str, Any]]:
    """One row per named curve: CPR, CMD and the faithfulness at each k (for tables and JSON)."""
    return [{"name": name, **curve.as_dict()} for name, curve in curves.items()]

