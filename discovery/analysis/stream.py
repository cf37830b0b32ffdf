"""The residual stream and attention patterns of one plain forward, read off the engine's source outputs.

Every analysis reads the model through ``discovery.engine.PatchingEngine`` (plain tensors of the bridge's processed
weights, checked against TransformerBridge at load), so the same code runs on GPT-2, the toy model and a
hand-built test model. ``as_engine`` accepts any of the three spellings of "a model" analyses are given.

Residual stream convention (as TransformerLens's ``hook_resid_pre``/``hook_resid_post``):
``resid[l]`` is the input of layer ``l`` for ``l < L``, and ``resid[L]`` the stream the unembedding reads.
It is the sum of the sources below (embed, heads, MLPs) plus the attention output biases ``b_O`` of the
layers below, which belong to no head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from discovery.engine import PatchingEngine
from discovery.errors import SettingsError
from discovery.weights import GPT2Weights, layer_norm


def as_engine(model: Any) -> PatchingEngine:
    """An ``PatchingEngine`` for a LoadedModel, a ``GPT2Weights`` or an ``PatchingEngine`` (returned as is)."""
    if isinstance(model, PatchingEngine):
        return model
    if isinstance(model, GPT2Weights):
        return PatchingEngine(model)
    if hasattr(model, "bridge"):
        from discovery.patching import weights_for

        return PatchingEngine(weights_for(model))
    raise SettingsError(f"cannot analyse a {type(model).__name__}: give a loaded model, GPT2Weights or an PatchingEngine")


@dataclass(frozen=True)
class Stream:
    """One plain forward. Shapes: S sources, B prompts, P positions, d model width, L layers, V vocabulary."""

    tokens: Tensor  # [B, P]
    sources: Tensor  # [S, B, P, d] each source's output (embed, then per layer its heads and its MLP)
    resid: Tensor  # [L + 1, B, P, d] resid[l] = input of layer l; resid[L] = what the unembedding reads
    logits: Tensor  # [B, P, V]


def run_stream(engine: PatchingEngine, tokens: Tensor) -> Stream:
    """Run the unpatched model on ``tokens`` ``[B, P]`` and keep its residual stream at every layer."""
    tokens = tokens.to(engine.w.device)
    with torch.no_grad():
        out = engine.run(tokens, all_positions=True)
    assert out.sources is not None
    sources = out.sources[0]
    rows = []
    for layer in range(engine.L + 1):
        if layer < engine.L:
            n_up, bias = engine.n_up_heads(layer), engine.dest_bias[engine.head_dests(layer).start]
        else:
            n_up, bias = engine.n_sources, engine.dest_bias[engine.logits_dest]
        rows.append(sources[:n_up].sum(0) + bias)
    return Stream(tokens=tokens, sources=sources, resid=torch.stack(rows), logits=out.logits[0])


def attention_pattern(engine: PatchingEngine, resid_pre: Tensor, layer: int) -> Tensor:
    """Attention probabilities ``[B, H, P_query, P_key]`` of ``layer`` given its input ``[B, P, d]``.

    The same computation as the engine's forward (LayerNorm, W_Q/W_K with biases, causal softmax), written
    out because the engine's fused attention does not return the pattern; checked against the bridge's
    ``hook_pattern`` in the tests.
    """
    w = engine.w
    ln_w = None if w.ln1_w is None else w.ln1_w[layer]
    ln_b = None if w.ln1_b is None else w.ln1_b[layer]
    with torch.no_grad():
        xn = layer_norm(resid_pre, ln_w, ln_b, w.eps)
        q = torch.einsum("bpd,hde->bhpe", xn, w.W_Q[layer]) + w.b_Q[layer][None, :, None]
        k = torch.einsum("bpd,hde->bhpe", xn, w.W_K[layer]) + w.b_K[layer][None, :, None]
        scores = torch.einsum("bhqe,bhke->bhqk", q, k).float() * w.attn_scale
        P = resid_pre.shape[1]
        causal = torch.ones(P, P, dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        return torch.softmax(scores, dim=-1)


def final_scale(engine: PatchingEngine, resid_final: Tensor) -> Tensor:
    """The final LayerNorm's divisor ``[...]`` for ``resid_final`` ``[..., d]`` (what DLA freezes)."""
    x = resid_final.float()
    centred = x - x.mean(-1, keepdim=True)
    return torch.sqrt(centred.pow(2).mean(-1) + engine.w.eps)


def unembed_affine(engine: PatchingEngine) -> tuple[Tensor, Tensor]:
    """``(W, b)`` with ``logits = normalise(x) @ W + b``: the final LayerNorm's scale and shift folded in.

    With GPT-2's default processing (``fold_ln``) the LayerNorm has no weights left and this is
    ``(W_U, b_U)``; otherwise ``W = diag(ln_w) W_U`` and ``b = ln_b W_U + b_U``.
    """
    w = engine.w
    W, b = w.W_U.float(), w.b_U.float()
    if w.lnf_w is not None:
        b = w.lnf_b.float() @ W + b if w.lnf_b is not None else b
        W = w.lnf_w.float().unsqueeze(1) * W
    return W, b
