"""Builders for the analysis tests: hand-built models whose heads do known things, and a tiny random GPT-2.

Hand-built models (``empty_weights`` plus ``set_*``) use one-hot residual directions, each with a mirror coordinate of the
opposite sign, so that every embedding has mean 0 and the same norm: LayerNorm then only rescales, and a
head's query, key, value and output can be written down exactly. Tokens 0..3 are "members" (type A), 4..6
other words, 7 the filler, 8 the BOS token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from discovery.weights import GPT2Weights

N_TOK, N_CTX = 9, 12
MEMBERS, FILLER, BOS = (0, 1, 2, 3), 7, 8
D = 2 * (N_TOK + N_CTX)
E = max(N_TOK, N_CTX)  # head width
SHARP = 12.0  # query scale: makes hand-set attention close to one-hot


def tok_dir(t: int) -> torch.Tensor:
    v = torch.zeros(D)
    v[t], v[N_TOK + N_CTX + t] = 1.0, -1.0
    return v


def pos_dir(p: int) -> torch.Tensor:
    v = torch.zeros(D)
    v[N_TOK + p], v[2 * N_TOK + N_CTX + p] = 1.0, -1.0
    return v


def empty_weights(n_layers: int = 1, n_heads: int = 3) -> GPT2Weights:
    """Every weight zero except the embeddings and the unembedding (logit j reads token direction j)."""
    L, H = n_layers, n_heads
    z = torch.zeros
    return GPT2Weights(
        W_E=torch.stack([tok_dir(t) for t in range(N_TOK)]), W_pos=torch.stack([pos_dir(p) for p in range(N_CTX)]),
        W_Q=z(L, H, D, E), W_K=z(L, H, D, E), W_V=z(L, H, D, E), b_Q=z(L, H, E), b_K=z(L, H, E), b_V=z(L, H, E),
        W_O=z(L, H, E, D), b_O=z(L, D), W_in=z(L, D, 4), b_in=z(L, 4), W_out=z(L, 4, D), b_out=z(L, D),
        W_U=torch.stack([tok_dir(t) for t in range(N_TOK)], dim=1), b_U=z(N_TOK),
        ln1_w=None, ln1_b=None, ln2_w=None, ln2_b=None, lnf_w=None, lnf_b=None,
    )


def set_ov(w: GPT2Weights, layer: int, head: int, target: dict[int, int], sign: float = 1.0) -> None:
    """Head (layer, head) reads token t and writes ``sign`` times token ``target[t]``'s direction."""
    for t, out in target.items():
        w.W_V[layer, head, :, t] = tok_dir(t)
        w.W_O[layer, head, t] = sign * tok_dir(out)


def set_offset_head(w: GPT2Weights, layer: int, head: int, offset: int) -> None:
    """Head attends from position p to position p - offset (where it exists), by position embeddings."""
    for p in range(N_CTX):
        w.W_Q[layer, head, :, p] = SHARP * pos_dir(p)
        if p + offset < N_CTX:
            w.W_K[layer, head, :, p + offset] = pos_dir(p)


def set_type_head(w: GPT2Weights, layer: int, head: int, types: tuple[int, ...]) -> None:
    """Head attends, from any position, evenly to the tokens in ``types`` (a constant query, a token key)."""
    w.b_Q[layer, head, 0] = SHARP * 4
    for t in types:
        w.W_K[layer, head, :, 0] = w.W_K[layer, head, :, 0] + tok_dir(t)


@dataclass
class Prompts:
    """Duck-types the parts of a TaskDataset DLA and the logit lens read."""

    clean: torch.Tensor
    answers: torch.Tensor
    answers_mask: torch.Tensor
    wrong: torch.Tensor
    wrong_mask: torch.Tensor


def random_prompts(n: int, pos: int, vocab: int, k_answers: int = 1, seed: int = 0,
                   bos: Optional[int] = None) -> Prompts:
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, vocab, (n, pos), generator=g)
    if bos is not None:
        clean[:, 0] = bos
    answers = torch.randint(0, vocab, (n, k_answers), generator=g)
    mask = torch.ones(n, k_answers, dtype=torch.bool)
    if k_answers > 1:
        mask[0, -1] = False  # a padded answer list, as greater-than's
        answers[0, -1] = -1
    wrong = torch.randint(0, vocab, (n, 1), generator=g)
    return Prompts(clean, answers, mask, wrong, torch.ones(n, 1, dtype=torch.bool))


def random_weights(n_layers: int = 2, n_heads: int = 2, d: int = 8, e: int = 4, f: int = 16, V: int = 11,
                   n_ctx: int = 10, seed: int = 0) -> GPT2Weights:
    """Random weights with LayerNorm scales and shifts NOT folded, and every bias non-zero."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.5) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    L, H = n_layers, n_heads
    return GPT2Weights(
        W_E=r(V, d), W_pos=r(n_ctx, d), W_Q=r(L, H, d, e), W_K=r(L, H, d, e), W_V=r(L, H, d, e),
        b_Q=r(L, H, e), b_K=r(L, H, e), b_V=r(L, H, e), W_O=r(L, H, e, d), b_O=r(L, d),
        W_in=r(L, d, f), b_in=r(L, f), W_out=r(L, f, d), b_out=r(L, d), W_U=r(d, V), b_U=r(V),
        ln1_w=1 + r(L, d, scale=0.2), ln1_b=r(L, d, scale=0.2), ln2_w=1 + r(L, d, scale=0.2),
        ln2_b=r(L, d, scale=0.2), lnf_w=1 + r(d, scale=0.2), lnf_b=r(d, scale=0.2),
    )
