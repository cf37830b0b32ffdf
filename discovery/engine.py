"""The edge-patching engine: one masked forward of a GPT-2 over its component graph, shared by every method.

Every destination ``d`` (a head's q, k or v input, an MLP's input, the logits) reads

    input_d = sum_s patch_s + bias_d + sum_s mask[s, d] * (out_s - patch_s)

over the sources ``s`` upstream of it (embed, heads, MLPs; numbered as ``discovery.graph.ComponentGraph``),
where ``out_s`` is the source's output in this run and ``patch_s`` the value that replaces it on an ablated
edge (the corrupted run's output, a mean, zero). ``mask`` = 1 everywhere is the ordinary model; 0 patches
the edge. ``bias_d`` holds the attention output biases of the layers below ``d``, which belong to no head.

Why one formula serves every method:
- ACDC and path patching evaluate many masks at once: ``C`` mask copies are stacked along the batch.
- Recomputation starts at ``start_layer``: sources below it are read from a cached clean run (valid whenever
  the masks leave every edge into those layers intact, as ACDC's reverse topological order guarantees).
- Edge attribution (EAP) needs d(metric)/d(input_d) for every destination: ``probes`` adds a zero tensor
  with ``requires_grad`` to each input, and one backward pass fills all their gradients.
- Node ablation is a mask whose source row is 0.

The forward over plain tensors is checked against TransformerBridge's own outputs (``check_against_bridge``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor

from discovery.graph import ComponentGraph, Granularity, ModelShape
from discovery.weights import GPT2Weights, activation, layer_norm


@dataclass
class EngineOutput:
    logits: Tensor  # [C, B, V] at the last position, or [C, B, P, V] with all_positions
    sources: Optional[Tensor] = None  # [C, S, B, P, d] source outputs, when asked for
    probes: list[Tensor] = field(default_factory=list)  # per layer: heads [C*B, P, 3, H, d], mlp [C*B, P, d]; then logits


class Engine:
    """Own GPT-2 forward with per-edge masks. Holds weights; holds no activations between calls."""

    def __init__(self, weights: GPT2Weights):
        self.w = weights
        L, H = weights.n_layers, weights.n_heads
        self.graph = ComponentGraph(ModelShape(L, H), Granularity.QKV)
        self.n_sources = len(self.graph.sources)
        self.n_dests = len(self.graph.destinations)
        self.L, self.H, self.d = L, H, weights.d_model
        self.dest_bias = self._dest_bias()  # [D, d]

    # -- numbering -------------------------------------------------------------------------------------------
    def head_source(self, layer: int, h: int) -> int:
        return 1 + layer * (self.H + 1) + h

    def mlp_source(self, layer: int) -> int:
        return 1 + layer * (self.H + 1) + self.H

    def n_up_heads(self, layer: int) -> int:
        """Sources read by the heads of ``layer`` (and by nothing below it): ``sources[:n]``."""
        return 1 + layer * (self.H + 1)

    def head_dests(self, layer: int) -> slice:
        """Destination columns of layer's heads, ordered head-major then q, k, v."""
        start = layer * (3 * self.H + 1)
        return slice(start, start + 3 * self.H)

    def mlp_dest(self, layer: int) -> int:
        return layer * (3 * self.H + 1) + 3 * self.H

    @property
    def logits_dest(self) -> int:
        return self.n_dests - 1

    def _dest_bias(self) -> Tensor:
        w = self.w
        cum = torch.cumsum(w.b_O, dim=0)  # cum[l] = sum of b_O over layers <= l
        zero = torch.zeros_like(w.b_O[0])
        rows = []
        for layer in range(self.L):
            below = cum[layer - 1] if layer > 0 else zero
            rows += [below] * (3 * self.H) + [cum[layer]]
        rows.append(cum[-1])
        return torch.stack(rows)

    # -- the forward -----------------------------------------------------------------------------------------
    def embed(self, tokens: Tensor) -> Tensor:
        """The embed source's output ``[B, P, d]``: token plus position embeddings."""
        P = tokens.shape[1]
        return self.w.W_E[tokens] + self.w.W_pos[:P]

    def run(self, tokens: Tensor, *, embed: Optional[Tensor] = None, all_positions: bool = False) -> EngineOutput:
        """The unpatched model, keeping every source's output ``[1, S, B, P, d]``."""
        return self.forward(tokens, embed=embed, return_sources=True, all_positions=all_positions)

    def forward(
        self,
        tokens: Tensor,
        *,
        masks: Optional[Tensor] = None,
        patch: Optional[Tensor] = None,
        clean: Optional[Tensor] = None,
        start_layer: int = 0,
        embed: Optional[Tensor] = None,
        probes: bool = False,
        return_sources: bool = False,
        all_positions: bool = False,
    ) -> EngineOutput:
        """Run ``C`` masked copies of the model on ``tokens`` ``[B, P]``.

        masks: ``[C, S, D]`` (1 keeps an edge, 0 patches it; fractions interpolate) or None for the plain model.
        patch: ``[S, B or 1, P, d]`` values for patched edges (needed with masks).
        clean: ``[S, B, P, d]`` cached outputs of the unpatched model, read for the sources below ``start_layer``.
        embed: ``[B, P, d]`` replaces the embed source's output (used to interpolate inputs).
        """
        B, P = tokens.shape
        C = 1 if masks is None else masks.shape[0]
        if masks is not None and patch is None:
            raise ValueError("masks need patch values")
        if start_layer > 0 and clean is None:
            raise ValueError("starting above layer 0 needs the clean run's source outputs")
        state = _RunState(self, C, B, P, masks, patch, clean, start_layer, embed, tokens, probes, return_sources)
        for layer in range(start_layer, self.L):
            state.attention_layer(layer)
            state.mlp_layer(layer)
        return state.finish(all_positions)

    # -- self-check ------------------------------------------------------------------------------------------
    def check_against_bridge(self, bridge: Any, tokens: Tensor, atol: float = 1e-4) -> float:
        """Max |logit difference| between this engine and the bridge on ``tokens``; raises if above ``atol``.

        Run at load time on a few prompts, so a TransformerLens change that alters weight processing is caught
        before any discovery result is computed on wrong numbers.
        """
        with torch.no_grad():
            ours = self.forward(tokens, all_positions=True).logits[0].float()
            theirs = bridge(tokens).float()
        diff = float((ours - theirs).abs().max())
        if not diff <= atol:
            raise RuntimeError(f"patching engine disagrees with TransformerBridge by {diff:.3g} (> {atol})")
        return diff


class _RunState:
    """The work of one ``Engine.forward`` call: per-copy source deltas and the running inputs."""

    def __init__(
        self, engine: Engine, C: int, B: int, P: int, masks: Optional[Tensor], patch: Optional[Tensor],
        clean: Optional[Tensor], start_layer: int, embed: Optional[Tensor], tokens: Tensor,
        probes: bool, return_sources: bool,
    ):
        self.e, self.w = engine, engine.w
        self.C, self.B, self.P, self.N = C, B, P, C * B
        self.masks, self.patch = masks, patch
        self.want_probes, self.return_sources = probes, return_sources
        self.probes: list[Tensor] = []
        d = engine.d
        self.n_shared = engine.n_up_heads(start_layer)
        # Sources below start_layer are the same in every copy.
        shared = clean[: self.n_shared] if clean is not None else None
        if start_layer == 0:
            emb = embed if embed is not None else engine.embed(tokens)
            shared = emb.unsqueeze(0)
        assert shared is not None
        self.shared_out = shared  # [S0, B, P, d]
        # Per-copy outputs of the recomputed sources, stored as deltas from the patch value: [C, S - S0, B*P*d].
        self.n_local = engine.n_sources - self.n_shared
        dtype = self.w.dtype
        # The plain model needs no per-source record unless the caller wants the outputs back.
        self.store = masks is not None or return_sources
        shape = (C, self.n_local, B * P * d) if self.store else (0,)
        self.local = torch.empty(shape, dtype=dtype, device=self.w.device)
        if masks is None:
            # Plain model: one running residual stream (sum of all outputs so far plus biases).
            self.resid = shared.sum(0) + (engine.dest_bias[engine.head_dests(start_layer).start] if start_layer else 0)
            self.resid = self.resid.reshape(1, B, P, d).expand(C, B, P, d).reshape(self.N, P, d)
        else:
            self.masks = masks.to(dtype)
            self.patch_cum = torch.cumsum(patch, dim=0)  # [S, B|1, P, d]: sum of patch values of sources < s+1
            self.shared_delta = (shared - patch[: self.n_shared]).reshape(self.n_shared, -1)  # [S0, B*P*d]

    # -- inputs ----------------------------------------------------------------------------------------------
    def _mixed_inputs(self, cols: slice, n_up: int) -> Tensor:
        """Inputs of destination columns ``cols`` (all reading ``sources[:n_up]``): ``[N, P, Dc, d]``."""
        assert self.masks is not None and self.patch is not None
        B, P, d, C = self.B, self.P, self.e.d, self.C
        m = self.masks[:, :, cols]  # [C, S, Dc]
        Dc = m.shape[-1]
        mixed = torch.matmul(m[:, : self.n_shared].transpose(1, 2), self.shared_delta)  # [C, Dc, B*P*d]
        n_loc = n_up - self.n_shared
        if n_loc > 0:
            mixed = mixed + torch.bmm(m[:, self.n_shared : n_up].transpose(1, 2), self.local[:, :n_loc])
        mixed = mixed.view(C, Dc, B, P, d)
        base = self.patch_cum[n_up - 1]  # [B|1, P, d]
        bias = self.e.dest_bias[cols]  # [Dc, d]
        x = mixed + base.unsqueeze(0).unsqueeze(0) + bias.view(1, Dc, 1, 1, d)
        return x.permute(0, 2, 3, 1, 4).reshape(self.N, P, Dc, d)

    def _add_source(self, out: Tensor, source: int) -> None:
        """Record a recomputed source's output ``[N, P, d]`` for later destinations."""
        if not self.store:
            return
        delta = out if self.patch is None else out.view(self.C, self.B, self.P, -1) - self.patch[source]
        self.local[:, source - self.n_shared] = delta.reshape(self.C, -1)

    def _probe(self, x: Tensor) -> Tensor:
        if not self.want_probes:
            return x
        probe = torch.zeros_like(x, requires_grad=True)
        self.probes.append(probe)
        return x + probe

    # -- layers ----------------------------------------------------------------------------------------------
    def attention_layer(self, layer: int) -> None:
        e, w, H, P = self.e, self.w, self.e.H, self.P
        if self.masks is None:
            x = self.resid.unsqueeze(2).expand(self.N, P, 3 * H, e.d) if self.want_probes else None
            if x is not None:
                x = self._probe(x).view(self.N, P, H, 3, e.d)
        else:
            x = self._probe(self._mixed_inputs(e.head_dests(layer), e.n_up_heads(layer))).view(self.N, P, H, 3, e.d)
        if x is None:
            xn = layer_norm(self.resid, _at(w.ln1_w, layer), _at(w.ln1_b, layer), w.eps)
            q = torch.einsum("npd,hde->nphe", xn, w.W_Q[layer])
            k = torch.einsum("npd,hde->nphe", xn, w.W_K[layer])
            v = torch.einsum("npd,hde->nphe", xn, w.W_V[layer])
        else:
            xn = layer_norm(x, _at(w.ln1_w, layer), _at(w.ln1_b, layer), w.eps)
            q = torch.einsum("nphd,hde->nphe", xn[:, :, :, 0], w.W_Q[layer])
            k = torch.einsum("nphd,hde->nphe", xn[:, :, :, 1], w.W_K[layer])
            v = torch.einsum("nphd,hde->nphe", xn[:, :, :, 2], w.W_V[layer])
        q, k, v = q + w.b_Q[layer], k + w.b_K[layer], v + w.b_V[layer]
        z = _attend(q, k, v, w.attn_scale)  # [N, P, H, e]
        result = torch.einsum("nphe,hed->nphd", z, w.W_O[layer])  # [N, P, H, d]
        for h in range(H):
            self._add_source(result[:, :, h], e.head_source(layer, h))
        if self.masks is None:
            self.resid = self.resid + result.sum(2) + w.b_O[layer]

    def mlp_layer(self, layer: int) -> None:
        e, w = self.e, self.w
        if self.masks is None:
            x = self._probe(self.resid)
        else:
            x = self._probe(self._mixed_inputs(slice(e.mlp_dest(layer), e.mlp_dest(layer) + 1),
                                               e.mlp_source(layer))[:, :, 0])
        xn = layer_norm(x, _at(w.ln2_w, layer), _at(w.ln2_b, layer), w.eps)
        hidden = activation(xn @ w.W_in[layer] + w.b_in[layer], w.act_fn)
        out = hidden @ w.W_out[layer] + w.b_out[layer]
        self._add_source(out, e.mlp_source(layer))
        if self.masks is None:
            self.resid = self.resid + out

    def finish(self, all_positions: bool) -> EngineOutput:
        e, w = self.e, self.w
        if self.masks is None:
            x = self.resid
        else:
            x = self._mixed_inputs(slice(e.logits_dest, e.logits_dest + 1), e.n_sources)[:, :, 0]
        if not all_positions:
            x = x[:, -1:]
        x = self._probe(x)
        xn = layer_norm(x, w.lnf_w, w.lnf_b, w.eps)
        logits = xn @ w.W_U + w.b_U  # [N, P', V]
        logits = logits.view(self.C, self.B, *logits.shape[1:])
        if not all_positions:
            logits = logits[:, :, 0]
        return EngineOutput(logits=logits, sources=self._sources() if self.return_sources else None,
                            probes=self.probes)

    def _sources(self) -> Tensor:
        """All source outputs ``[C, S, B, P, d]`` (shared ones broadcast over copies)."""
        C, B, P, d = self.C, self.B, self.P, self.e.d
        local = self.local.view(C, self.n_local, B, P, d)
        if self.patch is not None:
            local = local + self.patch[self.n_shared :].unsqueeze(0)
        shared = self.shared_out.unsqueeze(0).expand(C, *self.shared_out.shape)
        return torch.cat([shared, local], dim=1)


def _at(t: Optional[Tensor], layer: int) -> Optional[Tensor]:
    return None if t is None else t[layer]


def _attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Causal softmax attention per head; q, k, v ``[N, P, H, e]`` -> z ``[N, P, H, e]``."""
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, scale=scale
    )
    return out.transpose(1, 2)
