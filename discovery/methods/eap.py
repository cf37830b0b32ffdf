"""Edge attribution patching (EAP) and EAP with integrated gradients (EAP-IG).

EAP: Syed, Rager & Conmy (2023), "Attribution Patching Outperforms Automated Circuit Discovery",
arXiv 2310.10348. EAP-IG: Hanna, Pezzelle & Belinkov (2024), "Have Faith in Faithfulness: Going Beyond Circuit
Overlap When Finding Model Mechanisms", arXiv 2403.17806.

Both replace one forward per edge by a linearisation of the engine's masked forward. Patching the edge
``s -> d`` changes destination ``d``'s input by ``patch_s - clean_s`` (``discovery.engine``), so

    score(s -> d) = sum over prompts and positions of (patch_s - clean_s) . g_d

where ``g_d`` is the gradient of the metric (the mean over prompts, as ``PatchSetup.values`` reports it) with
respect to ``d``'s input, read from the engine's probes after one backward pass. All scores of a layer's
destinations come from one matmul of source deltas ``[S, B*P*d]`` with probe gradients ``[D_layer, B*P*d]``.

Sign convention (both methods): a score estimates ``metric(edge patched) - metric(model)``. With logit-diff or
prob-diff an important edge has a negative score; with KL a positive one. Circuits rank edges by ``|score|``.
Only the edge choice uses the estimate: a circuit's performance (and the ``target`` search) is always measured
by real ablation through ``PatchSetup.values``.

Where the gradient is taken:
- EAP: at the clean input (Syed et al.). KL(clean || model) has zero gradient there, so with the ``kl``
  metric the gradient is taken at the ablated end instead (``gradient_at="ablated"``): the plain model run from
  the ablated embedding (``setup.patch[0]``), i.e. for the ``patch`` ablation exactly the corrupted run, where
  every source's output is its patch value. (A masked forward with every mask 0 would not do: no destination's
  output reaches any other destination there, so every gradient but the logits' would be zero.) The formula is
  unchanged, so the score is minus the first-order estimate of *restoring* the edge in the fully ablated model.
- EAP-IG: averaged over ``steps`` embeddings interpolated from the ablated embedding to the clean one,
  ``base + (k / steps) * (clean - base)`` for ``k = 0 .. steps - 1``, as the authors' code does
  (hannamw/EAP-IG ``get_scores_eap_ig``; the paper writes ``k = 1 .. m``). So ``steps=1`` is exactly EAP with
  ``gradient_at="ablated"``. The base is the embed source's patch value, ``setup.patch[0]``: the corrupted
  embedding for the ``patch`` ablation, the per-position mean of the corrupted embeddings for ``mean``, zero
  for ``zero``, a resampled corrupted embedding for ``resample``. The activation differences are the
  ablation's patch values minus the clean outputs, as in EAP. For ablations other than ``patch`` the
  interpolation's far end is therefore the model run on the ablated embedding, whose source outputs are not
  exactly the patch values (a mean of outputs is not the output of a mean); the integral is then an
  approximation the paper does not define.

Circuits: exactly one of ``threshold`` (edges with ``|score| >= threshold``), ``top_k`` (the ``k`` edges of largest
``|score|``) or ``target`` (the smallest ``k`` whose top-k circuit's real performance reaches ``target``: the
metric's share, ``discovery.names``; ``k`` found by a many-way bisection, each round one batched forward of
several candidate ``k``, assuming performance grows roughly with ``k``). Whichever rule selects the edges, the
circuit is cut by the one cut rule (``discovery.topology.cut``): dangling edges are removed, as EAP-IG's
``apply_topn(..., prune=True)`` removes them; the output reports ``k`` asked for and ``n_kept`` kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor

from discovery.engine import PatchingEngine
from discovery.errors import SettingsError
from discovery.graph import Edge, Granularity
from discovery.methods.base import MethodOutput, Progress, edge_matrix, edge_scores, no_progress
from discovery.metrics import Metric
from discovery.names import KEPT_FRACTION
from discovery.patching import PatchSetup
from discovery.topology import cut, cut_threshold, ranked

GRADIENT_POINTS = ("clean", "ablated")
_MAX_TARGET_COPIES = 16  # candidate circuits evaluated per bisection round


def eap(
    setup: PatchSetup,
    *,
    threshold: Optional[float] = None,
    top_k: Optional[int] = None,
    target: Optional[float] = None,
    gradient_at: Optional[str] = None,
    batch_size: Optional[int] = None,
    progress: Progress = no_progress,
) -> MethodOutput:
    """Edge attribution patching: one forward and one backward per batch of prompts.

    ``gradient_at``: ``"clean"`` (default for logit-diff and prob-diff) or ``"ablated"`` (default for kl);
    ``batch_size``: prompts per forward (default: as many as the setup's memory budget allows).
    """
    _check_metric(setup, "EAP")
    _check_selection(setup, threshold, top_k, target)
    at = gradient_at or ("ablated" if setup.metric.spec.best_at_model else "clean")
    if at not in GRADIENT_POINTS:
        raise SettingsError(f"gradient_at must be one of {', '.join(GRADIENT_POINTS)}, got {gradient_at!r}")
    _check_batch_size(batch_size)
    scores = attribution_scores(setup, [1.0 if at == "clean" else 0.0], batch_size=batch_size, progress=progress)
    params = {"threshold": threshold, "top_k": top_k, "target": target, "gradient_at": at, "batch_size": batch_size}
    return _output(setup, scores, threshold, top_k, target, params, {"gradient_at": at})


def eap_ig(
    setup: PatchSetup,
    *,
    threshold: Optional[float] = None,
    top_k: Optional[int] = None,
    target: Optional[float] = None,
    steps: int = 5,
    batch_size: Optional[int] = None,
    progress: Progress = no_progress,
) -> MethodOutput:
    """EAP with integrated gradients over ``steps`` input embeddings from the ablated to the clean one."""
    _check_metric(setup, "EAP-IG")
    _check_selection(setup, threshold, top_k, target)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SettingsError(f"EAP-IG's steps must be a whole number >= 1, got {steps!r}")
    _check_batch_size(batch_size)
    alphas = [k / steps for k in range(steps)]
    scores = attribution_scores(setup, alphas, batch_size=batch_size, progress=progress)
    params = {"threshold": threshold, "top_k": top_k, "target": target, "steps": steps, "batch_size": batch_size}
    return _output(setup, scores, threshold, top_k, target, params, {"steps": steps})


# ---------------------------------------------------------------------------------------------------------
# Scores


def attribution_scores(
    setup: PatchSetup,
    alphas: Sequence[float],
    *,
    batch_size: Optional[int] = None,
    progress: Progress = no_progress,
) -> Tensor:
    """``[S, D]`` float32: ``(patch_s - clean_s) . mean_a g_d(a)`` summed over prompts and positions.

    ``g_d(a)`` is the metric's gradient at the input embedding ``base + a * (clean - base)`` (``base`` the
    ablated embedding, ``setup.patch[0]``): ``a = 1`` is the clean run, ``a = 0`` the ablated one. Entries that
    are not edges of the graph are NaN.
    """
    e = setup.engine
    B = setup.n_prompts
    step = batch_size or default_batch_size(setup)
    scores = torch.zeros(e.n_sources, e.n_dests, dtype=torch.float32, device=setup.device)
    starts = list(range(0, B, step))
    total, done = len(starts) * len(alphas), 0
    for lo in starts:
        sl = slice(lo, min(lo + step, B))
        metric = _sub_metric(setup, sl)
        clean_emb = setup.clean[0, sl]  # [b, P, d]
        base = _rows(setup.attribution_patch[0], sl)  # [b|1, P, d]
        grads: Optional[list[Tensor]] = None
        for a in alphas:
            emb = clean_emb if a == 1.0 else base + a * (clean_emb - base)
            g = _input_gradients(setup, setup.tokens[sl], emb.expand_as(clean_emb), metric, (sl.stop - lo) / B)
            grads = g if grads is None else [x + y for x, y in zip(grads, g)]
            done += 1
            progress(done, total)
        assert grads is not None
        delta = _rows(setup.attribution_patch, sl, dim=1) - setup.clean[:, sl]  # [S, b, P, d]
        _accumulate(e, scores, delta, grads, 1.0 / len(alphas))
    scores[~edge_matrix(setup.graph, setup.device)] = float("nan")
    return scores


def _input_gradients(setup: PatchSetup, tokens: Tensor, embed: Tensor, metric: Metric, weight: float) -> list[Tensor]:
    """d(weight * metric)/d(input) for every destination: per layer heads ``[b, P, 3H, d]``, MLP ``[b, P, d]``;
    then logits ``[b, 1, d]`` (last position)."""
    with torch.enable_grad():
        out = setup.engine.forward(tokens, embed=embed.detach(), probes=True)
        value = metric.value(out.logits).sum() * weight
        grads = torch.autograd.grad(value, out.probes, allow_unused=True)
    setup.forwards += int(tokens.shape[0])
    return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(out.probes, grads)]


def _accumulate(e: PatchingEngine, scores: Tensor, delta: Tensor, grads: list[Tensor], scale: float) -> None:
    """scores[:n_up, layer's destinations] += delta[:n_up] @ grads^T, one matmul per layer group."""
    S = delta.shape[0]
    flat = delta.reshape(S, -1).float()  # [S, b*P*d]
    for layer in range(e.L):
        head_g = grads[2 * layer]  # [b, P, 3H, d]
        g = head_g.permute(2, 0, 1, 3).reshape(head_g.shape[2], -1).float()  # [3H, b*P*d]
        n = e.n_up_heads(layer)
        scores[:n, e.head_dests(layer)] += scale * (flat[:n] @ g.T)
        mlp_g = grads[2 * layer + 1].reshape(1, -1).float()  # [1, b*P*d]
        n = e.mlp_source(layer)
        d = e.mlp_dest(layer)
        scores[:n, d : d + 1] += scale * (flat[:n] @ mlp_g.T)
    last = delta[:, :, -1:].reshape(S, -1).float()  # the logits read the last position only
    scores[:, e.logits_dest : e.logits_dest + 1] += scale * (last @ grads[-1].reshape(1, -1).float().T)


def _rows(t: Tensor, sl: slice, dim: int = 0) -> Tensor:
    """``t``'s prompts ``sl`` along ``dim``, or ``t`` itself where that axis has size 1 (shared patch values)."""
    return t if t.shape[dim] == 1 else t.narrow(dim, sl.start, sl.stop - sl.start)


def _sub_metric(setup: PatchSetup, sl: slice) -> Metric:
    m = setup.metric
    return Metric(m.name, m.answers[sl], m.answers_mask[sl], m.wrong[sl], m.wrong_mask[sl],
                  clean_logits=setup.clean_logits[sl])


def default_batch_size(setup: PatchSetup) -> int:
    """Prompts per forward with probes: inputs of every destination, kept for the backward pass, in budget."""
    e = setup.engine
    P = int(setup.tokens.shape[1])
    per_prompt = P * e.d * e.w.dtype.itemsize * (6 * e.L * (3 * e.H + 1) + 2 * e.n_sources)
    return max(1, setup.memory_budget // max(per_prompt, 1))


# ---------------------------------------------------------------------------------------------------------
# Circuits


def _output(
    setup: PatchSetup, scores: Tensor, threshold: Optional[float], top_k: Optional[int], target: Optional[float],
    params: dict[str, Any], extras: dict[str, Any],
) -> MethodOutput:
    kept, found = select_circuit(setup, scores, threshold=threshold, top_k=top_k, target=target)
    return MethodOutput(
        granularity=Granularity.QKV,
        edges=edge_scores(setup.graph, scores, _mask(setup, kept)),
        threshold=threshold,
        params={k: v for k, v in params.items() if v is not None},
        extras={**extras, **found},
    )


def select_circuit(
    setup: PatchSetup,
    scores: Tensor,
    *,
    threshold: Optional[float] = None,
    top_k: Optional[int] = None,
    target: Optional[float] = None,
) -> tuple[frozenset[Edge], dict[str, Any]]:
    """The circuit by exactly one rule, cut by the one cut rule (``discovery.topology``: the selected edges with
    dangling ones removed), and what was measured for it by real ablation. ``k`` is how many top edges the rule
    asked for, ``n_kept`` how many the circuit keeps after pruning."""
    _check_selection(setup, threshold, top_k, target)
    pairs = _scored_pairs(setup, scores)
    if threshold is not None:
        kept = cut_threshold(pairs, threshold)
        found: dict[str, Any] = {"k": sum(1 for _, s in pairs if abs(s) >= threshold)}
    elif top_k is not None:
        kept = cut(ranked(pairs, setup.graph.edges), top_k)
        found = {"k": top_k}
    else:
        assert target is not None
        order = ranked(pairs, setup.graph.edges)
        k, value = _smallest_k(setup, order, target)
        kept = cut(order, k)
        return kept, {"k": k, "n_kept": len(kept), "target": target, "circuit_value": value,
                      "share": setup.share(value)}
    value = float(setup.values(setup.mask_from_edges(kept).unsqueeze(0))[0])
    return kept, {**found, "n_kept": len(kept), "circuit_value": value}


def _scored_pairs(setup: PatchSetup, scores: Tensor) -> list[tuple[Edge, float]]:
    """Every edge of the graph with its score (NaN where it has none)."""
    flat = scores.detach().float().cpu().tolist()
    graph = setup.graph
    return [(e, flat[graph.source_index[e.src]][graph.dest_index[(e.dst, e.input)]]) for e in graph.edges]


def _mask(setup: PatchSetup, kept: frozenset[Edge]) -> Tensor:
    return setup.mask_from_edges(kept).bool()


def _smallest_k(setup: PatchSetup, order: list[Edge], target: float) -> tuple[int, float]:
    """Smallest ``k`` whose cut top-k circuit reaches ``target`` (the whole graph, ``k = n``, always does).

    Invariant: ``hi`` reaches the target, ``lo`` (or -1) does not. Each round evaluates up to
    ``_MAX_TARGET_COPIES`` evenly spread ``k`` strictly between them in one batched call, assuming performance
    grows roughly with ``k``.
    """
    n = len(order)
    lo, hi = -1, n
    values: dict[int, float] = {}
    per_round = max(1, min(_MAX_TARGET_COPIES, setup.copies_per_forward()))
    while hi - lo > 1:
        cands = _spread(lo, hi, per_round)
        masks = torch.stack([setup.mask_from_edges(cut(order, k)) for k in cands])
        for k, v in zip(cands, setup.values(masks).tolist()):
            values[k] = float(v)
        passing = [k for k in cands if setup.share(values[k]) >= target]
        if passing:
            hi = passing[0]
            lo = max([k for k in cands if k < hi], default=lo)
        else:
            lo = cands[-1]
    if hi not in values:  # the whole graph: measure it too, for the record
        values[hi] = float(setup.values(setup.mask_from_edges(cut(order, hi)).unsqueeze(0))[0])
    return hi, values[hi]


def _spread(lo: int, hi: int, m: int) -> list[int]:
    """Up to ``m`` integers strictly between ``lo`` and ``hi``, evenly spread (all of them if few)."""
    if hi - lo - 1 <= m:
        return list(range(lo + 1, hi))
    picks = {lo + round((i + 1) * (hi - lo) / (m + 1)) for i in range(m)}
    return sorted(k for k in picks if lo < k < hi)


# ---------------------------------------------------------------------------------------------------------
# Settings


def _check_metric(setup: PatchSetup, name: str) -> None:
    if not setup.metric.spec.differentiable:
        raise SettingsError(f"{name} needs a differentiable metric; {setup.metric.name} is not: use logit-diff, "
                            "prob-diff or kl")


def _check_selection(setup: PatchSetup, threshold: Optional[float], top_k: Optional[int],
                     target: Optional[float]) -> None:
    given = [name for name, v in (("threshold", threshold), ("top_k", top_k), ("target", target)) if v is not None]
    if len(given) != 1:
        raise SettingsError(
            "give exactly one of threshold (keep |score| >= it), top_k (keep the k best edges) or target "
            f"(smallest top-k circuit reaching this share of the model's performance); got "
            f"{', '.join(given) if given else 'none'}"
        )
    n_edges = setup.graph.n_edges()
    if threshold is not None and not (threshold >= 0 and math.isfinite(threshold)):
        raise SettingsError(f"threshold is a bound on |score| and must be >= 0, got {threshold}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= n_edges):
        raise SettingsError(f"top_k must be a whole number from 0 to the graph's {n_edges} edges, got {top_k!r}")
    if target is not None:
        if not 0 < target <= 1:
            raise SettingsError(f"target is a share of the model's performance in (0, 1], got {target}")
        if setup.measure == KEPT_FRACTION and not setup.model_value > 0:
            raise SettingsError(
                f"target counts the kept fraction m(circuit) / m(model), which needs m(model) > 0; the model's "
                f"{setup.metric.name} here is {setup.model_value:.4g}"
            )


def _check_batch_size(batch_size: Optional[int]) -> None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise SettingsError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
