"""How well attribution scores (EAP, EAP-IG) rank edges as patching each edge alone does: the check behind the
README's accuracy table (``benchmarks/attribution_accuracy.py``) and its test.

A Spearman correlation over every edge of a graph is dominated by the hundreds of edges whose effect is near zero,
which any method ranks near the bottom; it says little about the edges a circuit is made of. So the figures here
are about the edges that matter: the overlap of the top-k edges by |score| with the top-k by |single-edge
effect|, and the rank (|.|) and linear (signed) correlations over the ``matter`` edges of largest |effect|. The
all-edge Spearman is reported beside them, named as such.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from discovery.graph import Edge
from discovery.patching import PatchSetup


def single_edge_effects(setup: PatchSetup, edges: Sequence[Edge]) -> Tensor:
    """``metric(only this edge patched) - metric(model)`` for each edge ``[E]``, in batched forwards."""
    full = setup.full_mask()[0]
    effects = []
    for i in range(0, len(edges), 256):
        masks = torch.stack([full - setup.mask_from_edges([e]) for e in edges[i : i + 256]])
        effects.append(setup.values(masks) - setup.model_value)
    return torch.cat(effects)


def _ranks(x: Tensor) -> Tensor:
    return x.argsort().argsort().float()


def _corr(a: Tensor, b: Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.float(), b.float()]))[0, 1])


def agreement(scores: Tensor, effects: Tensor, tops: Sequence[int] = (10, 20), matter: int = 50) -> dict[str, float]:
    """``scores`` and ``effects`` ``[E]`` over the same edges: top-k overlaps (share of the k largest |effects|
    among the k largest |scores|), Spearman of |.| and Pearson of the signed values over the ``matter`` edges of
    largest |effect|, and Spearman of |.| over all edges."""
    out: dict[str, float] = {}
    by_effect = effects.abs().argsort(descending=True)
    by_score = scores.abs().argsort(descending=True)
    for k in tops:
        out[f"top{k}_overlap"] = len(set(by_effect[:k].tolist()) & set(by_score[:k].tolist())) / k
    idx = by_effect[:matter]
    out[f"spearman_top{matter}"] = _corr(_ranks(scores[idx].abs()), _ranks(effects[idx].abs()))
    out[f"pearson_signed_top{matter}"] = _corr(scores[idx], effects[idx])
    out["spearman_all_edges"] = _corr(_ranks(scores.abs()), _ranks(effects.abs()))
    return out
