"""The masked run of the engine: ``C`` copies of the model, each with its own edge mask.

Work is only done per copy where copies can differ. A source is *variant* when its output may differ between
copies: when the mask entries of one of its inputs differ between copies, or when one of its inputs reads a
variant source through a kept edge. Everything else (the sources below the start layer, and, late in an ACDC
run, most heads, whose edges are pruned) is computed once for the ``B`` prompts and shared, so a batch of
candidates costs what its candidates can actually change. The analysis runs on a CPU copy of the masks, so it
adds no device synchronisation inside the layer loop.

Stored per source: ``delta = output - patch`` (the quantity the mixing formula multiplies by the mask), in a
shared buffer ``[S, B*P*d]`` for invariant sources and a per-copy buffer ``[C, S, B*P*d]`` for variant ones.

Positions. With ``positions`` (``[P]`` bool) the masks apply only at those positions; at the others every
destination reads every upstream source as the model does (mask 1), so it is mixed twice, masked and in full,
and the two are joined per position. Such a destination reads variant sources at the other positions whatever
its mask says, which the variance analysis takes into account.

Extra input deltas. ``extra = (cols, deltas)`` adds ``deltas[c]`` (``[B, P, d]``) to the input of destination
``cols[c]`` in copy ``c``, on top of what the masks give: path patching through MLPs hands a receiver the input it
would have had with the sender patched and the MLPs between them recomputed (``discovery.methods.path_patching``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor

if TYPE_CHECKING:
    from discovery.engine import PatchingEngine


class MaskedRun:
    def __init__(self, engine: "PatchingEngine", masks: Tensor, patch: Tensor, shared: Tensor,
                 patch_cum: Optional[Tensor] = None, positions: Optional[Tensor] = None,
                 extra: Optional[tuple[list[int], Tensor]] = None):
        self.e = engine
        dtype, device = engine.w.dtype, engine.w.device
        self.masks = masks.to(dtype)
        self.C = masks.shape[0]
        self.S0, self.B, self.P, d = shared.shape
        self.NB = self.B * self.P * d
        self.patch = patch
        # [S, B|1, P, d]: summed patch values of sources 0..s (callers that reuse a patch pass it precomputed)
        self.patch_cum = patch_cum if patch_cum is not None else torch.cumsum(patch, dim=0)
        self.probes: list[Tensor] = []  # none: a masked run is not differentiated (its buffers are written in place)
        S = engine.n_sources
        self.inv_buf = torch.empty(S, self.NB, dtype=dtype, device=device)
        self.inv_sources: list[int] = list(range(self.S0))
        self.inv_buf[: self.S0] = (shared - patch[: self.S0]).reshape(self.S0, -1)
        self.var_sources: list[int] = []
        self.var_buf: Optional[Tensor] = None  # [C, S, B*P*d], allocated at the first variant source
        # Mask analysis on the host: which entries differ between copies, and copy 0's nonzero entries.
        host = masks.detach().to("cpu", torch.float32)
        self.host = host
        self.differs = (host != host[:1]).any(0)  # [S, D]
        self.nonzero0 = host[0] != 0  # [S, D]
        self.read = (host != 0).any(0)  # [S, D]: whether any copy reads source s at destination d
        self.variant = torch.zeros(S, dtype=torch.bool)
        # [1, 1, 1, P, 1] bool where the masks apply; None when they apply everywhere
        self.positions = None if positions is None or bool(positions.all()) else positions.view(1, 1, 1, -1, 1)
        self.extra_cols: list[int] = list(extra[0]) if extra is not None else []
        self.extra: Optional[Tensor] = extra[1] if extra is not None else None

    # -- analysis --------------------------------------------------------------------------------------------
    def _variant_columns(self, cols: list[int], n_up: int) -> list[bool]:
        if self.C == 1:
            return [False] * len(cols)
        c = torch.tensor(cols)
        differ = self.differs[:n_up, c].any(0) | torch.tensor([col in self.extra_cols for col in cols])
        feeds = (self.nonzero0[:n_up, c] & self.variant[:n_up].unsqueeze(1)).any(0)
        if self.positions is not None:  # elsewhere every upstream source is read
            feeds = feeds | bool(self.variant[:n_up].any())
        return (differ | feeds).tolist()

    # -- mixing ----------------------------------------------------------------------------------------------
    def _inputs(self, cols: list[int], n_up: int, per_copy: bool) -> tuple[Tensor, Tensor]:
        """Distinct inputs ``[n, U, B, P, d]`` of destinations ``cols`` reading ``sources[:n_up]`` (n = C or 1),
        and for each destination the index ``[Dc]`` of its input among them.

        Destinations with the same mask column read the same input; after pruning most columns of a layer
        are alike (all edges patched), so the mixing and LayerNorm work is done once per distinct column."""
        device = self.inv_buf.device
        host = self.host[:, :n_up] if per_copy else self.host[:1, :n_up]
        keys = host[:, :, cols].reshape(-1, len(cols)).T  # [Dc, n*n_up]
        distinct, inverse = torch.unique(keys, dim=0, return_inverse=True)
        first = [int((inverse == u).nonzero()[0]) for u in range(distinct.shape[0])]
        if len(first) == len(cols) or set(cols) & set(self.extra_cols):  # an extra delta makes a column its own
            first = list(range(len(cols)))
            inverse = torch.arange(len(cols))
        return self._mix([cols[i] for i in first], n_up, per_copy), inverse.to(device)

    def _mix(self, cols: list[int], n_up: int, per_copy: bool) -> Tensor:
        """Inputs ``[n, Dc, B, P, d]`` of destinations ``cols`` reading ``sources[:n_up]``; n = C or 1."""
        device = self.inv_buf.device
        col_idx = torch.tensor(cols, device=device)
        m = (self.masks if per_copy else self.masks[:1]).index_select(2, col_idx)  # [n, S, Dc]
        # Only sources some copy reads here are mixed: after pruning most mask entries are 0, and reading every
        # source's per-copy delta for every layer would make the memory traffic grow with depth squared.
        read = self.read[:, cols].any(1).tolist()
        inv = [(slot, s) for slot, s in enumerate(self.inv_sources) if s < n_up and read[s]]
        n, Dc, d = (self.C if per_copy else 1), len(cols), self.e.d
        mixed = torch.zeros(n, Dc, self.NB, dtype=self.inv_buf.dtype, device=device)
        if inv:
            slots, srcs = (torch.tensor(x, device=device) for x in zip(*inv))
            mixed = torch.matmul(m.index_select(1, srcs).transpose(1, 2), self.inv_buf.index_select(0, slots))
        var = [(slot, s) for slot, s in enumerate(self.var_sources) if s < n_up and read[s]]
        if per_copy and var:
            assert self.var_buf is not None
            slots, srcs = (torch.tensor(x, device=device) for x in zip(*var))
            mixed = mixed + torch.bmm(m.index_select(1, srcs).transpose(1, 2), self.var_buf.index_select(1, slots))
        base = self.patch_cum[n_up - 1]  # [B|1, P, d]
        bias = self.e.dest_bias.index_select(0, col_idx).view(1, Dc, 1, 1, d)
        mixed = mixed.view(n, Dc, self.B, self.P, d)
        if self.positions is not None:
            mixed = torch.where(self.positions, mixed, self._full(n_up, per_copy))
        mixed = mixed + base.unsqueeze(0).unsqueeze(0) + bias
        hits = [(c, cols.index(col)) for c, col in enumerate(self.extra_cols) if col in cols]
        if hits:
            assert self.extra is not None and (per_copy or self.C == 1)
            copies, where = (torch.tensor(x, device=device) for x in zip(*hits))
            mixed = mixed.index_put((copies, where), self.extra.index_select(0, copies), accumulate=True)
        return mixed

    def _full(self, n_up: int, per_copy: bool) -> Tensor:
        """``[n, 1, B, P, d]``: the sum of every upstream source's delta, what an input reads with mask 1."""
        inv = [slot for slot, s in enumerate(self.inv_sources) if s < n_up]
        full = self.inv_buf[inv].sum(0).view(1, 1, self.B, self.P, self.e.d)
        var = [slot for slot, s in enumerate(self.var_sources) if s < n_up]
        if per_copy and var:
            assert self.var_buf is not None
            full = full + self.var_buf[:, var].sum(1).view(self.C, 1, self.B, self.P, self.e.d)
        return full

    def _store(self, source: int, out: Tensor, per_copy: bool) -> None:
        """Keep a source's output ``[n*B, P, d]`` as its delta from the patch value."""
        delta = out.reshape(-1, self.B, self.P, self.e.d) - self.patch[source]
        if per_copy:
            if self.var_buf is None:
                self.var_buf = torch.empty(self.C, self.e.n_sources, self.NB, dtype=out.dtype, device=out.device)
            self.var_buf[:, len(self.var_sources)] = delta.reshape(self.C, -1)
            self.var_sources.append(source)
            self.variant[source] = True
        else:
            self.inv_buf[len(self.inv_sources)] = delta.reshape(-1)
            self.inv_sources.append(source)

    # -- layers ----------------------------------------------------------------------------------------------
    def attention_layer(self, layer: int) -> None:
        e = self.e
        first = e.head_dests(layer).start
        cols = list(range(first, first + 3 * e.H))
        n_up = e.n_up_heads(layer)
        flags = self._variant_columns(cols, n_up)
        per_head = [any(flags[3 * h : 3 * h + 3]) for h in range(e.H)]
        for per_copy in (False, True):
            heads = [h for h in range(e.H) if per_head[h] == per_copy]
            if not heads:
                continue
            head_cols = [first + 3 * h + j for h in heads for j in range(3)]
            x, index = self._inputs(head_cols, n_up, per_copy)  # [n, U, B, P, d], [3Hs]
            n, U = x.shape[0], x.shape[1]
            x = x.permute(0, 2, 3, 1, 4).reshape(n * self.B, self.P, U, e.d)
            result = e.attention(x, layer, heads, index=index.view(len(heads), 3))  # [n*B, P, Hs, d]
            for i, h in enumerate(heads):
                self._store(e.head_source(layer, h), result[:, :, i], per_copy)

    def mlp_layer(self, layer: int) -> None:
        e = self.e
        col = e.mlp_dest(layer)
        n_up = e.mlp_source(layer)
        per_copy = self._variant_columns([col], n_up)[0]
        x = self._mix([col], n_up, per_copy)[:, 0]  # [n, B, P, d]
        x = x.reshape(-1, self.P, e.d)
        self._store(e.mlp_source(layer), e.mlp(x, layer), per_copy)

    def final(self, all_positions: bool) -> Tensor:
        e = self.e
        col = e.logits_dest
        per_copy = self._variant_columns([col], e.n_sources)[0]
        x = self._mix([col], e.n_sources, per_copy)[:, 0].reshape(-1, self.P, e.d)
        if not all_positions:
            x = x[:, -1]
        logits = e.unembed(x)
        logits = logits.view(-1, self.B, *logits.shape[1:])
        return logits if per_copy else logits.expand(self.C, *logits.shape[1:])

    def sources(self) -> Tensor:
        """All source outputs ``[C, S, B, P, d]``."""
        out = torch.empty(self.C, self.e.n_sources, self.B, self.P, self.e.d, dtype=self.inv_buf.dtype,
                          device=self.inv_buf.device)
        for slot, s in enumerate(self.inv_sources):
            out[:, s] = self.inv_buf[slot].view(self.B, self.P, -1) + self.patch[s]
        for slot, s in enumerate(self.var_sources):
            assert self.var_buf is not None
            out[:, s] = self.var_buf[:, slot].view(self.C, self.B, self.P, -1) + self.patch[s]
        return out
