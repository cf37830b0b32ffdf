"""Iterative node pruning by mean ablation: remove heads (and MLPs) one at a time while the circuit keeps enough.

Lan, Torr & Barez (2023), "Towards Interpretable Sequence Continuation: Analyzing Shared Circuits in Large
Language Models", arXiv 2311.04131 (code: apartresearch/seqcont_circuits ``loop_node_ablation_fns.py``).

The procedure. Start from every head and every MLP (``include_mlps``, the default: the authors' loop prunes MLPs
too, ``loop_node_ablation_fns.py`` lines 73-109 trying each layer's MLP and then its heads, and their digits
circuit lacks MLP 5; ``include_mlps=False``, this project's earlier variant, keeps every MLP). ``embed`` is always
kept. Visit the candidates in an order; remove a candidate for good when the circuit without it still keeps at
least ``threshold`` of the model's performance. Sweep again, in the order's second direction,
until a sweep removes nothing: the result is a fixed point where every single remaining removal would fall
below the threshold. Performance is Lan et al.'s "% of the model": ``kept_fraction`` = m(C)/m(model)
with the setup's metric (logit difference normally); with ``kl``, whose model value is 0, MIB's faithfulness
(m(C) - m(empty)) / (m(model) - m(empty)) = 1 - KL(C)/KL(empty) is used instead. A node outside the circuit is
ablated at its output, everywhere downstream (``PatchSetup.mask_from_nodes``); ``mean`` ablation is the paper's.

Orders (one sweep each, alternating until the fixed point):
- ``backward``: layers L-1 .. 0; within a layer the MLP, then heads 0 .. H-1; then ``forward``.
- ``forward``: layers 0 .. L-1; within a layer heads 0 .. H-1, then the MLP; then ``backward``.
  These two are exactly the authors' ``find_circuit_backw`` / ``find_circuit_forw``.
- ``random``: a seeded permutation, then the same permutation reversed.
Lan & Barez accept a removal when performance stays strictly above the threshold; this accepts it at
``>= threshold`` (the two differ only on exact ties).

Node score (sign: higher = more important). Every head and MLP gets the performance its presence adds to the
FINAL circuit C: ``perf(C + n) - perf(C - n)``, which is ``perf(C) - perf(C - n)`` for a kept node (its drop when
removed alone) and ``perf(C + n) - perf(C)`` for a removed one (what adding it back would give). Scores are in
the units of the decision (a share of the model's performance). The drop of each node removed alone from the
full model is stored as the attribute ``drop_from_model``.

Exact batching. The decision on a candidate depends on every decision before it. A batch of ``C`` candidates
is evaluated as ``C`` stacked copies, copy ``i`` being the current circuit with candidate ``i`` removed and with
every earlier candidate of the batch removed that is *predicted* to be removed. Walking the copies in order
reproduces the one-at-a-time decisions up to and including the first wrong prediction; the copies after it
(evaluated against a wrong circuit) are redone in the next batch, and their stale values become the next
predictions. The first prediction for a node is "removed" (pruning removes most heads); later ones are the
node's last evaluated outcome, so the final no-change sweep costs one batch per ``C`` candidates. The batch
size adapts (doubling after a batch predicted right, else shrinking to the copies that were used), so that
wasted copies stay few where outcomes alternate: once the prompts fill the device a copy costs not much less
batched than alone (H100, GPT-2-small shape, 32 prompts of 16 tokens: about 7 ms against 12 ms; a whole run at
0.8 took 6.2 s with ``max_batch=32`` and 9.4 s one at a time, the same circuit).
``max_batch=1`` is the one-at-a-time loop (decisions agree unless a value sits within float rounding of the
threshold, where a batched and a single forward may round differently). Copies share the clean run's activations below the lowest layer any
copy ablates (the engine's ``start_layer``), which makes the first backward sweep cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np
import torch
from torch import Tensor

from discovery.errors import SettingsError
from discovery.graph import Granularity, Node, NodeKind, head, mlp
from discovery.methods.base import MethodOutput, Progress, no_progress
from discovery.names import KEPT_FRACTION, SHARES
from discovery.patching import PatchSetup
from discovery.results import ScoredNode

Order = Literal["backward", "forward", "random"]
ORDERS = ("backward", "forward", "random")


def node_pruning(
    setup: PatchSetup,
    *,
    threshold: float = 0.8,
    thresholds: Optional[Sequence[float]] = None,
    order: Order = "backward",
    orders: int = 0,
    include_mlps: bool = True,
    nested: bool = False,
    measure: Optional[str] = None,
    max_batch: int = 32,
    seed: int = 0,
    progress: Progress = no_progress,
) -> MethodOutput:
    """Prune nodes at ``threshold`` (the kept circuit); optionally at other levels and over random orders.

    thresholds: further levels (e.g. ``[0.7, 0.8, 0.9]``), each pruned from the full model (or, with ``nested``,
        from the circuit of the next higher level, so a lower level keeps a subset). The per-level table goes
        to ``extras["levels"]`` and to each node's ``kept_at`` attribute; the kept flag is ``threshold``'s circuit.
    orders: also prune at ``threshold`` in this many seeded random orders (seeds ``[seed, 1..orders]``); each
        candidate's ``survival`` attribute is the fraction of those orders whose circuit keeps it.
    measure: ``kept_fraction`` or ``faithfulness``; default kept_fraction, or faithfulness with the kl metric.
    """
    _check(threshold, thresholds, order, orders, max_batch)
    pruner = _Pruner(setup, include_mlps, _measure(setup, measure), max_batch, progress)
    levels = sorted({float(threshold), *(float(t) for t in thresholds or ())}, reverse=True)
    first, second = pruner.orders(order, seed, 0)
    runs: dict[float, _Run] = {}
    start = pruner.full_keep()
    for level in levels:
        runs[level] = pruner.prune(start if nested else pruner.full_keep(), level, first, second)
        start = runs[level].keep
    main = runs[float(threshold)]
    order_runs = pruner.random_orders(main.level, seed, orders)
    survival = _survival(pruner, order_runs)
    scores, drops = pruner.scores(main.keep)
    nodes = _scored_nodes(pruner, main, runs, scores, drops, survival)
    return MethodOutput(
        granularity=Granularity.NODES,
        nodes=nodes,
        threshold=float(threshold),
        params={"threshold": float(threshold), "thresholds": [float(t) for t in thresholds or ()], "order": order,
                "orders": orders, "include_mlps": include_mlps, "nested": nested, "measure": pruner.measure_name,
                "max_batch": max_batch, "seed": seed},
        extras=_extras(pruner, main, runs, order_runs),
    )


# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """One pruning run: its level, final keep vector ``[S]`` (bool over sources), sweeps, and decisions."""

    level: float
    keep: Tensor
    sweeps: int
    performance: float
    value: float
    decisions: int = 0
    removed: list[Node] = field(default_factory=list)
    batch: int = 1  # copies in the next batch (adapted; at most max_batch)


class _Pruner:
    """Evaluates keep vectors (one bool per source) as node masks and runs sweeps to a fixed point."""

    def __init__(self, setup: PatchSetup, include_mlps: bool, measure: str, max_batch: int, progress: Progress):
        self.setup, self.graph, self.engine = setup, setup.graph, setup.engine
        self.measure_name = measure
        self.max_batch, self.progress = max_batch, progress
        L, H = self.engine.L, self.engine.H
        self.candidates_all = [head(layer, h) for layer in range(L) for h in range(H)]
        if include_mlps:
            self.candidates_all += [mlp(layer) for layer in range(L)]
        self.n_sources = self.engine.n_sources
        self.done = 0
        self.total = 0  # grows by each sweep's candidates, as sweeps are only known one at a time
        self._perf: Callable[[Tensor], Tensor] = self._performance_fn()

    # -- performance -------------------------------------------------------------------------------------------
    def _performance_fn(self) -> Callable[[Tensor], Tensor]:
        model = self.setup.model_value
        if self.measure_name == "kept_fraction":
            if not model > 0:
                raise SettingsError(
                    f"the model's {self.setup.metric.name} on these prompts is {model:.4g}: a share of it "
                    "(kept_fraction) means nothing; use prompts the model gets right, or measure='faithfulness'"
                )
            return lambda v: v / model
        empty = self.setup.empty_value
        if model == empty:
            raise SettingsError("the model and the empty circuit score the same: faithfulness is undefined")
        return lambda v: (v - empty) / (model - empty)

    def evaluate(self, keeps: Tensor) -> tuple[Tensor, Tensor]:
        """Performance and metric value ``[C]`` of keep vectors ``[C, S]`` (True = node kept)."""
        masks = keeps.to(self.engine.w.dtype).unsqueeze(-1).expand(-1, -1, self.engine.n_dests).contiguous()
        values = self.setup.values(masks, start_layer=self._start_layer(keeps)).float()
        return self._perf(values), values

    def _start_layer(self, keeps: Tensor) -> int:
        """The lowest layer whose inputs any copy changes: below it every copy equals the clean run."""
        removed = (~keeps).any(0).nonzero().flatten().tolist()
        start = self.engine.L
        for s in removed:
            node = self.graph.sources[s]
            if node.kind is NodeKind.EMBED:
                return 0
            start = min(start, node.layer if node.kind is NodeKind.HEAD else node.layer + 1)
        return start

    # -- keep vectors ------------------------------------------------------------------------------------------
    def full_keep(self) -> Tensor:
        return torch.ones(self.n_sources, dtype=torch.bool, device=self.setup.device)

    def index(self, node: Node) -> int:
        return self.graph.source_index[node]

    def orders(self, order: str, seed: int, stream: int) -> tuple[list[Node], list[Node]]:
        """The two sweep sequences of an order (see the module docstring)."""
        L, H = self.engine.L, self.engine.H
        cands = set(self.candidates_all)
        backward = [n for layer in reversed(range(L)) for n in [mlp(layer), *(head(layer, h) for h in range(H))]]
        forward = [n for layer in range(L) for n in [*(head(layer, h) for h in range(H)), mlp(layer)]]
        backward = [n for n in backward if n in cands]
        forward = [n for n in forward if n in cands]
        if order == "backward":
            return backward, forward
        if order == "forward":
            return forward, backward
        perm = np.random.default_rng([seed, stream]).permutation(len(self.candidates_all))
        seq = [self.candidates_all[i] for i in perm]
        return seq, seq[::-1]

    # -- the procedure -----------------------------------------------------------------------------------------
    def prune(self, keep: Tensor, level: float, first: list[Node], second: list[Node]) -> _Run:
        keep = keep.clone()
        run = _Run(level=level, keep=keep, sweeps=0, performance=float("nan"), value=float("nan"),
                   batch=self.max_batch)
        guesses: dict[Node, bool] = {}
        while True:
            seq = first if run.sweeps % 2 == 0 else second
            removed = self.sweep(keep, [n for n in seq if keep[self.index(n)]], level, guesses, run)
            run.sweeps += 1
            if not removed:
                break
        perf, value = self.evaluate(keep.unsqueeze(0))
        run.performance, run.value = float(perf[0]), float(value[0])
        return run

    def sweep(self, keep: Tensor, pending: list[Node], level: float, guesses: dict[Node, bool], run: _Run) -> int:
        """One pass over ``pending`` (all in the circuit), exactly as one at a time; returns how many it removed."""
        removed_before = len(run.removed)
        self.total += len(pending)
        i = 0
        while i < len(pending):
            chunk = pending[i : i + run.batch]
            keeps = keep.unsqueeze(0).repeat(len(chunk), 1)
            assumed = keep.clone()
            for j, node in enumerate(chunk):
                keeps[j] = assumed
                keeps[j, self.index(node)] = False
                if guesses.get(node, True):
                    assumed[self.index(node)] = False
            perf = self.evaluate(keeps)[0].tolist()
            for j, node in enumerate(chunk):
                accept = perf[j] >= level
                run.decisions += 1
                if accept:
                    keep[self.index(node)] = False
                    run.removed.append(node)
                wrong = accept != guesses.get(node, True)
                guesses[node] = accept
                if wrong:
                    for later, p in zip(chunk[j + 1 :], perf[j + 1 :]):
                        guesses[later] = p >= level  # stale but usually right: the next batch's prediction
                    chunk = chunk[: j + 1]
                    break
            # Adapt the batch to how far predictions have been holding: copies past a wrong one are wasted.
            run.batch = min(self.max_batch, 2 * run.batch) if not wrong else max(1, len(chunk))
            i += len(chunk)
            self.done += len(chunk)
            self.progress(self.done, self.total)
        return len(run.removed) - removed_before

    def random_orders(self, level: float, seed: int, n_orders: int) -> list[_Run]:
        """Prune from the full model at ``level`` in ``n_orders`` seeded random orders (streams 1..n_orders)."""
        return [self.prune(self.full_keep(), level, *self.orders("random", seed, i + 1)) for i in range(n_orders)]

    def scores(self, keep: Tensor) -> tuple[dict[Node, float], dict[Node, float]]:
        """perf(C + n) - perf(C - n) for every head and MLP, and the drop of each removed alone from the model."""
        nodes = [n for n in self.graph.sources if n.kind is not NodeKind.EMBED]
        idx = torch.tensor([self.index(n) for n in nodes], device=keep.device)
        ar = torch.arange(len(nodes), device=keep.device)
        with_n = keep.unsqueeze(0).repeat(len(nodes), 1)
        with_n[ar, idx] = True
        without_n = keep.unsqueeze(0).repeat(len(nodes), 1)
        without_n[ar, idx] = False
        full_minus = self.full_keep().unsqueeze(0).repeat(len(nodes), 1)
        full_minus[ar, idx] = False
        perf = self.evaluate(torch.cat([with_n, without_n, full_minus]))[0].tolist()
        k = len(nodes)
        scores = {n: perf[j] - perf[k + j] for j, n in enumerate(nodes)}
        drops = {n: 1.0 - perf[2 * k + j] for j, n in enumerate(nodes)}  # the full model's performance is 1
        return scores, drops


# ---------------------------------------------------------------------------------------------------------


def _check(threshold: float, thresholds: Optional[Sequence[float]], order: str, orders: int, max_batch: int) -> None:
    for t in [threshold, *(thresholds or ())]:
        if not 0 < float(t) <= 1:
            raise SettingsError(f"a pruning level is a share of the model's performance, e.g. 0.8; got {t}")
    if order not in ORDERS:
        raise SettingsError(f"unknown order {order!r}: choose one of {', '.join(ORDERS)}")
    if orders < 0:
        raise SettingsError("orders (how many random orders to also run) must be >= 0")
    if max_batch < 1:
        raise SettingsError("max_batch must be at least 1")


def _measure(setup: PatchSetup, measure: Optional[str]) -> str:
    if measure is None:
        return setup.measure
    if measure not in SHARES:
        raise SettingsError(f"unknown measure {measure!r}: choose one of {', '.join(SHARES)}")
    if measure == KEPT_FRACTION and setup.metric.spec.best_at_model:
        raise SettingsError(f"the model scores {setup.metric.name}'s best value, so kept_fraction is undefined: "
                            "use measure='faithfulness'")
    return measure


def _level_key(level: float) -> str:
    return f"{level:g}"


def _survival(pruner: _Pruner, order_runs: list[_Run]) -> Optional[dict[Node, float]]:
    """Fraction of the random-order circuits that keep each candidate (None without random orders)."""
    if not order_runs:
        return None
    counts = torch.stack([run.keep for run in order_runs]).float().sum(0).cpu()
    return {n: float(counts[pruner.index(n)]) / len(order_runs) for n in pruner.candidates_all}


def _scored_nodes(
    pruner: _Pruner, main: _Run, runs: dict[float, _Run], scores: dict[Node, float], drops: dict[Node, float],
    survival: Optional[dict[Node, float]],
) -> tuple[ScoredNode, ...]:
    out = []
    for node in pruner.graph.sources:
        if node.kind is NodeKind.EMBED:
            out.append(ScoredNode(node, None, True, {"always_kept": True}))
            continue
        i = pruner.index(node)
        attrs: dict = {"drop_from_model": drops[node]}
        if node in pruner.candidates_all:
            attrs["kept_at"] = {_level_key(level): bool(run.keep[i]) for level, run in sorted(runs.items())}
            if survival is not None:
                attrs["survival"] = survival[node]
        else:
            attrs["always_kept"] = True
        out.append(ScoredNode(node, scores[node], bool(main.keep[i]), attrs))
    return tuple(out)


def _extras(pruner: _Pruner, main: _Run, runs: dict[float, _Run], order_runs: list[_Run]) -> dict:
    def summary(run: _Run) -> dict:
        kept = [n for n in pruner.candidates_all if run.keep[pruner.index(n)]]
        return {"nodes": [n.key for n in kept], "n_heads": sum(n.kind is NodeKind.HEAD for n in kept),
                "n_mlps": sum(n.kind is NodeKind.MLP for n in kept), "performance": run.performance,
                "value": run.value, "sweeps": run.sweeps, "decisions": run.decisions}

    extras: dict = {"measure": pruner.measure_name, "performance": main.performance, "value": main.value,
                    "model_value": pruner.setup.model_value, "sweeps": main.sweeps,
                    "removal_order": [n.key for n in main.removed],
                    "levels": {_level_key(level): summary(run) for level, run in sorted(runs.items())},
                    "forwards": pruner.setup.forwards}
    if order_runs:
        extras["orders"] = {"n": len(order_runs), "circuits": [summary(run)["nodes"] for run in order_runs],
                            "performance": [run.performance for run in order_runs]}
    return extras
