"""Direct logit attribution: how much each component writes the logit difference straight into the logits.

At the last position the unembedding reads the residual stream ``x = sum_s out_s + sum_l b_O[l]`` (every
source: embed, each head, each MLP; plus the attention output biases, which belong to no head) through the
final LayerNorm and ``W_U``. With the LayerNorm's divisor ``sigma`` (per prompt) held at its value in the
run, that map is affine, so the logit difference (mean logit of the correct tokens minus mean logit of the
wrong ones, the ``logit-diff`` metric) splits exactly:

    logit_diff = sum_s DLA(s) + DLA(b_O) + bias_U,

    DLA(v)  = ((v - mean(v)) / sigma) . u,     u = mean_a W[:, a] - mean_w W[:, w]
    bias_U  = mean_a b[a] - mean_w b[w]

with ``(W, b)`` the unembedding with the LayerNorm's scale and shift folded in (``stream.unembed_affine``;
``(W_U, b_U)`` under GPT-2's default processing). So the heads' and MLPs' attributions sum to the logit
difference minus the embed term ``DLA(embed)`` and the bias terms ``DLA(b_O) + bias_U``: the identity the
tests check. A positive DLA pushes the right answer up against the wrong one (boosting); a negative one
pushes it down (inhibition, e.g. IOI's negative name movers). DLA sees only the direct path: a head that acts
through later components (an S-inhibition head moving name movers' queries) can have a small DLA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from discovery.analysis.stream import as_engine, final_scale, run_stream, unembed_affine
from discovery.engine import PatchingEngine
from discovery.graph import Node, NodeKind


@dataclass
class DLAResult:
    """Per node key: mean/std over prompts and share of the logit difference; and the identity's terms."""

    nodes: dict[str, dict[str, float]]
    totals: dict[str, float]


def answer_direction(W: Tensor, answers: Tensor, answers_mask: Tensor, wrong: Tensor, wrong_mask: Tensor) -> Tensor:
    """``u`` ``[B, d]``: mean unembedding column of the correct tokens minus that of the wrong ones."""

    def mean_cols(ids: Tensor, mask: Tensor) -> Tensor:
        cols = W.T[ids.clamp(min=0)]  # [B, k, d]
        m = mask.to(cols.dtype).unsqueeze(-1)
        return (cols * m).sum(1) / m.sum(1).clamp(min=1)

    return mean_cols(answers, answers_mask) - mean_cols(wrong, wrong_mask)


def _mean_ids(values: Tensor, ids: Tensor, mask: Tensor) -> Tensor:
    """``[B]``: per row, the mean of ``values`` ``[B, V]`` at the masked ``ids`` ``[B, k]``."""
    picked = values.gather(1, ids.clamp(min=0))
    m = mask.to(picked.dtype)
    return (picked * m).sum(-1) / m.sum(-1).clamp(min=1)


def attributions(engine: PatchingEngine, dataset: Any) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-source DLA ``[S, B]`` (``engine.graph.sources`` order) and the identity's other terms ``[B]``:
    ``logit_diff`` (from the model's own logits), ``attn_bias`` (DLA of the summed b_O) and ``unembed_bias``."""
    device = engine.w.device
    stream = run_stream(engine, dataset.clean.to(device))
    answers, answers_mask = dataset.answers.to(device), dataset.answers_mask.to(device)
    wrong, wrong_mask = dataset.wrong.to(device), dataset.wrong_mask.to(device)
    W, b = unembed_affine(engine)
    u = answer_direction(W, answers, answers_mask, wrong, wrong_mask)  # [B, d]
    sigma = final_scale(engine, stream.resid[-1][:, -1])  # [B]

    def dla(v: Tensor) -> Tensor:  # v [..., B, d] -> [..., B]
        v = v.float()
        return ((v - v.mean(-1, keepdim=True)) * u).sum(-1) / sigma

    per_source = dla(stream.sources[:, :, -1])
    bias_O = engine.dest_bias[engine.logits_dest].float().expand(sigma.shape[0], -1)
    logits = stream.logits[:, -1].float()
    def diff(values: Tensor) -> Tensor:  # [B, V] -> [B]: mean over the right tokens minus mean over the wrong
        return _mean_ids(values, answers, answers_mask) - _mean_ids(values, wrong, wrong_mask)

    logit_diff = diff(logits)
    bias_U = diff(b.expand_as(logits))
    return per_source, {"logit_diff": logit_diff, "attn_bias": dla(bias_O), "unembed_bias": bias_U}


def analyze_dla(model: Any, dataset: Any, nodes: Sequence[Node]) -> DLAResult:
    """DLA of ``nodes`` (heads, MLPs, embed) on ``dataset``'s logit difference, with the identity's totals."""
    engine = as_engine(model)
    per_source, terms = attributions(engine, dataset)
    mean_diff = float(terms["logit_diff"].mean())
    out: dict[str, dict[str, float]] = {}
    for node in nodes:
        if node.kind is NodeKind.LOGITS:
            continue
        values = per_source[engine.graph.source_index[node]]
        mean = float(values.mean())
        out[node.key] = {
            "dla": round(mean, 5),
            "dla_std": round(float(values.std()) if len(values) > 1 else 0.0, 5),
            "share": round(mean / mean_diff, 5) if mean_diff else 0.0,
            "positive_fraction": round(float((values > 0).float().mean()), 4),
        }
    components = [n for n in engine.graph.sources if n.kind is not NodeKind.EMBED]
    comp_sum = per_source[[engine.graph.source_index[n] for n in components]].sum(0)
    embed = per_source[engine.graph.source_index[engine.graph.sources[0]]]
    totals = {
        "logit_diff": mean_diff,
        "embed": float(embed.mean()),
        "attn_bias": float(terms["attn_bias"].mean()),
        "unembed_bias": float(terms["unembed_bias"].mean()),
        "heads_and_mlps": float(comp_sum.mean()),
        "circuit": float(per_source[[engine.graph.source_index[n] for n in nodes
                                     if n.kind in (NodeKind.HEAD, NodeKind.MLP)]].sum(0).mean())
        if any(n.kind in (NodeKind.HEAD, NodeKind.MLP) for n in nodes) else 0.0,
        "n_prompts": float(per_source.shape[1]),
    }
    return DLAResult(nodes=out, totals={k: round(v, 5) for k, v in totals.items()})

