"""ACDC: Automated Circuit DisCovery by edge pruning.

Conmy, Mavor-Parker, Lynch, Heimersheim, Garriga-Alonso (2023), "Towards Automated Circuit Discovery for
Mechanistic Interpretability", arXiv 2304.14997. The default, ``order="reference"``, does what the reference
implementation (ArthurConmy/Automatic-Circuit-Discovery at bc99ace, ``acdc/TLACDCExperiment.py``, run as its
``main.py`` runs it) does:

- The edge set: the 32,491 residual edges of GPT-2 small (``discovery.graph``) plus, for every head, the three
  edges from its q, k and v input into the head (``hook_q_input -> hook_q``: 432 for GPT-2 small, 32,923 in all;
  ``TLACDCCorrespondence.py`` lines 171-196). Removing one means the head computes that query, key or value from
  the corrupted input: in the engine, every entry of that input's mask column 0.
- The visiting order (``reverse_topologically_sort_corr``, lines 220-242, and the construction order of
  ``TLACDCCorrespondence.py`` lines 113-199): the logits; then per layer from the top, the MLP's input; the
  heads' v, k and q in-component edges (each letter for heads H-1 .. 0 before the next letter); then the heads'
  v inputs, k inputs and q inputs, heads H-1 .. 0. A receiver's parents are tried latest first: the MLP below,
  then the heads of that layer from H-1 down, and so on down to the embedding (insertion order with ``main.py``'s
  ``names_mode``/``indices_mode`` "normal", lines 161-162); the embedding-to-logits edge is tried and may go.
- Skipping (``current_node_connected``, lines 719-760; ``increment_current_node``, 775-783): a receiver whose
  output no longer reaches anything (a head none of whose outgoing edges is left, an MLP likewise, a q/k/v input
  whose in-component edge went) is not visited; its incoming edges are removed untested (they change nothing) and
  keep no score.
- The rule (``step``, lines 579-631): an edge goes when ``loss(circuit without it) - loss(circuit) < tau``
  (strict; an edge at exactly tau stays), the loss being the metric's (KL by default), measured against the
  current circuit, which is updated after each removal. No ``abs_value_threshold`` (its default).

``order="head-major"`` is this project's earlier variant, kept as a named option: destinations from the logits
down with each head's v, k, q together (head H-1 first), residual edges only, no skipping.

Sign convention: an edge's stored score is its loss rise ``loss(without it) - loss(current)`` at its turn (higher
= more important; ``score_sign="loss"``); untested edges have none. A circuit at another tau can be cut from the
stored scores: an approximation, since the true ACDC decisions at another tau see another current circuit.

Exact batching. Each decision depends on the ones before it, but most edges go. Consecutive tests of one phase
(receivers whose skipping the phase cannot change, all starting at one layer) are evaluated as ``C`` stacked
copies: copy ``j`` is the current circuit without test ``j`` and without the earlier tests of the batch that are
guessed to go. Walking the copies in order reproduces the one-at-a-time decisions up to the first wrong guess;
the copies after it are redone in the next batch. The guesses: "goes", unless a wasted copy of an earlier batch
saw the test raise the loss by tau or more (its circuit differed from the true one by one decision), or most recent
tests were kept. How many tests a batch stacks is chosen from a fixed cost model (``_BatchSizer``): a batch costs
about ``F + c C`` and decides tests up to the first wrong guess. Guesses and sizes change how fast, not
what is decided (up to float rounding: the same loss computed in another batch can differ in its last bits, so a
rise within about 1e-6 of tau, in float32, may fall on either side; ``tests/methods/test_engine_exactness.py``
checks the decisions against the plain definition where every rise is clear of that).

What a copy recomputes. The engine reads the current circuit's source outputs (``PatchSetup.trial``'s base: the
clean run at first, then the copy of the last test removed, adopted after each batch) for every source whose inputs
a copy leaves as they are, computes once what every copy changes alike, per copy only what differs, and only at the
positions a reader needs (``discovery.masked``). Layers below the phase's are never recomputed: every edge into them
is still as in the clean run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from discovery.errors import SettingsError
from discovery.graph import QKV, Granularity, NodeKind
from discovery.masked import MaskedRun
from discovery.methods.base import MethodOutput, Progress, edge_matrix, edge_scores, no_progress
from discovery.patching import PatchSetup
from discovery.results import ScoredNode

ORDERS = ("reference", "head-major")


@dataclass(frozen=True)
class _Test:
    """One decision: the residual edge ``source -> dest`` or, with ``source`` None, a head's in-component edge
    from input column ``dest`` (every entry of the column)."""

    source: int | None
    dest: int


@dataclass(frozen=True)
class _Phase:
    start_layer: int
    receivers: tuple[int, ...]  # destination columns, in visiting order
    in_component: bool  # receivers' in-component edges, rather than their residual edges


def acdc(
    setup: PatchSetup,
    *,
    threshold: float,
    order: str = "reference",
    max_batch: int = 64,
    progress: Progress = no_progress,
) -> MethodOutput:
    """Prune edges with ACDC at ``threshold``; ``max_batch=1`` is the one-edge-at-a-time algorithm."""
    if not (threshold >= 0 and math.isfinite(threshold)):
        raise SettingsError(f"ACDC's threshold (tau) must be a finite number >= 0, got {threshold}")
    if order not in ORDERS:
        raise SettingsError(f"ACDC's order must be one of {', '.join(ORDERS)}, got {order!r}")
    if max_batch < 1:
        raise SettingsError("ACDC's batch must be at least 1")
    run = _Run(setup, threshold, max_batch, progress, skip=order == "reference")
    for phase in (_reference_phases(setup) if order == "reference" else _head_major_phases(setup)):
        run.phase(phase)
    graph = setup.graph
    kept = (run.mask > 0) & run.is_edge
    n_residual = graph.n_edges()
    n_heads = graph.shape.n_layers * graph.shape.n_heads
    tested_residual = int((~torch.isnan(run.scores)).sum())
    counts = {"residual_edges": n_residual, "qkv_to_head_edges": 3 * n_heads if order == "reference" else 0,
              "tested_residual": tested_residual, "tested_qkv_to_head": len(run.input_scores),
              "skipped_untested": run.skipped}
    return MethodOutput(
        granularity=Granularity.QKV,
        edges=edge_scores(graph, run.scores, kept),
        nodes=_input_edge_nodes(setup, run),
        threshold=threshold,
        params={"threshold": threshold, "order": order, "max_batch": max_batch},
        extras={"final_loss": run.current, "edge_counts": counts, "batching": run.stats,
                "qkv_to_head_removed": sorted(_input_key(setup, d) for d in run.cut)},
    )


class _Run:
    """The state of one ACDC run: the current circuit's mask, loss and source outputs, and every score measured."""

    def __init__(self, setup: PatchSetup, threshold: float, max_batch: int, progress: Progress, skip: bool):
        self.setup, self.threshold, self.max_batch, self.progress, self.skip = setup, threshold, max_batch, progress, skip
        self.mask = setup.full_mask()[0]  # [S, D], 1 = kept
        self.is_edge = edge_matrix(setup.graph, setup.device)  # [S, D]: the entries that are edges
        self.scores = torch.full(self.mask.shape, float("nan"), device=setup.device)
        self.input_scores: dict[int, float] = {}
        self.cut: set[int] = set()  # input columns whose in-component edge went
        self.current = float(setup.losses(self.mask)[0])
        # The current circuit's source outputs (minus the patch values) and its mask; after skipped receivers
        # the mask runs ahead of it until the next batch adopts a copy: the engine recomputes what differs.
        self.base: tuple[Tensor, Tensor] = setup.model_base
        self.guess: dict[_Test, bool] = {}  # True: predicted kept (see _predict)
        self.by_source: dict[Optional[int], list[int]] = {}  # source -> [tests kept, tests removed]
        self.sizer = _BatchSizer()
        graph = setup.graph
        self.total = graph.n_edges() + (3 * graph.shape.n_layers * graph.shape.n_heads if skip else 0)
        self.done, self.skipped = 0, 0
        self.stats = {"copies": 0, "wasted_copies": 0, "batches": 0, "mispredicted": 0}

    def phase(self, phase: _Phase) -> None:
        tests = list(self._tests(phase))
        limit = min(self.max_batch, self.setup.copies_per_forward(phase.start_layer))
        i = 0
        while i < len(tests):
            chunk = tests[i : i + self.sizer.size(limit)]
            guesses = [self.guess.pop(t) if t in self.guess else self._prior(t) for t in chunk]
            losses, trial = self._trial(chunk, guesses, phase.start_layer)
            outcome = self._decide(chunk, guesses, losses)
            if outcome.last_removed is not None:  # that copy is the current circuit now: the next batch's base
                self.base = trial.adopt(outcome.last_removed)
            del trial
            self.sizer.observe(outcome)
            self.stats["copies"] += len(chunk)
            self.stats["wasted_copies"] += len(chunk) - outcome.decided
            self.stats["batches"] += 1
            self.stats["mispredicted"] += outcome.wrong
            i += outcome.decided
            self.done += outcome.decided
            self.progress(self.done, self.total)

    def _decide(self, chunk: list[_Test], guesses: list[bool], losses: list[float]) -> "_Outcome":
        """Walks the copies in order, making each test's decision against the circuit before it, up to the first
        whose guess was wrong (the copies after it assumed the other outcome)."""
        last_removed, kept = None, 0
        for j, test in enumerate(chunk):
            before = self.current
            rise = losses[j] - before
            self._score(test, rise)
            removed = rise < self.threshold
            if removed:
                self._apply(self.mask, test)
                if test.source is None:
                    self.cut.add(test.dest)
                self.current = losses[j]
                last_removed = j
            else:
                kept += 1
            history = self.by_source.setdefault(test.source, [0, 0])
            history[0 if not removed else 1] += 1
            if removed == guesses[j]:
                self._predict(chunk[j + 1 :], guesses[j + 1 :], losses[j + 1 :],
                              before if guesses[j] else losses[j])
                return _Outcome(j + 1, kept, True, last_removed)
        return _Outcome(len(chunk), kept, False, last_removed)

    def _prior(self, test: _Test) -> bool:
        """The guess for a test no wasted copy has said anything about: kept when most earlier tests of edges from
        the same source were kept (a source that matters tends to matter at its other readers), else when most
        recent tests were kept."""
        history = self.by_source.get(test.source)
        if test.source is not None and history and history[0] != history[1]:
            return history[0] > history[1]
        return self.sizer.kept_rate() > 0.5

    def _predict(self, tests: list[_Test], guesses: list[bool], losses: list[float], base: float) -> None:
        """Guesses for tests whose copies were wasted: their loss rises in a circuit that differs from the true one
        by one decision are close to the true rises, so a test that rose by tau or more there is guessed kept.
        Guesses only choose which copies the next batch stacks; every decision is made on exact copies."""
        for test, guess, loss in zip(tests, guesses, losses):
            self.guess[test] = loss - base >= self.threshold
            if not guess:
                base = loss

    def _tests(self, phase: _Phase) -> Iterator[_Test]:
        for d in phase.receivers:
            if self.skip and not self._connected(d):
                untested = 1 if phase.in_component else self.setup.graph.n_upstream(self.setup.graph.destinations[d][0])
                self.mask[:, d] = 0  # its edges go untested: nothing reads what they carry
                self.skipped += untested
                self.done += untested
                continue
            if phase.in_component:
                yield _Test(None, d)
            else:
                dst, _ = self.setup.graph.destinations[d]
                yield from (_Test(s, d) for s in reversed(range(self.setup.graph.n_upstream(dst))))

    def _connected(self, d: int) -> bool:
        """Whether destination ``d``'s input still matters: its component's output reaches something, and for a
        head input, its in-component edge is still there."""
        dst, _ = self.setup.graph.destinations[d]
        if dst.kind is NodeKind.LOGITS:
            return True
        if d in self.cut:
            return False
        s = self.setup.graph.source_index[dst]
        return bool((self.mask[s].gt(0) & self.is_edge[s]).any())

    def _trial(self, chunk: list[_Test], guesses: list[bool], start_layer: int) -> tuple[list[float], MaskedRun]:
        """Loss of copy j = the current circuit without test j and without the earlier tests guessed to go."""
        masks = self.mask.unsqueeze(0).repeat(len(chunk), 1, 1)
        for j, (test, kept) in enumerate(zip(chunk, guesses)):
            self._apply(masks[j], test)
            if not kept:
                self._apply(masks[j + 1 :], test)
        losses, trial = self.setup.trial(masks, start_layer, self.base)
        return losses.tolist(), trial

    def _apply(self, mask: Tensor, test: _Test) -> None:
        if test.source is None:
            mask[..., :, test.dest] = 0
        else:
            mask[..., test.source, test.dest] = 0

    def _score(self, test: _Test, rise: float) -> None:
        if test.source is None:
            self.input_scores[test.dest] = rise
        else:
            self.scores[test.source, test.dest] = rise


@dataclass(frozen=True)
class _Outcome:
    """What one batch decided: how many tests, how many of them kept, whether a guess was wrong, and the copy
    of the last test removed (the current circuit after the batch)."""

    decided: int
    kept: int
    wrong: bool
    last_removed: Optional[int]


class _BatchSizer:
    """How many tests to stack in one forward. A batch of ``C`` copies costs about ``F + c C`` and decides tests up
    to the first wrong guess, so with a share ``q`` of wrong guesses it decides ``(1 - (1-q)^C) / q`` on average;
    the size minimising cost per decided test is taken (at most ``limit``). ``F / c`` is a fixed ``RATIO``, not
    fitted on wall-clock timings: the batch sizes decide which losses are computed together, and so their last
    float bits, and a run must give the same circuit every time it is repeated with the same seed (timings would
    make it depend on the machine's load)."""

    RATIO = 8.0  # shared work of a forward / work per copy: about what GPT-2-shaped runs measured on CPU

    DECAY = 0.8  # weight of the batches before the last in the counts of wrong guesses and kept tests

    def __init__(self) -> None:
        self.tests, self.wrong, self.kept = 4.0, 1.0, 1.0  # decayed counts: priors of one in four

    def size(self, limit: int) -> int:
        q = min(max(self.wrong / self.tests, 1e-3), 1.0)
        best, best_cost = 1, math.inf
        for C in range(1, limit + 1):
            cost = (self.RATIO + C) * q / (1 - (1 - q) ** C)
            if cost < best_cost:
                best, best_cost = C, cost
        return best

    def observe(self, outcome: _Outcome) -> None:
        self.tests = self.DECAY * self.tests + outcome.decided
        self.wrong = self.DECAY * self.wrong + outcome.wrong
        self.kept = self.DECAY * self.kept + outcome.kept

    def kept_rate(self) -> float:
        """The recent share of tests kept."""
        return self.kept / self.tests


def _reference_phases(setup: PatchSetup) -> Iterator[_Phase]:
    """TLACDCExperiment's order (see the module docstring)."""
    e = setup.engine
    yield _Phase(e.L, (e.logits_dest,), False)
    for layer in reversed(range(e.L)):
        yield _Phase(layer, (e.mlp_dest(layer),), False)
        columns = {x: tuple(e.head_dests(layer).start + 3 * h + QKV.index(x) for h in reversed(range(e.H)))
                   for x in QKV}
        yield _Phase(layer, columns["v"] + columns["k"] + columns["q"], True)
        for x in ("v", "k", "q"):
            yield _Phase(layer, columns[x], False)


def _head_major_phases(setup: PatchSetup) -> Iterator[_Phase]:
    """This project's earlier order: one destination at a time, from the logits down, each head's v, k, q."""
    e = setup.engine
    for d in reversed(range(e.n_dests)):
        dst, _ = setup.graph.destinations[d]
        yield _Phase(e.L if dst.kind is NodeKind.LOGITS else dst.layer, (d,), False)


def _input_key(setup: PatchSetup, d: int) -> str:
    dst, inp = setup.graph.destinations[d]
    return f"{dst.key}.{inp}->{dst.key}"


def _input_edge_nodes(setup: PatchSetup, run: _Run) -> tuple[ScoredNode, ...]:
    """Heads with their tested in-component edges, as node attributes ``{"qkv_to_head": {"q": {score, kept}}}``
    (the catalog's edge vocabulary holds residual edges only)."""
    per_head: dict = {}
    for d, score in run.input_scores.items():
        dst, inp = setup.graph.destinations[d]
        per_head.setdefault(dst, {})[inp] = {"score": score, "kept": d not in run.cut}
    return tuple(ScoredNode(node, None, False, {"qkv_to_head": inputs}) for node, inputs in sorted(per_head.items()))
