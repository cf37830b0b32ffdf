"""Statistics over circuits: how stable a circuit is across resamples, and whether an overlap beats chance.

Torch-free functions over ``CircuitLike`` records (stored, or loaded from files), as ``catalog.compare`` is; the
drawing lives in ``catalog.figures``.

Stability (Méloux, Portet, Peyrard et al. 2025, "Mechanistic Interpretability as Statistical Estimation",
arXiv 2510.00845). A circuit found once is one draw of an estimator: run the method on N bootstrap resamples of the
prompts (or seeds) and look at the circuits it returns. Reported here: how often each node and edge is kept
(``frequencies``), the distribution of the Jaccard index over every pair of resamples (its mean and the 2.5-97.5 %
percentile interval), and the verdict against the bar the paper proposes: a circuit is called stable when the mean
pairwise Jaccard is at least 0.8 over at least 100 resamples (``MELOUX_BAR``, ``MELOUX_MIN_RESAMPLES``; the paper
measures 0.67 for EAP-IG's GPT-2-small IOI circuit under bootstrap resampling of the prompts).

Significance of an overlap. Two circuits sharing k components says little until one knows how many two random
circuits of the same sizes share. The null draws both circuits at random, ``samples`` times:

* nodes: the same numbers of heads and of MLPs, uniformly (every node set is connected under node ablation:
  ``discovery.topology``); the shared count then follows a sum of two hypergeometric laws, whose exact tail is
  reported beside the Monte-Carlo p-value as a check (``exact_p``);
* edges: random *connected* circuits with the same numbers of edges and of heads and MLPs they touch, built by
  ``discovery.topology.random_circuits`` (as ``circuits evaluate --random`` builds its baselines).

The p-value is one-sided (is the overlap *larger* than chance?) with the +1 correction of Davison & Hinkley (1997)
and North, Curtis & Sham (2002): p = (k + 1) / (n + 1), k the null draws sharing at least as many as observed, so a
p-value is never 0 from finitely many draws. Several pairs at once are corrected for multiple comparisons:
Holm-Bonferroni by default (controls the family-wise error; Holm 1979), Benjamini-Hochberg on request (controls the
false discovery rate; Benjamini & Hochberg 1995), or none.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from catalog.compare import COMPONENT_KINDS, component_keys, edge_keys, jaccard, sort_keys
from catalog.errors import InvalidCircuit
from catalog.records import CircuitLike
from discovery.graph import ComponentGraph, Edge, Granularity, ModelShape, NodeKind, parse_edge
from discovery.topology import random_circuits

MELOUX_BAR = 0.8
MELOUX_MIN_RESAMPLES = 100
MELOUX_GPT2_IOI = 0.67  # their bootstrap Jaccard for EAP-IG's GPT-2-small IOI circuit
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")
CORRECTION_NAMES = {"holm": "Holm-Bonferroni (family-wise error)", "bh": "Benjamini-Hochberg (false discovery rate)",
                    "none": "no correction"}


# ---------------------------------------------------------------------------------------------------------
# Summaries


@dataclass(frozen=True)
class Summary:
    """A distribution in three numbers: mean and the 2.5 and 97.5 percentiles (linear interpolation, as numpy's
    default), over ``n`` values."""

    n: int
    mean: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "low": self.low, "high": self.high}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between order statistics; nan when empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def summarize(values: Sequence[float]) -> Summary:
    values = [float(v) for v in values]
    mean = sum(values) / len(values) if values else math.nan
    return Summary(len(values), mean, percentile(values, 2.5), percentile(values, 97.5))


# ---------------------------------------------------------------------------------------------------------
# Stability


def circuit_keys(circuit: CircuitLike, level: str, kinds: Collection[str] = COMPONENT_KINDS) -> frozenset[str]:
    """What a circuit is at ``level``: its kept heads and MLPs, or its kept edges."""
    if level == "edges":
        if not circuit.edges_known:
            raise InvalidCircuit(f"circuit {circuit.name!r} is known only by its nodes: use the nodes level")
        return edge_keys(circuit)
    if level != "nodes":
        raise InvalidCircuit(f"unknown level {level!r}: use nodes or edges")
    return component_keys(circuit, kinds)


def pairwise_jaccards(sets: Sequence[Collection[str]]) -> tuple[float, ...]:
    """The Jaccard index of every unordered pair (i < j): n (n - 1) / 2 values."""
    return tuple(jaccard(sets[i], sets[j]) for i in range(len(sets)) for j in range(i + 1, len(sets)))


def frequencies(sets: Sequence[Collection[str]], level: str) -> dict[str, float]:
    """Each key's share of the sets holding it, most frequent first (ties in topological order)."""
    if not sets:
        return {}
    counts: dict[str, int] = {}
    for s in sets:
        for key in set(s):
            counts[key] = counts.get(key, 0) + 1
    ordered = sort_keys(counts, level)
    position = {k: i for i, k in enumerate(ordered)}
    return {k: counts[k] / len(sets) for k in sorted(counts, key=lambda k: (-counts[k], position[k]))}


@dataclass(frozen=True)
class Stability:
    """How alike the circuits of one stability group are (see the module docstring)."""

    circuits: tuple[str, ...]
    level: str
    jaccards: tuple[float, ...]
    jaccard: Summary
    node_frequency: dict[str, float]
    edge_frequency: dict[str, float]
    verdict: str  # stable | unstable | too-few-resamples
    verdict_text: str
    node_jaccard: Summary
    bar: float = MELOUX_BAR
    min_resamples: int = MELOUX_MIN_RESAMPLES
    performance: Optional[Summary] = None
    performance_measure: Optional[str] = None

    @property
    def n(self) -> int:
        return len(self.circuits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "circuits": list(self.circuits), "n": self.n, "level": self.level,
            "jaccard": self.jaccard.to_dict(), "node_jaccard": self.node_jaccard.to_dict(),
            "jaccards": list(self.jaccards), "node_frequency": self.node_frequency,
            "edge_frequency": self.edge_frequency, "verdict": self.verdict, "verdict_text": self.verdict_text,
            "bar": {"jaccard": self.bar, "resamples": self.min_resamples, "source": "Méloux et al. 2025, arXiv 2510.00845"},
            "performance": None if self.performance is None else {**self.performance.to_dict(),
                                                                   "measure": self.performance_measure},
        }


def verdict(mean: float, n: int, bar: float = MELOUX_BAR, min_resamples: int = MELOUX_MIN_RESAMPLES) -> tuple[str, str]:
    """(code, sentence): the mean pairwise Jaccard of ``n`` resamples against Méloux et al.'s bar."""
    rule = f"mean pairwise Jaccard >= {bar:g} over >= {min_resamples} resamples (Méloux et al. 2025)"
    if math.isnan(mean):
        return "too-few-resamples", f"no pair of resamples to compare; the bar is {rule}"
    if mean < bar:
        few = f" (and {n} resamples are fewer than the {min_resamples} the bar asks)" if n < min_resamples else ""
        return "unstable", f"unstable: mean Jaccard {mean:.3f} < {bar:g}{few}; the bar is {rule}"
    if n < min_resamples:
        return "too-few-resamples", (f"not yet stable: mean Jaccard {mean:.3f} >= {bar:g}, but over {n} resamples, "
                                     f"fewer than {min_resamples}; the bar is {rule}")
    return "stable", f"stable: mean Jaccard {mean:.3f} >= {bar:g} over {n} resamples ({rule})"


def stability(circuits: Sequence[CircuitLike], level: Optional[str] = None, *, bar: float = MELOUX_BAR,
              min_resamples: int = MELOUX_MIN_RESAMPLES) -> Stability:
    """The stability report of the circuits of one group. ``level`` defaults to edges when every circuit knows
    its edges (Méloux et al. compare edge sets), else nodes; node frequencies and the node-level Jaccard are
    reported at either level. The verdict is on ``level``."""
    if len(circuits) < 1:
        raise InvalidCircuit("a stability report needs at least one circuit")
    level = level or ("edges" if all(c.edges_known for c in circuits) else "nodes")
    sets = [circuit_keys(c, level) for c in circuits]
    node_sets = sets if level == "nodes" else [circuit_keys(c, "nodes") for c in circuits]
    jaccards = pairwise_jaccards(sets)
    summary = summarize(jaccards)
    code, text = verdict(summary.mean, len(circuits), bar, min_resamples)
    measure, perf = _performance(circuits)
    return Stability(
        circuits=tuple(c.name for c in circuits), level=level, jaccards=jaccards, jaccard=summary,
        node_frequency=frequencies(node_sets, "nodes"),
        edge_frequency=frequencies(sets, "edges") if level == "edges" else {},
        verdict=code, verdict_text=text, node_jaccard=summarize(pairwise_jaccards(node_sets)), bar=bar,
        min_resamples=min_resamples, performance=perf, performance_measure=measure,
    )


def _performance(circuits: Sequence[CircuitLike]) -> tuple[Optional[str], Optional[Summary]]:
    """The share of the model each circuit keeps, as its run measured it (faithfulness, else kept_fraction)."""
    for measure in ("faithfulness", "kept_fraction"):
        values = [c.performance.get(measure) for c in circuits]
        if values and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            return measure, summarize([float(v) for v in values if v is not None])
    return None, None


# ---------------------------------------------------------------------------------------------------------
# Significance of an overlap


@dataclass(frozen=True)
class NullTest:
    """Circuits ``a`` and ``b`` share ``observed`` of ``union`` keys; random circuits of the same sizes share
    ``expected`` on average (95 % of draws in [``low``, ``high``]; their Jaccard index ``expected_jaccard``, in
    [``jaccard_low``, ``jaccard_high``]). ``p_value`` = P(null shared >= observed), with
    the +1 correction; ``adjusted_p`` after the multiple-comparison correction named by ``correction``."""

    a: str
    b: str
    level: str
    observed: int
    union: int
    jaccard: float
    expected: float
    low: float
    high: float
    expected_jaccard: float
    jaccard_low: float
    jaccard_high: float
    p_value: float
    samples: int
    seed: int
    null: str
    exact_p: Optional[float] = None
    adjusted_p: Optional[float] = None
    correction: str = "none"
    null_shared: tuple[int, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("a", "b", "level", "observed", "union", "jaccard", "expected", "low",
                                             "high", "expected_jaccard", "jaccard_low", "jaccard_high", "p_value", "exact_p", "adjusted_p",
                                             "correction", "samples", "seed", "null")}
        out["correction_name"] = CORRECTION_NAMES[self.correction]
        return out


def upper_p_value(observed: float, null: Sequence[float]) -> float:
    """One-sided Monte-Carlo p-value with the +1 correction: (#{null >= observed} + 1) / (n + 1)."""
    return (sum(1 for x in null if x >= observed) + 1) / (len(null) + 1)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down: the i-th smallest times (m - i), running maximum, capped at 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (step-up: the i-th smallest times m / i, running minimum from the top,
    capped at 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, p_values[i] * m / (rank + 1))
        adjusted[i] = min(1.0, running)
    return adjusted


def adjust(p_values: Sequence[float], correction: str) -> list[float]:
    if correction == "holm":
        return holm(p_values)
    if correction == "bh":
        return benjamini_hochberg(p_values)
    if correction == "none":
        return list(p_values)
    raise InvalidCircuit(f"unknown correction {correction!r}: use {', '.join(CORRECTIONS)}")


def hypergeometric_pmf(population: int, a: int, b: int) -> list[float]:
    """P(|A ∩ B| = x) for x = 0..min(a, b), A and B uniform subsets of sizes a and b of ``population`` items."""
    total = math.comb(population, b)
    return [math.comb(a, x) * math.comb(population - a, b - x) / total for x in range(min(a, b) + 1)]


def exact_node_p(observed: int, pools: Sequence[tuple[int, int, int]]) -> float:
    """P(shared >= observed) when each pool (population, a, b) contributes an independent hypergeometric count."""
    dist = [1.0]
    for population, a, b in pools:
        pmf = hypergeometric_pmf(population, a, b)
        conv = [0.0] * (len(dist) + len(pmf) - 1)
        for i, p in enumerate(dist):
            for j, q in enumerate(pmf):
                conv[i + j] += p * q
        dist = conv
    return min(1.0, sum(dist[observed:]))


def overlap_null(a: CircuitLike, b: CircuitLike, shape: ModelShape, *, level: str = "nodes", samples: int = 1000,
                 seed: int = 0, kinds: Collection[str] = COMPONENT_KINDS) -> NullTest:
    """Is the overlap of ``a`` and ``b`` larger than that of random circuits of their sizes? (module docstring)"""
    if samples < 1:
        raise InvalidCircuit("--samples: the null needs at least one random draw")
    keys_a, keys_b = circuit_keys(a, level, kinds), circuit_keys(b, level, kinds)
    exact: Optional[Callable[[int], float]] = None
    if level == "nodes":
        null, description, exact = _node_null(keys_a, keys_b, shape, samples, seed)
    else:
        null, description = _edge_null(keys_a, keys_b, shape, samples, seed)
    observed = len(keys_a & keys_b)
    size = len(keys_a) + len(keys_b)
    stats = summarize(null)
    jaccards = summarize([x / (size - x) if size - x else 1.0 for x in null])
    return NullTest(
        a=a.name, b=b.name, level=level, observed=observed, union=len(keys_a | keys_b),
        jaccard=jaccard(keys_a, keys_b), expected=stats.mean, low=stats.low, high=stats.high,
        expected_jaccard=jaccards.mean, jaccard_low=jaccards.low, jaccard_high=jaccards.high,
        p_value=upper_p_value(observed, null), samples=samples,
        seed=seed, null=description, exact_p=None if exact is None else exact(observed), null_shared=tuple(null),
    )


def overlap_nulls(circuits: Sequence[CircuitLike], shape: ModelShape, *, level: str = "nodes",
                  samples: int = 1000, seed: int = 0, kinds: Collection[str] = COMPONENT_KINDS,
                  correction: str = "holm") -> list[NullTest]:
    """``overlap_null`` for every pair (i < j), the p-values corrected together by ``correction``."""
    if correction not in CORRECTIONS:
        raise InvalidCircuit(f"unknown correction {correction!r}: use {', '.join(CORRECTIONS)}")
    tests = [overlap_null(circuits[i], circuits[j], shape, level=level, samples=samples, seed=seed, kinds=kinds)
             for i in range(len(circuits)) for j in range(i + 1, len(circuits))]
    adjusted = adjust([t.p_value for t in tests], correction)
    return [_with(t, adjusted_p=p, correction=correction) for t, p in zip(tests, adjusted)]


def _with(test: NullTest, **changes: Any) -> NullTest:
    return dataclasses.replace(test, **changes)


def _node_null(keys_a: frozenset[str], keys_b: frozenset[str], shape: ModelShape, samples: int,
               seed: int) -> tuple[list[int], str, Callable[[int], float]]:
    graph = ComponentGraph(shape, Granularity.NODES)
    heads = {n.key for n in graph.sources if n.kind is NodeKind.HEAD}
    mlps = {n.key for n in graph.sources if n.kind is NodeKind.MLP}
    _check_inside(keys_a | keys_b, heads | mlps, shape)
    size_a = (len(keys_a & heads), len(keys_a & mlps))
    size_b = (len(keys_b & heads), len(keys_b & mlps))
    draws_a = random_circuits(graph, size_a, samples, seed, "nodes")
    draws_b = random_circuits(graph, size_b, samples, seed + 1, "nodes")
    null = [len(x & y) - 2 for x, y in zip(draws_a, draws_b)]  # both hold embed and logits
    description = (f"random node circuits of the same numbers of heads and MLPs ({size_a[0]} heads and {size_a[1]} "
                   f"MLPs, {size_b[0]} heads and {size_b[1]} MLPs), drawn uniformly")
    pools = [(len(heads), size_a[0], size_b[0]), (len(mlps), size_a[1], size_b[1])]
    return null, description, lambda observed: exact_node_p(observed, pools)


def _check_inside(keys: Collection[str], known: Collection[str], shape: ModelShape) -> None:
    outside = sorted(k for k in keys if k not in known)
    if outside:
        raise InvalidCircuit(f"{outside[0]} is not a component of a model of {shape.n_layers} layers and "
                             f"{shape.n_heads} heads: these circuits are of another model")


class _CachedGraph(ComponentGraph):
    """A component graph whose edge list is built once (``random_circuits`` reads it for every draw)."""

    def __init__(self, shape: ModelShape, granularity: Granularity):
        super().__init__(shape, granularity)
        self._edges = super().edges

    @property
    def edges(self) -> tuple[Edge, ...]:
        return self._edges


def _edge_null(keys_a: frozenset[str], keys_b: frozenset[str], shape: ModelShape, samples: int,
               seed: int) -> tuple[list[int], str]:
    edges_a = [parse_edge(k, shape.n_layers) for k in keys_a]
    edges_b = [parse_edge(k, shape.n_layers) for k in keys_b]
    into_heads = [e for e in (*edges_a, *edges_b) if e.dst.kind is NodeKind.HEAD]
    granularity = Granularity.HEADS if into_heads and all(e.input is None for e in into_heads) else Granularity.QKV
    graph = _CachedGraph(shape, granularity)
    known = set(graph.edges)
    _check_inside([e.key for e in (*edges_a, *edges_b) if e not in known], (), shape)
    draws_a = random_circuits(graph, _edge_size(edges_a, graph), samples, seed, "edges")
    draws_b = random_circuits(graph, _edge_size(edges_b, graph), samples, seed + 1, "edges")
    null = [len(x & y) for x, y in zip(draws_a, draws_b)]
    description = (f"random connected circuits ({granularity.value} edges) with the same numbers of edges and of "
                   f"heads and MLPs they touch ({len(edges_a)} and {len(edges_b)} edges)")
    return null, description


def _edge_size(edges: Sequence[Edge], graph: ComponentGraph) -> Any:
    """(edges, heads and MLPs touched) when that can be drawn, else the edge count (as ``compare_to_random``)."""
    if not edges:
        raise InvalidCircuit("an empty edge circuit has no random counterpart: compare at node level")
    touched = {x for e in edges for x in (e.src, e.dst) if x.kind in (NodeKind.HEAD, NodeKind.MLP)}
    return (len(edges), len(touched)) if len(edges) > len(touched) else len(edges)


# ---------------------------------------------------------------------------------------------------------
# Transfer between tasks


@dataclass(frozen=True)
class TransferMatrix:
    """Each circuit evaluated on each task (Lan et al. 2023's "the digits task with only the number-words circuit"):
    ``cells[circuit][task]`` holds the figures of that evaluation (value, kept_fraction, faithfulness, kl, accuracy,
    value_sem, reused). ``model[task]`` and ``empty[task]`` are the full model's and the empty circuit's metric on
    the task, the rows every other row is read against (kept fraction 1 and m(empty)/m(model), faithfulness 1 and
    0 by definition). ``home[circuit]`` is the task the circuit was found for (None when it names none)."""

    circuits: tuple[str, ...]
    tasks: tuple[str, ...]
    cells: dict[str, dict[str, dict[str, Any]]]
    model: dict[str, float]
    empty: dict[str, float]
    home: dict[str, Optional[str]]
    metrics: dict[str, str]

    def rows(self, measure: str) -> list[tuple[str, list[Optional[float]]]]:
        """(row label, one value per task) for ``measure`` (kept_fraction or faithfulness), the full model and
        the empty circuit first."""
        full = [1.0 for _ in self.tasks]
        if measure == "kept_fraction":
            empty = [self.empty[t] / self.model[t] if self.model[t] else math.nan for t in self.tasks]
        else:
            empty = [0.0 for _ in self.tasks]
        out: list[tuple[str, list[Optional[float]]]] = [("full model", list(full)), ("empty circuit", list(empty))]
        for c in self.circuits:
            out.append((c, [self.cells[c][t].get(measure) for t in self.tasks]))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"circuits": list(self.circuits), "tasks": list(self.tasks), "home": self.home, "metrics": self.metrics,
                "model": self.model, "empty": self.empty, "cells": self.cells,
                "kept_fraction": {label: values for label, values in self.rows("kept_fraction")},
                "faithfulness": {label: values for label, values in self.rows("faithfulness")}}
