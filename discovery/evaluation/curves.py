"""MIB's faithfulness curves over circuit sizes, and their areas CPR and CMD, by MIB's own rules.

Mueller, Geiger, Wiegreffe et al. (2025), "MIB: A Mechanistic Interpretability Benchmark", arXiv 2504.13151,
circuit-localization track; the rules are those of its evaluation code (hannamw/MIB-circuit-track):

- Points: k in 0.1 %, 0.2 %, 0.5 %, 1 %, 2 %, 5 %, 10 %, 20 %, 50 %, 100 % of the graph's edges
  (``MIB_circuit_track/evaluation.py`` line 31); the circuit at k is the top ``int(k * n_edges)`` edges (line 37),
  with dangling edges then removed (EAP-IG's ``apply_topn(..., prune=True)``, line 43; ``discovery.topology``).
- Ranking: **CPR** is read off the curve whose edges are ranked by *signed* score, **CMD** off the one ranked by
  |score| (``print_results.py`` lines 88-97 take the ``abs-False`` run for CPR and the ``abs-True`` run for CMD;
  ``run_evaluation.py``'s ``--absolute`` defaults to False). The signed ranking is under MIB's *loss* sign: EAP-IG
  attributes MIB's tasks with the logit difference as a loss (``run_attribution.py`` lines 85-86), so a score
  estimates loss(edge patched) - loss(model) and the most important edges have the largest positive scores.
  Scores kept under the other sign (``score_sign="metric"``: metric(patched) - metric(model), this project's EAP
  and path patching) are turned to that sign first; ACDC's are already losses.
- f(k) = (m(C_k) - m(empty)) / (m(model) - m(empty)) with the setup's metric and ablation (MIB patches from the
  counterfactual prompts at every position: ``evaluation.py`` line 14, never overridden), means over prompts
  taken before the ratio (lines 17-20, 55).
- CPR = area under f over k, CMD = area under |1 - f|, by the trapezoid rule over the k values themselves (linear
  k, no point at 0, no renormalisation: ``evaluation.py`` lines 58-73); with MIB's ks both lie in [0, 0.999] for f
  in [0, 1].

``ranking="absolute"`` is this project's earlier variant (|score| for both curves); the curve says which it used.
``n_edges`` counts every edge of the graph at the scores' granularity (32,491 q/k/v edges for GPT-2 small, as MIB
counts); edges without a score rank after every scored edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch

from discovery.errors import SettingsError
from discovery.graph import ComponentGraph, Edge, Granularity, NodeKind
from discovery.metrics import faithfulness
from discovery.patching import PatchSetup
from discovery.results import ScoredEdge
from discovery.topology import connected_core, ranked

MIB_KS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
RANKINGS = ("mib", "absolute")
SCORE_SIGNS = ("metric", "loss")

EdgeScores = Union[Iterable[tuple[Edge, float]], Iterable[Any], Any]  # pairs, ScoredEdges, or a method output


@dataclass(frozen=True)
class Points:
    """One curve: for each k, how many edges were asked for and kept (after pruning), m(C_k), and f(k)."""

    n_requested: tuple[int, ...]
    n_kept: tuple[int, ...]
    values: tuple[float, ...]
    faithfulness: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"n_requested": list(self.n_requested), "n_kept": list(self.n_kept), "values": list(self.values),
                "faithfulness": list(self.faithfulness)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Points":
        return cls(tuple(int(x) for x in d["n_requested"]), tuple(int(x) for x in d["n_kept"]),
                   tuple(float(x) for x in d["values"]), tuple(float(x) for x in d["faithfulness"]))


@dataclass(frozen=True)
class Curve:
    """MIB's two curves over ``ks``: ``signed`` (ranked by signed score under the loss sign; CPR) and ``absolute``
    (ranked by |score|; CMD). With ``ranking="absolute"`` both are ranked by |score|."""

    ks: tuple[float, ...]
    signed: Points
    absolute: Points
    model_value: float
    empty_value: float
    n_edges: int  # edges in the graph
    metric: str = "logit-diff"
    ranking: str = "mib"

    @property
    def cpr(self) -> float:
        """Integrated circuit performance ratio: area under f over k (higher is better)."""
        return trapezoid(self.ks, self.signed.faithfulness)

    @property
    def cmd(self) -> float:
        """Integrated circuit-model difference: area under |1 - f| over k (lower is better)."""
        return trapezoid(self.ks, [abs(1.0 - f) for f in self.absolute.faithfulness])

    @property
    def rule(self) -> str:
        if self.ranking == "mib":
            return ("MIB's rules: CPR on edges ranked by signed score (loss sign), CMD on edges ranked by |score|, "
                    "dangling edges pruned")
        return "this project's variant: both curves on edges ranked by |score|, dangling edges pruned"

    def as_dict(self) -> dict[str, Any]:
        return {"ks": list(self.ks), "cpr": self.cpr, "cmd": self.cmd, "ranking": self.ranking, "rule": self.rule,
                "signed": self.signed.as_dict(), "absolute": self.absolute.as_dict(),
                "model_value": self.model_value, "empty_value": self.empty_value, "n_edges": self.n_edges,
                "metric": self.metric}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Curve":
        """The curve ``as_dict`` wrote (a kept evaluation's results)."""
        return cls(ks=tuple(float(k) for k in d["ks"]), signed=Points.from_dict(d["signed"]),
                   absolute=Points.from_dict(d["absolute"]), model_value=float(d["model_value"]),
                   empty_value=float(d["empty_value"]), n_edges=int(d["n_edges"]), metric=str(d["metric"]),
                   ranking=str(d["ranking"]))


def trapezoid(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Trapezoid-rule area of ys over xs (increasing), as MIB integrates its curves."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    if len(xs) < 2:
        raise ValueError("an area needs at least two points")
    return float(np.trapezoid(ys, xs))


def faithfulness_curve(
    setup: PatchSetup,
    edge_scores: EdgeScores,
    ks: Sequence[float] = MIB_KS,
    *,
    score_sign: str = "metric",
    ranking: str = "mib",
) -> Curve:
    """MIB's curves (see the module docstring), every circuit of both evaluated in one batched run."""
    ks = tuple(float(k) for k in ks)
    if not ks or any(not 0 <= k <= 1 for k in ks) or list(ks) != sorted(ks):
        raise SettingsError(f"ks must be increasing fractions of the edges in [0, 1], got {ks}")
    if ranking not in RANKINGS or score_sign not in SCORE_SIGNS:
        raise SettingsError(f"ranking is one of {', '.join(RANKINGS)} and score_sign one of {', '.join(SCORE_SIGNS)}")
    scored = _pairs(edge_scores)
    graph = _graph_for(setup, [e for e, _ in scored])
    every = graph.edges
    known = set(every)
    unknown = [e for e, _ in scored if e not in known]
    if unknown:
        raise SettingsError(f"{unknown[0].key} is not an edge of a {graph.granularity.value} graph of this model")
    flip = score_sign == "metric" and setup.metric.spec.higher_is_better
    loss_scores = [(e, -s if flip else s) for e, s in scored]
    orders = {"absolute": _complete(ranked(loss_scores, every, "absolute"), every)}
    orders["signed"] = orders["absolute"] if ranking == "absolute" else _complete(ranked(loss_scores, every, "signed"),
                                                                                    every)
    circuits = {name: [connected_core(order[: int(k * len(every))]) for k in ks] for name, order in orders.items()}
    names = ["signed", "absolute"]
    stacked = [c for name in names for c in circuits[name]]
    values = setup.values(torch.stack([setup.mask_from_edges(c) for c in stacked])).tolist()
    model, empty = setup.model_value, setup.empty_value
    points = {}
    for i, name in enumerate(names):
        vals = values[i * len(ks): (i + 1) * len(ks)]
        points[name] = Points(n_requested=tuple(int(k * len(every)) for k in ks),
                              n_kept=tuple(len(c) for c in circuits[name]), values=tuple(vals),
                              faithfulness=tuple(faithfulness(v, model, empty) for v in vals))
    return Curve(ks=ks, signed=points["signed"], absolute=points["absolute"], model_value=model, empty_value=empty,
                 n_edges=len(every), metric=setup.metric.name, ranking=ranking)


def _complete(order: list[Edge], every: Sequence[Edge]) -> list[Edge]:
    """The ranked scored edges, then the graph's unscored edges in graph order."""
    seen = set(order)
    return order + [e for e in every if e not in seen]


def _pairs(edge_scores: EdgeScores) -> list[tuple[Edge, float]]:
    items = getattr(edge_scores, "edges", edge_scores)  # a MethodOutput or DiscoveryResult, or scored pairs
    out = []
    for item in items:
        edge, score = (item.edge, item.score) if isinstance(item, ScoredEdge) else item
        out.append((edge, float(score) if score is not None else math.nan))
    return out


def _graph_for(setup: PatchSetup, edges: list[Edge]) -> ComponentGraph:
    into_heads = [e for e in edges if e.dst.kind is NodeKind.HEAD]
    if into_heads and all(e.input is None for e in into_heads):
        return ComponentGraph(setup.graph.shape, Granularity.HEADS)
    return setup.graph
