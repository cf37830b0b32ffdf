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
  the masks leave every edge into those layers intact, as ACDC's reverse topological order guarantees). With a
  ``base`` (a circuit already run, as ACDC's current one), every source the copies leave as it was there is read
  too; the rest is computed once when alike in every copy, per copy otherwise, and at the last position alone
  when nothing reads it elsewhere (``discovery.masked``).
- Edge attribution (EAP) needs d(metric)/d(input_d) for every destination: ``probes`` adds a zero tensor
  with ``requires_grad`` to each input, and one backward pass fills all their gradients.
- Node ablation is a mask whose source row is 0.

The forward over plain tensors is checked against TransformerBridge's own outputs (``check_against_bridge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor

from discovery.graph import ComponentGraph, Granularity, ModelShape
from discovery.masked import MaskedRun
from discovery.weights import GPT2Weights, activation, layer_norm


class Probes(list):
    """Zero tensors with ``requires_grad`` added to destination inputs: after a backward pass each one's ``.grad``
    is d(metric)/d(that input), which is all edge attribution needs. Off, it passes inputs through."""

    def __init__(self, on: bool):
        super().__init__()
        self.on = on

    def __call__(self, x: Tensor) -> Tensor:
        if not self.on:
            return x
        probe = torch.zeros_like(x, requires_grad=True)
        self.append(probe)
        return x + probe


@dataclass
class EngineOutput:
    logits: Tensor  # [C, B, V] at the last position, or [C, B, P, V] with all_positions
    sources: Optional[Tensor] = None  # [C, S, B, P, d] source outputs, when asked for
    # per layer: heads [B, P, 3H, d] (head-major, then q, k, v), MLP [B, P, d]; then logits [B, P or 1, d]
    probes: list[Tensor] = field(default_factory=list)
    masked: Optional[MaskedRun] = None  # the masked run, whose copies can become a base (``MaskedRun.adopt``)


class PatchingEngine:
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

    def layer_of_source(self, s: int) -> int:
        """The layer of source ``s`` (the embed counts as layer 0; ``n_sources`` gives ``L``)."""
        return max(s - 1, 0) // (self.H + 1)

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
        patch_cum: Optional[Tensor] = None,
        clean: Optional[Tensor] = None,
        start_layer: int = 0,
        embed: Optional[Tensor] = None,
        probes: bool = False,
        return_sources: bool = False,
        all_positions: bool = False,
        positions: Optional[Tensor] = None,
        extra: Optional[tuple[list[int], Tensor]] = None,
        base: Optional[tuple[Tensor, Tensor]] = None,
    ) -> EngineOutput:
        """Run ``C`` masked copies of the model on ``tokens`` ``[B, P]``.

        masks: ``[C, S, D]`` (1 keeps an edge, 0 patches it; fractions interpolate) or None for the plain model.
        patch: ``[S, B or 1, P, d]`` values for patched edges (needed with masks); ``patch_cum``, its cumulative
        sum over sources, may be passed by callers that reuse one patch for many forwards.
        clean: ``[S, B, P, d]`` cached outputs of the unpatched model, read for the sources below ``start_layer``.
        embed: ``[B, P, d]`` replaces the embed source's output (used to interpolate inputs).
        positions: ``[P]`` bool; masks apply only at these positions, elsewhere every edge is kept.
        extra: ``(cols, deltas)``: copy ``c``'s destination ``cols[c]`` gets ``deltas[c]`` ``[B, P, d]`` added to its
        input (``discovery.masked``).
        base: ``(deltas [S, B, P, d], mask [S, D])``: the source outputs minus ``patch`` of a circuit already run on
        ``tokens`` (``circuit_deltas``; ACDC's current circuit), whose masks agree with ``masks`` below
        ``start_layer``: a source whose inputs are as in that circuit in every copy is read, not recomputed.
        """
        B, P = tokens.shape
        if masks is not None and patch is None:
            raise ValueError("masks need patch values")
        if start_layer > 0 and clean is None and base is None:
            raise ValueError("starting above layer 0 needs the clean run's source outputs")
        if probes and masks is not None:
            # The masked run writes its per-source buffers in place, which autograd cannot differentiate through.
            raise ValueError("probes need the plain model (masks=None)")
        run: _PlainRun | MaskedRun
        if masks is None:
            shared = self._shared_sources(tokens, clean, start_layer, embed)
            run = _PlainRun(self, B, P, shared, start_layer, probes, return_sources)
        else:
            assert patch is not None
            run = self._masked_run(tokens, masks, patch, patch_cum, clean, start_layer, embed, positions, extra,
                                   base, prune=not return_sources, all_positions=all_positions)
        self._layers(run, start_layer)
        logits = run.final(all_positions)
        return EngineOutput(logits=logits, sources=run.sources() if return_sources else None, probes=list(run.probes),
                            masked=run if isinstance(run, MaskedRun) else None)

    def circuit_deltas(self, tokens: Tensor, mask: Tensor, *, patch: Tensor, patch_cum: Optional[Tensor] = None,
                       clean: Optional[Tensor] = None, start_layer: int = 0, positions: Optional[Tensor] = None,
                       base: Optional[tuple[Tensor, Tensor]] = None, in_place: bool = False) -> Tensor:
        """One circuit's source outputs minus ``patch``, ``[S, B, P, d]``, without its logits: the ``base`` of later
        runs (arguments as ``forward``'s; ``mask`` ``[S, D]``). Computed only where the circuit's readers need them
        (``discovery.masked``), zero elsewhere: a valid base for masks that keep a subset of ``mask``'s edges, as
        ACDC's later candidates do. ``in_place``: overwrite ``base``'s deltas (no copy; that base is then gone)."""
        run = self._masked_run(tokens, mask.unsqueeze(0), patch, patch_cum, clean, start_layer, None, positions,
                               None, base, prune=True, all_positions=False)
        self._layers(run, start_layer)
        return run.deltas(in_place=in_place and base is not None)

    def _masked_run(self, tokens: Tensor, masks: Tensor, patch: Tensor, patch_cum: Optional[Tensor],
                    clean: Optional[Tensor], start_layer: int, embed: Optional[Tensor], positions: Optional[Tensor],
                    extra: Optional[tuple[list[int], Tensor]], base: Optional[tuple[Tensor, Tensor]], *,
                    prune: bool, all_positions: bool) -> MaskedRun:
        S0 = self.n_up_heads(start_layer)
        if base is not None:
            given = base[0]
        else:
            given = self._shared_sources(tokens, clean, start_layer, embed) - patch[:S0]
        return MaskedRun(self, masks, patch, given, S0, patch_cum, positions, extra,
                         reference=None if base is None else base[1], prune=prune, all_positions=all_positions)

    def _layers(self, run: "_PlainRun | MaskedRun", start_layer: int) -> None:
        for layer in range(start_layer, self.L):
            run.attention_layer(layer)
            run.mlp_layer(layer)

    def _shared_sources(self, tokens: Tensor, clean: Optional[Tensor], start_layer: int,
                        embed: Optional[Tensor]) -> Tensor:
        """Outputs ``[S0, B, P, d]`` of the sources below ``start_layer``: the same in every copy."""
        if start_layer == 0:
            return (embed if embed is not None else self.embed(tokens)).unsqueeze(0)
        assert clean is not None
        return clean[: self.n_up_heads(start_layer)]

    # -- the pieces both runs share --------------------------------------------------------------------------
    def attention(self, x: Tensor, layer: int, heads: Optional[Sequence[int]] = None,
                  index: Optional[Tensor] = None) -> Tensor:
        """Per-head results ``[n, P, Hs, d]`` of ``heads`` (default: all of the layer's).

        ``x`` is one shared residual ``[n, P, d]``, per-head inputs ``[n, P, Hs, 3, d]`` (q, k, v), or distinct
        inputs ``[n, P, U, d]`` with ``index`` ``[Hs, 3]`` saying which one each head's q, k and v read.
        LayerNorm runs once per distinct input."""
        w = self.w
        idx = None if heads is None or len(heads) == self.H else torch.tensor(list(heads), device=x.device)
        pick = (lambda t: t) if idx is None else (lambda t: t.index_select(0, idx))
        ln_w, ln_b = _at(w.ln1_w, layer), _at(w.ln1_b, layer)
        W_Q, W_K, W_V = pick(w.W_Q[layer]), pick(w.W_K[layer]), pick(w.W_V[layer])
        if index is not None and bool((index == index.flatten()[0]).all()):
            x, index = x[:, :, 0], None  # every input alike: the plain path
        if index is not None:
            xn = _norm(x, ln_w, ln_b, w.eps)
            q = torch.einsum("nphd,hde->nphe", xn.index_select(2, index[:, 0]), W_Q)
            k = torch.einsum("nphd,hde->nphe", xn.index_select(2, index[:, 1]), W_K)
            v = torch.einsum("nphd,hde->nphe", xn.index_select(2, index[:, 2]), W_V)
        elif x.dim() == 3:
            xn = _norm(x, ln_w, ln_b, w.eps)
            q = torch.einsum("npd,hde->nphe", xn, W_Q)
            k = torch.einsum("npd,hde->nphe", xn, W_K)
            v = torch.einsum("npd,hde->nphe", xn, W_V)
        else:
            xn = _norm(x, ln_w, ln_b, w.eps)
            q = torch.einsum("nphd,hde->nphe", xn[:, :, :, 0], W_Q)
            k = torch.einsum("nphd,hde->nphe", xn[:, :, :, 1], W_K)
            v = torch.einsum("nphd,hde->nphe", xn[:, :, :, 2], W_V)
        q, k, v = q + pick(w.b_Q[layer]), k + pick(w.b_K[layer]), v + pick(w.b_V[layer])
        z = _attend(q, k, v, w.attn_scale)
        return torch.einsum("nphe,hed->nphd", z, pick(w.W_O[layer]))

    def normalize(self, x: Tensor, layer: int) -> Tensor:
        """The attention LayerNorm of ``layer`` over the last axis (once per distinct input)."""
        return _norm(x, _at(self.w.ln1_w, layer), _at(self.w.ln1_b, layer), self.w.eps)

    def project(self, xn: Tensor, layer: int, role: int, heads: Sequence[int]) -> Tensor:
        """Queries (role 0), keys (1) or values (2) ``[N, P, Hs, e]`` of ``heads`` from their normalised inputs
        ``[N, P, Hs, d]``, or from one input ``[N, P, d]`` that they all read."""
        w = self.w
        W = _rows((w.W_Q, w.W_K, w.W_V)[role][layer], heads)
        b = _rows((w.b_Q, w.b_K, w.b_V)[role][layer], heads)
        if xn.dim() == 3:
            return torch.einsum("npd,hde->nphe", xn, W) + b
        return torch.einsum("nphd,hde->nphe", xn, W) + b

    def attend(self, q: Tensor, k: Tensor, v: Tensor, layer: int, heads: Sequence[int]) -> Tensor:
        """Per-head results ``[N, Pq, Hs, d]`` from queries ``[N, Pq, Hs, e]`` and keys and values ``[N, P, Hs, e]``:
        causal when ``Pq = P``; a single query (``Pq = 1``) is the last position, which sees every key."""
        W_O = _rows(self.w.W_O[layer], heads)
        z = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=q.shape[1] > 1,
            scale=self.w.attn_scale,
        ).transpose(1, 2)
        return torch.einsum("nphe,hed->nphd", z, W_O)

    def mlp(self, x: Tensor, layer: int) -> Tensor:
        w = self.w
        xn = _norm(x, _at(w.ln2_w, layer), _at(w.ln2_b, layer), w.eps).reshape(-1, x.shape[-1])
        hidden = activation(torch.addmm(w.b_in[layer], xn, w.W_in[layer]), w.act_fn)
        return torch.addmm(w.b_out[layer], hidden, w.W_out[layer]).view(x.shape)

    def unembed(self, x: Tensor) -> Tensor:
        """Logits ``[..., V]`` from final residuals ``[..., d]``. One ``addmm``: the bias added in the product's
        own pass, where ``@`` then ``+`` writes and rereads every logit (a third of the time, and with KL's full
        vocabulary the unembedding is ACDC's largest single cost on GPT-2 small: ``benchmarks/README.md``)."""
        w = self.w
        xn = _norm(x, w.lnf_w, w.lnf_b, w.eps)
        return torch.addmm(w.b_U, xn.reshape(-1, xn.shape[-1]), w.W_U).view(*xn.shape[:-1], -1)

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


class _PlainRun:
    """The unmasked model: one running residual stream; per-destination inputs only when probed."""

    def __init__(self, engine: PatchingEngine, B: int, P: int, shared: Tensor, start_layer: int, probes: bool,
                 keep: bool):
        self.e, self.B, self.P = engine, B, P
        self.keep = keep
        self.probes = Probes(probes)
        self.outputs: list[Tensor] = list(shared)  # each [B, P, d]
        bias = engine.dest_bias[engine.head_dests(start_layer).start] if start_layer else 0
        self.resid = shared.sum(0) + bias  # [B, P, d]

    def attention_layer(self, layer: int) -> None:
        e = self.e
        x = self.resid
        if self.probes.on:  # one probe per destination: [B, P, 3H, d], head-major then q, k, v
            x = self.probes(x.unsqueeze(2).expand(self.B, self.P, 3 * e.H, e.d)).view(self.B, self.P, e.H, 3, e.d)
        result = e.attention(x, layer)
        if self.keep:
            self.outputs += list(result.unbind(2))
        self.resid = self.resid + result.sum(2) + e.w.b_O[layer]

    def mlp_layer(self, layer: int) -> None:
        out = self.e.mlp(self.probes(self.resid), layer)
        if self.keep:
            self.outputs.append(out)
        self.resid = self.resid + out

    def final(self, all_positions: bool) -> Tensor:
        x = self.resid if all_positions else self.resid[:, -1]
        return self.e.unembed(self.probes(x)).unsqueeze(0)

    def sources(self) -> Tensor:
        return torch.stack(self.outputs).unsqueeze(0)


def _norm(x: Tensor, w: Optional[Tensor], b: Optional[Tensor], eps: float) -> Tensor:
    """LayerNorm over the last axis: torch's fused kernel in float32 (one pass instead of seven), else
    ``weights.layer_norm``, which normalises lower precisions in float32."""
    if x.dtype == torch.float32:
        return torch.nn.functional.layer_norm(x, x.shape[-1:], w, b, eps)
    return layer_norm(x, w, b, eps)


def _rows(t: Tensor, heads: Sequence[int]) -> Tensor:
    """``t[heads]``: a view when the heads are consecutive (most often one head), else a copy."""
    heads = list(heads)
    if heads == list(range(heads[0], heads[-1] + 1)):
        return t[heads[0] : heads[-1] + 1]
    return t.index_select(0, torch.tensor(heads, device=t.device))


def _at(t: Optional[Tensor], layer: int) -> Optional[Tensor]:
    return None if t is None else t[layer]


def _attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Causal softmax attention per head; q, k, v ``[N, P, H, e]`` -> z ``[N, P, H, e]``."""
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, scale=scale
    )
    return out.transpose(1, 2)

