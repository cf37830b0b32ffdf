"""A patching experiment: one model, one dataset, one metric, one ablation, with the clean run cached.

Every method receives a ``PatchSetup`` and asks it to evaluate masks; it never touches the bridge. Ablations
(what a patched edge reads instead of the clean source output):

- ``patch``: the corrupted prompt's activation (interchange / activation patching; ACDC's default),
- ``mean``: the mean over the corrupted prompts, per position (Lan et al.'s mean ablation),
- ``zero``: zero,
- ``resample``: the activation on another, randomly drawn corrupted prompt (seeded).

``positions`` restricts an ablation to some sequence positions: a patched edge carries the patch value at those
positions and, everywhere else, the source's output in the same run, as if it were not patched there at all.
(Putting the *clean run's* value elsewhere would not do: after an earlier patch changed a source at the other
positions, "nothing changes there" would no longer hold.) The engine's masked run mixes per position
(``discovery.masked``); edge attribution, a first-order estimate, uses ``attribution_patch``: the patch value at
the chosen positions and the clean value elsewhere, whose difference from the clean run is zero there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor

from discovery.engine import PatchingEngine
from discovery.errors import SettingsError
from discovery.graph import ComponentGraph, Edge, Node, NodeKind
from discovery.masked import MaskedRun
from discovery.metrics import Metric, faithfulness, kept_fraction
from discovery.names import ABLATIONS, FAITHFULNESS, KEPT_FRACTION
from discovery.weights import GPT2Weights


@dataclass
class PatchSetup:
    """The cached state every method shares. Masks are ``[C, S, D]`` over ``engine.graph`` (q/k/v granularity)."""

    engine: PatchingEngine
    tokens: Tensor  # [B, P] clean prompts
    corrupted_tokens: Tensor  # [B, P]
    clean: Tensor  # [S, B, P, d] source outputs of the unpatched model on the clean prompts
    clean_logits: Tensor  # [B, V] last position
    patch: Tensor  # [S, B or 1, P, d]
    metric: Metric
    ablation: str
    dataset: Any = None  # the TaskDataset, for its spec and texts
    model: Any = None  # the LoadedModel, for its spec
    positions: Optional[Tensor] = None  # [P] bool: where ablations apply (None: every position)
    memory_budget: int = 1 << 30  # bytes one forward may hold in per-copy activations
    forwards: int = 0  # copies x prompts evaluated so far: what benchmarks count
    _cache: dict[str, float] = field(default_factory=dict)
    _patch_cum: Optional[Tensor] = None

    @property
    def graph(self) -> ComponentGraph:
        return self.engine.graph

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @property
    def n_prompts(self) -> int:
        return int(self.tokens.shape[0])

    # -- masks -----------------------------------------------------------------------------------------------
    def full_mask(self, copies: int = 1) -> Tensor:
        e = self.engine
        return torch.ones(copies, e.n_sources, e.n_dests, device=self.device, dtype=self.engine.w.dtype)

    def mask_from_edges(self, edges: Iterable[Edge]) -> Tensor:
        """``[S, D]``: 1 on the given edges (q/k/v, or whole heads: all three inputs), 0 elsewhere."""
        m = torch.zeros(self.engine.n_sources, self.engine.n_dests, device=self.device, dtype=self.engine.w.dtype)
        for edge in edges:
            s = self.graph.source_index[edge.src]
            for inp in (edge.input,) if edge.input or edge.dst.kind is not NodeKind.HEAD else ("q", "k", "v"):
                m[s, self.graph.dest_index[(edge.dst, inp)]] = 1
        return m

    def mask_from_nodes(self, nodes: Iterable[Node]) -> Tensor:
        """``[S, D]``: every edge out of a kept node is kept; a node outside the set is ablated everywhere.

        ``embed`` is a node like any other: leave it out to ablate the embeddings too.
        """
        m = torch.zeros(self.engine.n_sources, self.engine.n_dests, device=self.device, dtype=self.engine.w.dtype)
        for node in nodes:
            if node.kind is not NodeKind.LOGITS:
                m[self.graph.source_index[node]] = 1
        return m

    # -- evaluation ------------------------------------------------------------------------------------------
    def copies_per_forward(self, start_layer: int = 0) -> int:
        """How many mask copies fit one forward within the memory budget."""
        e = self.engine
        per_copy = (e.n_sources - e.n_up_heads(start_layer)) * self.tokens.numel() * e.d
        per_copy = per_copy * self.engine.w.dtype.itemsize * 3  # outputs, inputs of a layer, attention temporaries
        return max(1, self.memory_budget // max(per_copy, 1))

    def logits(self, masks: Tensor, start_layer: int = 0, extra: Optional[tuple[list[int], Tensor]] = None,
               base: Optional[tuple[Tensor, Tensor]] = None) -> Tensor:
        """Last-position logits ``[C, B, V]`` of each masked copy, chunked to the memory budget; ``extra`` adds
        input deltas to one destination per copy; ``base`` = ``(deltas, mask)`` of a circuit already run
        (``circuit_base``), whose unchanged sources are read rather than recomputed (``discovery.masked``)."""
        masks = masks if masks.dim() == 3 else masks.unsqueeze(0)
        step = self.copies_per_forward(start_layer)
        outs = []
        with torch.no_grad():
            for i in range(0, masks.shape[0], step):
                chunk = masks[i : i + step]
                part = None if extra is None else (extra[0][i : i + step], extra[1][i : i + step])
                out = self.engine.forward(self.tokens, masks=chunk, patch=self.patch, patch_cum=self.patch_cum,
                                          clean=self.clean, start_layer=start_layer, positions=self.positions,
                                          extra=part, base=base)
                self.forwards += chunk.shape[0] * self.n_prompts
                outs.append(out.logits)
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def trial(self, masks: Tensor, start_layer: int, base: tuple[Tensor, Tensor]) -> tuple[Tensor, MaskedRun]:
        """Losses ``[C]`` of masks ``[C, S, D]`` in one forward (within ``copies_per_forward``), reading ``base``'s
        unchanged sources, and the run, whose ``adopt(c)`` turns copy ``c`` into the next base (in place)."""
        with torch.no_grad():
            out = self.engine.forward(self.tokens, masks=masks, patch=self.patch, patch_cum=self.patch_cum,
                                      clean=self.clean, start_layer=start_layer, positions=self.positions, base=base)
        self.forwards += masks.shape[0] * self.n_prompts
        assert out.masked is not None
        return self.metric.loss(out.logits), out.masked

    def circuit_base(self, mask: Tensor, start_layer: int = 0, base: Optional[tuple[Tensor, Tensor]] = None,
                     in_place: bool = False) -> tuple[Tensor, Tensor]:
        """``(deltas, mask)`` of the circuit ``mask`` ``[S, D]``, to pass as ``base`` to runs whose masks keep a
        subset of its edges (``PatchingEngine.circuit_deltas``); reads from ``base`` what is unchanged there
        (``in_place``: and overwrites it). Counted as one forward of the prompts."""
        with torch.no_grad():
            deltas = self.engine.circuit_deltas(self.tokens, mask, patch=self.patch, patch_cum=self.patch_cum,
                                                clean=self.clean, start_layer=start_layer,
                                                positions=self.positions, base=base, in_place=in_place)
        self.forwards += self.n_prompts
        return deltas, mask.clone()

    @property
    def model_base(self) -> tuple[Tensor, Tensor]:
        """``(deltas, mask)`` of the whole model (every edge kept): the clean run."""
        return self.clean - self.patch, self.full_mask()[0]

    def values(self, masks: Tensor, start_layer: int = 0, extra: Optional[tuple[list[int], Tensor]] = None
               ) -> Tensor:
        """The metric of each masked copy ``[C]`` (mean over prompts)."""
        return self.metric.value(self.logits(masks, start_layer, extra))

    def losses(self, masks: Tensor, start_layer: int = 0, base: Optional[tuple[Tensor, Tensor]] = None) -> Tensor:
        return self.metric.loss(self.logits(masks, start_layer, base=base))

    @property
    def attribution_patch(self) -> Tensor:
        """Patch values for edge attribution: as ``patch`` at the chosen positions, the clean value elsewhere."""
        if self.positions is None:
            return self.patch
        return torch.where(self.positions.view(1, 1, -1, 1), self.patch.expand_as(self.clean), self.clean)

    @property
    def patch_cum(self) -> Tensor:
        """Cumulative sum of the patch values over sources, computed once per setup."""
        if self._patch_cum is None:
            self._patch_cum = torch.cumsum(self.patch, dim=0)
        return self._patch_cum

    @property
    def model_value(self) -> float:
        if "model" not in self._cache:
            self._cache["model"] = float(self.metric.value(self.clean_logits.unsqueeze(0))[0])
        return self._cache["model"]

    @property
    def empty_value(self) -> float:
        """The metric with every edge patched (the empty circuit)."""
        if "empty" not in self._cache:
            self._cache["empty"] = float(self.values(self.full_mask() * 0)[0])
        return self._cache["empty"]

    def performance(self, value: float) -> dict[str, float]:
        """The figures stored with a circuit whose metric is ``value`` (kept_fraction only where it means
        something: not for a metric whose model value is its best, as KL's 0)."""
        out = {self.metric.name: value, "model_" + self.metric.name: self.model_value,
               "empty_" + self.metric.name: self.empty_value}
        if not self.metric.spec.best_at_model:
            out[KEPT_FRACTION] = kept_fraction(value, self.model_value)
        out[FAITHFULNESS] = faithfulness(value, self.model_value, self.empty_value)
        return out

    @property
    def measure(self) -> str:
        """The share circuits are judged by under this metric (``discovery.names``)."""
        return self.metric.spec.share

    def share(self, value: float) -> float:
        """A circuit's share of the model's performance, by ``measure``."""
        if self.measure == KEPT_FRACTION:
            return kept_fraction(value, self.model_value)
        return faithfulness(value, self.model_value, self.empty_value)


def weights_for(model: Any) -> GPT2Weights:
    """The engine weights of a LoadedModel, extracted once and kept on it."""
    if model.engine_weights is None:
        model.engine_weights = GPT2Weights.from_bridge(model.bridge).to(model.device, model.dtype)
    return model.engine_weights


def prepare(
    model: Any,
    dataset: Any,
    *,
    metric: Optional[str] = None,
    ablation: str = "patch",
    positions: Optional[Sequence[int]] = None,
    seed: int = 0,
    memory_budget: Optional[int] = None,
    check: bool = True,
) -> PatchSetup:
    """Build the engine for ``model`` (a LoadedModel), run the clean and corrupted prompts once, fix the patch."""
    if ablation not in ABLATIONS:
        raise SettingsError(f"unknown ablation {ablation!r}: choose one of {', '.join(ABLATIONS)}")
    engine = PatchingEngine(weights_for(model))
    device = model.device
    tokens = dataset.clean.to(device)
    corrupted = dataset.corrupted.to(device)
    if check:
        tol = 1e-3 if model.dtype == torch.float32 else 0.25
        engine.check_against_bridge(model.bridge, tokens[: min(4, len(tokens))], atol=tol)
    return prepare_from_engine(engine, tokens, corrupted, dataset, metric=metric or dataset.metric,
                               ablation=ablation, positions=positions, seed=seed,
                               memory_budget=memory_budget, model=model)


def prepare_from_engine(
    engine: PatchingEngine,
    tokens: Tensor,
    corrupted: Tensor,
    dataset: Any,
    *,
    metric: str,
    ablation: str = "patch",
    positions: Optional[Sequence[int]] = None,
    seed: int = 0,
    memory_budget: Optional[int] = None,
    model: Any = None,
) -> PatchSetup:
    """As ``prepare``, from an engine directly (tests and benchmarks build engines from random weights)."""
    if tokens.shape != corrupted.shape:
        raise SettingsError(f"clean and corrupted prompts differ in shape: {tuple(tokens.shape)} vs {tuple(corrupted.shape)}")
    with torch.no_grad():
        clean_run = engine.run(tokens)
        corrupt_run = engine.run(corrupted)
    assert clean_run.sources is not None and corrupt_run.sources is not None
    clean = clean_run.sources[0]
    patch = ablation_values(ablation, corrupt_run.sources[0], seed)
    device = tokens.device
    metric_obj = Metric(
        metric,
        dataset.answers.to(device), dataset.answers_mask.to(device),
        dataset.wrong.to(device), dataset.wrong_mask.to(device),
        clean_logits=clean_run.logits[0],
    )
    if memory_budget is None:
        memory_budget = default_memory_budget(device)
    chosen = None if positions is None else position_mask(positions, tokens.shape[1], device)
    return PatchSetup(engine=engine, tokens=tokens, corrupted_tokens=corrupted, clean=clean,
                      clean_logits=clean_run.logits[0], patch=patch, metric=metric_obj, ablation=ablation,
                      dataset=dataset, model=model, memory_budget=memory_budget, positions=chosen)


def ablation_values(ablation: str, corrupted: Tensor, seed: int) -> Tensor:
    """Patch values ``[S, B or 1, P, d]`` from the corrupted run's source outputs ``[S, B, P, d]``."""
    if ablation == "patch":
        return corrupted
    if ablation == "mean":
        return corrupted.mean(1, keepdim=True)
    if ablation == "zero":
        return torch.zeros_like(corrupted[:, :1])
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(corrupted.shape[1], generator=g).to(corrupted.device)
    return corrupted[:, perm]


def position_mask(positions: Sequence[int], P: int, device: torch.device) -> Tensor:
    """``[P]`` bool, True at ``positions`` (negative counts from the end)."""
    chosen = torch.zeros(P, dtype=torch.bool, device=device)
    for p in positions:
        if not -P <= p < P:
            raise SettingsError(f"--positions: position {p} is outside prompts of {P} tokens")
        chosen[p] = True
    return chosen


def default_memory_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return 1 << 30

