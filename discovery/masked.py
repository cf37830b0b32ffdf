"""The masked run of the engine: ``C`` copies of the model, each with its own edge mask.

Work is only done where it can matter, decided once per run on a CPU copy of the masks (so the layer loop adds no
device synchronisation) by ``plan``:

- *Given* sources are read, not computed: those below the start layer (from the clean run) and, with a ``base``
  (``deltas, mask``: the outputs, minus the patch values, of a circuit already run on these prompts, as ACDC's
  current circuit), every source whose input columns equal ``mask``'s in every copy and which reads only given
  sources: its output is what it was there.
- *Variant* sources, whose output may differ between copies (the mask entries of one of their inputs differ between
  copies, or one input reads a variant source through a kept edge), are computed per copy; every other source is
  computed once for the ``B`` prompts and shared, so a batch of candidates costs what its candidates can change.
  The same holds per head input: a head computed per copy reads its query, key or value once when that input is
  the same in every copy.
- *Needed positions*. The logits read the last position; an MLP or a head's query is needed where its reader needs
  it; a head's keys and values are needed at every position up to the last one it is read at. A source read only
  where the last position is needed (an MLP or head feeding the logits, an MLP feeding such, ...) is computed at
  that position alone, and a source that no copy reads is not computed at all. Late in an ACDC run most of the
  network above a kept edge is of this kind: its per-copy work falls by the prompt length. Off when every source's
  output is asked for (``prune=False``) and with ``positions``.

Stored per source: ``delta = output - patch`` (the quantity the mixing formula multiplies by the mask): the given
deltas in place (no copy), sources computed once in ``[n, B, P, d]``, variant ones per copy in ``[C, V, B, d]`` at
the last position (all of them) and ``[C, Vf, B, P, d]`` (those needed at every position). A source computed at the
last position alone has zeros elsewhere (or nothing, per copy): no reader of those positions reads it through a
nonzero mask entry, and the mixing only includes sources that some copy reads at the destinations mixed.

Positions. With ``positions`` (``[P]`` bool) the masks apply only at those positions; at the others every
destination reads every upstream source as the model does (mask 1), so it is mixed twice, masked and in full,
and the two are joined per position. Such a destination reads variant (or recomputed) sources at the other
positions whatever its mask says, which the analysis takes into account.

Extra input deltas. ``extra = (cols, deltas)`` adds ``deltas[c]`` (``[B, P, d]``) to the input of destination
``cols[c]`` in copy ``c``, on top of what the masks give: path patching through MLPs hands a receiver the input it
would have had with the sender patched and the MLPs between them recomputed (``discovery.methods.path_patching``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor

if TYPE_CHECKING:
    from discovery.engine import PatchingEngine

NONE, LAST, ALL = 0, 1, 2  # the positions at which a source or destination is needed


@dataclass
class Plan:
    """What one masked run computes (host tensors)."""

    computed: Tensor  # [S] bool: computed in this run (the others are given)
    variant: Tensor  # [S] bool: computed per copy
    col_variant: Tensor  # [D] bool: destination inputs that differ between copies
    need: Tensor  # [S] int: NONE, LAST or ALL
    differs: Tensor  # [S, D] bool: mask entries that differ between copies


def plan(engine: "PatchingEngine", host: Tensor, S0: int, *, reference: Optional[Tensor] = None,
         extra_cols: tuple[int, ...] = (), positions: bool = False, prune: bool = False,
         all_positions: bool = False) -> Plan:
    """The analysis of the module docstring over masks ``host`` ``[C, S, D]`` (CPU, float) for a run whose sources
    below ``S0`` are given. ``reference``: the mask of the ``base`` circuit; ``positions``: the masks apply only at
    some positions."""
    e = engine
    S, D, C = e.n_sources, e.n_dests, host.shape[0]
    lo = e.head_dests(e.layer_of_source(S0)).start if S0 < S else e.logits_dest  # columns below are not read
    cols = host[:, :, lo:]
    extra = torch.zeros(D, dtype=torch.bool)
    extra[list(extra_cols)] = True

    def wide(x: Tensor) -> Tensor:  # [S, D - lo] -> [S, D], False below lo
        return torch.cat([torch.zeros(S, lo, dtype=torch.bool), x], 1)

    nonzero0 = wide(cols[0] != 0)
    differs = wide((cols != cols[:1]).any(0))
    moved = ref_read = None
    if reference is not None:
        ref = reference.to("cpu", torch.float32)
        moved = wide((cols != ref[:, lo:]).any(0)) | extra
        ref_read = ref != 0
    computed = torch.zeros(S, dtype=torch.bool)
    variant = torch.zeros(S, dtype=torch.bool)
    col_variant = torch.zeros(D, dtype=torch.bool)

    def flags(dests: Tensor, n_up: int) -> tuple[Tensor, Tensor]:
        """(recomputed, variant) of destination columns ``dests`` reading ``sources[:n_up]``."""
        if moved is None or ref_read is None:
            ch = torch.ones(len(dests), dtype=torch.bool)
        else:
            up = computed[:n_up]
            ch = moved[:n_up, dests].any(0) | (up.unsqueeze(1) & ref_read[:n_up, dests]).any(0)
            if positions:
                ch = ch | bool(up.any())
        if C == 1:
            return ch, torch.zeros_like(ch)
        up_var = variant[:n_up]
        var = differs[:n_up, dests].any(0) | extra[dests] | (up_var.unsqueeze(1) & nonzero0[:n_up, dests]).any(0)
        if positions:
            var = var | bool(up_var.any())
        col_variant[dests] = var
        return ch, ch & var

    for layer in range(e.layer_of_source(S0), e.L):
        heads = e.head_source(layer, 0) + torch.arange(e.H)
        first = e.head_dests(layer).start
        ch, var = flags(torch.arange(first, first + 3 * e.H), e.n_up_heads(layer))
        computed[heads], variant[heads] = ch.view(e.H, 3).any(1), var.view(e.H, 3).any(1)
        m = e.mlp_source(layer)
        ch, var = flags(torch.tensor([e.mlp_dest(layer)]), m)
        computed[m], variant[m] = ch[0], var[0]
    flags(torch.tensor([e.logits_dest]), S)
    need = _needed(e, host, lo, prune and not positions, all_positions)
    return Plan(computed, variant, col_variant, need, differs)


def _needed(e: "PatchingEngine", host: Tensor, lo: int, prune: bool, all_positions: bool) -> Tensor:
    """Per source, the positions some copy reads it at (NONE, LAST or ALL), walking from the logits down."""
    S, D = e.n_sources, e.n_dests
    if not prune:
        return torch.full((S,), ALL, dtype=torch.int64)
    reads = torch.zeros(S, D, dtype=torch.int64)
    reads[:, lo:] = (host[:, :, lo:] != 0).any(0).long()
    need_col = torch.zeros(D, dtype=torch.int64)
    need_col[e.logits_dest] = ALL if all_positions else LAST
    need = torch.full((S,), ALL, dtype=torch.int64)  # given sources: whatever they hold
    for layer in reversed(range(e.L)):
        if e.head_dests(layer).start < lo:  # given from here down
            break
        m = e.mlp_source(layer)
        need[m] = (reads[m] * need_col).max()
        need_col[e.mlp_dest(layer)] = need[m]
        heads = e.head_source(layer, 0) + torch.arange(e.H)
        need[heads] = (reads[heads] * need_col).max(1).values
        first = e.head_dests(layer).start
        cols = need_col[first : first + 3 * e.H].view(e.H, 3)
        cols[:, 0] = need[heads]  # the query: where the head's output is read
        cols[:, 1:] = torch.where(need[heads] > NONE, ALL, NONE).unsqueeze(1)  # keys, values: every position
    return need


class MaskedRun:
    def __init__(self, engine: "PatchingEngine", masks: Tensor, patch: Tensor, given: Tensor, S0: int,
                 patch_cum: Optional[Tensor] = None, positions: Optional[Tensor] = None,
                 extra: Optional[tuple[list[int], Tensor]] = None, reference: Optional[Tensor] = None,
                 prune: bool = False, all_positions: bool = False):
        """``given``: deltas ``[S or S0, B, P, d]`` of the sources read rather than computed (those below ``S0``,
        and with a ``reference`` mask, every source unchanged from that circuit)."""
        self.e = engine
        dtype, device = engine.w.dtype, engine.w.device
        self.masks = masks.to(dtype)
        self.C = masks.shape[0]
        self.S0 = S0
        _, self.B, self.P, d = given.shape
        self.patch = patch
        # [S, B|1, P, d]: summed patch values of sources 0..s (callers that reuse a patch pass it precomputed)
        self.patch_cum = patch_cum if patch_cum is not None else torch.cumsum(patch, dim=0)
        self.probes: list[Tensor] = []  # none: a masked run is not differentiated (its buffers are written in place)
        # [1, 1, 1, P, 1] bool where the masks apply; None when they apply everywhere
        self.positions = None if positions is None or bool(positions.all()) else positions.view(1, 1, 1, -1, 1)
        self.extra_cols: list[int] = list(extra[0]) if extra is not None else []
        self.extra: Optional[Tensor] = extra[1] if extra is not None else None
        host = masks.detach().to("cpu", torch.float32)
        self.host = host
        self.read = (host != 0).any(0)  # [S, D]: whether any copy reads source s at destination d
        self.plan = plan(engine, host, S0, reference=reference, extra_cols=tuple(self.extra_cols),
                         positions=self.positions is not None, prune=prune, all_positions=all_positions)
        self.given = given
        needed = self.plan.need > NONE
        shared = self.plan.computed & ~self.plan.variant & needed
        var = self.plan.variant & needed
        self.own_slot = {s: i for i, s in enumerate(shared.nonzero().flatten().tolist())}
        self.var_slot = {s: i for i, s in enumerate(var.nonzero().flatten().tolist())}
        self.full_slot = {s: i for i, s in enumerate((var & (self.plan.need == ALL)).nonzero().flatten().tolist())}
        # zeros: a source computed at the last position alone leaves 0 (its patch value) elsewhere
        self.own = torch.zeros(len(self.own_slot), self.B, self.P, d, dtype=dtype, device=device)
        self.var_last = torch.empty(self.C, len(self.var_slot), self.B, d, dtype=dtype, device=device)
        self.var_full = torch.empty(self.C, len(self.full_slot), self.B, self.P, d, dtype=dtype, device=device)

    # -- mixing ----------------------------------------------------------------------------------------------
    def _inputs(self, cols: list[int], n_up: int, per_copy: bool, last: bool) -> tuple[Tensor, list[int]]:
        """Distinct inputs ``[n, U, B, P', d]`` of destinations ``cols`` reading ``sources[:n_up]`` (n = C or 1;
        P' = 1 with ``last``), and for each destination the index of its input among them (host ints).

        Destinations with the same mask column read the same input; after pruning most columns of a layer
        are alike (all edges patched), so the mixing and LayerNorm work is done once per distinct column."""
        host = self.host[:, :n_up] if per_copy else self.host[:1, :n_up]
        keys = host[:, :, cols].reshape(-1, len(cols)).T  # [Dc, n*n_up]
        distinct, inverse = torch.unique(keys, dim=0, return_inverse=True)
        first = [int((inverse == u).nonzero()[0]) for u in range(distinct.shape[0])]
        if len(first) == len(cols) or set(cols) & set(self.extra_cols):  # an extra delta makes a column its own
            return self._mix(cols, n_up, per_copy, last), list(range(len(cols)))
        return self._mix([cols[i] for i in first], n_up, per_copy, last), inverse.tolist()

    def _mix(self, cols: list[int], n_up: int, per_copy: bool, last: bool = False) -> Tensor:
        """Inputs ``[n, Dc, B, P', d]`` of destinations ``cols`` reading ``sources[:n_up]``; n = C or 1, P' = 1 with
        ``last`` (the last position alone), else P."""
        if last and self.positions is not None:  # the join per position needs them all
            return self._mix(cols, n_up, per_copy)[:, :, :, -1:]
        device, d, B = self.given.device, self.e.d, self.B
        col_idx = torch.tensor(cols, device=device)
        m = (self.masks if per_copy else self.masks[:1]).index_select(2, col_idx)  # [n, S, Dc]
        # Only sources some copy reads here are mixed: after pruning most mask entries are 0, and reading every
        # source's per-copy delta for every layer would make the memory traffic grow with depth squared. Shared
        # sources whose entries are alike in every copy are mixed once; per copy, only those that differ.
        read = self.read[:n_up, cols].any(1)
        shared = read & ~self.plan.variant[:n_up]
        differ = self.plan.differs[:n_up, cols].any(1) if per_copy else torch.zeros_like(read)
        n, Dc, P = (self.C if per_copy else 1), len(cols), (1 if last else self.P)
        base = self.patch_cum[n_up - 1]  # [B|1, P, d]
        offset = (base[:, -1:] if last else base).unsqueeze(0) + self.e.dest_bias.index_select(0, col_idx).view(
            Dc, 1, 1, d)
        offset = offset.expand(Dc, B, P, d).reshape(Dc, B * P * d)  # the patch values summed, and the biases
        where = self.positions
        joined = where is not None  # then the offset goes on after the join per position
        mixed = self._mix_shared(shared & ~differ, m[0], last, torch.zeros_like(offset) if joined else offset)
        mixed = mixed.unsqueeze(0)  # [1, Dc, B*P'*d]
        per_copy_mixed = False  # whether ``mixed`` is a [C, Dc, B*P'*d] tensor of this call's own, added to in place
        # (with every input of a layer distinct, per copy and at every position, a second one was the peak memory)
        if bool((shared & differ).any()):
            mixed = self._mix_shared(shared & differ, m, last).add_(mixed)
            per_copy_mixed = True
        var = (read & self.plan.variant[:n_up]).nonzero().flatten().tolist()
        if per_copy and var:
            buf, slot = (self.var_last, self.var_slot) if last else (self.var_full, self.full_slot)
            slots = [slot[s] for s in var]
            below = [s for s in slot if s < n_up]  # the slots of every variant source upstream: 0 .. len - 1
            if 2 * len(var) >= len(below):  # most are read: no gather, a zero weight for the others
                weights = m.index_select(1, torch.tensor(below, device=device))
                if len(var) < len(below):
                    weights = weights * read[below].to(device, weights.dtype).view(1, -1, 1)
                rows = buf[:, : len(below)].reshape(self.C, len(below), -1)
            else:
                weights = m.index_select(1, torch.tensor(var, device=device))
                rows = buf.index_select(1, torch.tensor(slots, device=device)).reshape(self.C, len(var), -1)
            if per_copy_mixed:
                mixed.baddbmm_(weights.transpose(1, 2), rows)
            else:
                mixed = torch.baddbmm(mixed, weights.transpose(1, 2), rows)
        mixed = mixed.expand(n, Dc, B * P * d).view(n, Dc, B, P, d)
        if where is not None:
            mixed = torch.where(where, mixed, self._full(n_up, per_copy)) + offset.view(1, Dc, B, P, d)
        hits = [(c, cols.index(col)) for c, col in enumerate(self.extra_cols) if col in cols]
        if hits:
            assert self.extra is not None and (per_copy or self.C == 1)
            copies, where = (torch.tensor(x, device=device) for x in zip(*hits))
            deltas = self.extra.index_select(0, copies)
            mixed = mixed.index_put((copies, where), deltas[:, :, -1:] if last else deltas, accumulate=True)
        return mixed

    def _mix_shared(self, sources: Tensor, m: Tensor, last: bool, acc: Optional[Tensor] = None) -> Tensor:
        """The shared (given or computed once) ``sources`` (``[n_up]`` bool) mixed by ``m``: added to ``acc``
        ``[Dc, B*P'*d]`` with ``m`` ``[S, Dc]`` (one copy), or ``[C, Dc, B*P'*d]`` with ``m`` ``[C, S, Dc]``."""
        n_up = len(sources)
        computed = self.plan.computed[:n_up]
        for buf, rows, at in ((self.given, sources & ~computed, None), (self.own, sources & computed, self.own_slot)):
            src = rows.nonzero().flatten()
            if not len(src):
                continue
            # the buffer's rows for sources[:n_up] (given: by source; own: in source order)
            upstream = torch.arange(min(n_up, buf.shape[0])) if at is None else torch.tensor(
                [s for s in at if s < n_up], dtype=torch.long)
            if not last and 2 * len(src) >= len(upstream):  # most are read: no gather, a zero weight for the rest
                weights = m.index_select(m.dim() - 2, upstream.to(m.device))
                if len(src) < len(upstream):
                    weights = weights * rows[upstream].to(m.device, m.dtype).unsqueeze(-1)
                weights = weights.transpose(-1, -2)  # [(C,) Dc, rows]
                values = buf[: len(upstream)].reshape(len(upstream), -1)
            else:
                idx = src if at is None else torch.tensor([at[s] for s in src.tolist()])
                weights = m.index_select(m.dim() - 2, src.to(m.device)).transpose(-1, -2)  # [(C,) Dc, k]
                values = self._rows(buf, idx, last).reshape(len(src), -1)
            if acc is not None and m.dim() == 2:
                acc = torch.addmm(acc, weights, values)
            else:
                part = torch.matmul(weights, values)
                acc = part if acc is None else acc + part
        assert acc is not None
        return acc

    def _rows(self, buf: Tensor, idx: Tensor, last: bool) -> Tensor:
        """Rows ``idx`` of a ``[n, B, P, d]`` buffer, at the last position alone with ``last``."""
        return (buf[:, :, -1] if last else buf).index_select(0, idx.to(buf.device))

    def _full(self, n_up: int, per_copy: bool) -> Tensor:
        """``[n, 1, B, P, d]``: the sum of every upstream source's delta, what an input reads with mask 1.
        (With positions nothing is pruned: every source is computed, at every position.)"""
        computed, variant = self.plan.computed[:n_up], self.plan.variant[:n_up]
        full = self._rows(self.given, (~computed).nonzero().flatten(), False).sum(0)
        own = (computed & ~variant).nonzero().flatten().tolist()
        if own:
            full = full + self._rows(self.own, torch.tensor([self.own_slot[s] for s in own]), False).sum(0)
        full = full.view(1, 1, self.B, self.P, self.e.d)
        var = variant.nonzero().flatten().tolist()
        if per_copy and var:
            slots = torch.tensor([self.full_slot[s] for s in var], device=self.given.device)
            full = full + self.var_full.index_select(1, slots).sum(1).view(self.C, 1, self.B, self.P, self.e.d)
        return full

    def _store(self, sources: list[int], out: Tensor, per_copy: bool) -> None:
        """Keep the outputs ``[n*B, P', k, d]`` of ``sources`` (P' = 1 or P, alike for all) as their deltas from the
        patch values."""
        n, k, P, d = out.shape[0] // self.B, len(sources), out.shape[1], self.e.d
        idx = torch.tensor(sources, device=out.device)
        patch = self.patch.index_select(0, idx)  # [k, B|1, P, d]
        out = out.view(n, self.B, P, k, d).permute(0, 3, 1, 2, 4)  # [n, k, B, P', d]
        if P != self.P:
            patch = patch[:, :, -1:]
        if per_copy:
            if P == self.P:
                delta = _put(self.var_full, [self.full_slot[s] for s in sources], out, patch)
                _put(self.var_last, [self.var_slot[s] for s in sources], delta[:, :, :, -1], None)
            else:
                _put(self.var_last, [self.var_slot[s] for s in sources], out[:, :, :, -1], patch[:, :, -1])
        elif P == self.P:
            _put(self.own.unsqueeze(0), [self.own_slot[s] for s in sources], out[:1], patch)
        else:
            _put(self.own[:, :, -1:].unsqueeze(0), [self.own_slot[s] for s in sources], out[:1], patch)

    # -- layers ----------------------------------------------------------------------------------------------
    def attention_layer(self, layer: int) -> None:
        e, plan = self.e, self.plan
        todo = [h for h in range(e.H) if h + e.head_source(layer, 0) in self.own_slot or
                h + e.head_source(layer, 0) in self.var_slot]
        for per_copy in (False, True):
            for need in (ALL, LAST):
                heads = [h for h in todo if bool(plan.variant[e.head_source(layer, h)]) == per_copy
                         and int(plan.need[e.head_source(layer, h)]) == need]
                if heads:
                    self._heads(layer, heads, per_copy, need == LAST)

    def _heads(self, layer: int, heads: list[int], per_copy: bool, last: bool) -> None:
        """Heads computed alike (once or per copy; at every position or the last alone): their queries, keys and
        values (an input that is the same in every copy is read once), then attention."""
        e = self.e
        first, n_up = e.head_dests(layer).start, e.n_up_heads(layer)
        n, B = (self.C if per_copy else 1), self.B
        qkv: list[Optional[Tensor]] = [None, None, None]  # each [n, B, P', Hs, e]
        # Inputs read alike (same positions, same per-copy-ness) are mixed together: q, k and v columns with one
        # mask column share one input and one LayerNorm.
        groups: dict[tuple[bool, bool], list[tuple[int, int]]] = {}
        for role in range(3):
            for i, h in enumerate(heads):
                col = first + 3 * h + role
                key = (last and role == 0, per_copy and bool(self.plan.col_variant[col]))
                groups.setdefault(key, []).append((role, i))
        for (at_last, pc), members in groups.items():
            P = 1 if at_last else self.P
            x, index = self._inputs([first + 3 * heads[i] + r for r, i in members], n_up, pc, at_last)
            m = x.shape[0]  # x: [m, U, B, P', d]
            # Each distinct input normalised alone, then projected once for all the heads reading it: never a
            # copy of the inputs per head, nor all of them normalised at once (per copy and at every position,
            # those copies were a run's peak memory).
            for u in dict.fromkeys(index):
                inp = e.normalize(x[:, u], layer).reshape(m * B, P, e.d)
                for role in range(3):
                    pos = [i for j, (r, i) in enumerate(members) if r == role and index[j] == u]
                    if not pos:
                        continue
                    part = e.project(inp, layer, role, [heads[i] for i in pos]).view(m, B, P, len(pos), -1)
                    if len(pos) == len(heads) and m == n:
                        qkv[role] = part
                        continue
                    out = qkv[role]
                    if out is None:
                        out = torch.empty(n, B, P, len(heads), part.shape[-1], dtype=part.dtype, device=part.device)
                        qkv[role] = out
                    out[:, :, :, pos] = part
        q, k, v = (t.reshape(n * B, t.shape[2], len(heads), -1) for t in qkv if t is not None)
        result = e.attend(q, k, v, layer, heads)  # [n*B, P', Hs, d]
        self._store([e.head_source(layer, h) for h in heads], result, per_copy)

    def mlp_layer(self, layer: int) -> None:
        e, plan = self.e, self.plan
        s = e.mlp_source(layer)
        if s not in self.own_slot and s not in self.var_slot:
            return
        per_copy = bool(plan.variant[s])
        x = self._mix([e.mlp_dest(layer)], s, per_copy, last=int(plan.need[s]) == LAST)[:, 0]  # [n, B, P', d]
        self._store([s], e.mlp(x.reshape(-1, x.shape[2], e.d), layer).unsqueeze(2), per_copy)

    def final(self, all_positions: bool) -> Tensor:
        e = self.e
        per_copy = bool(self.plan.col_variant[e.logits_dest])
        x = self._mix([e.logits_dest], e.n_sources, per_copy, last=not all_positions)[:, 0]
        logits = e.unembed(x.reshape(-1, x.shape[2], e.d) if all_positions else x.reshape(-1, e.d))
        logits = logits.view(-1, self.B, *logits.shape[1:])
        return logits if per_copy else logits.expand(self.C, *logits.shape[1:])

    def deltas(self, in_place: bool = False) -> Tensor:
        """Every source's delta ``[S, B, P, d]`` shared by the copies (a variant source's row is left as given);
        ``in_place`` writes the computed rows into the given deltas (which then belong to this run's circuit)."""
        S = self.e.n_sources
        if self.given.shape[0] == S:
            out = self.given if in_place else self.given.clone()
        else:
            out = torch.zeros(S, self.B, self.P, self.e.d, dtype=self.given.dtype, device=self.given.device)
            out[: self.given.shape[0]] = self.given
        if self.own_slot:
            out[torch.tensor(list(self.own_slot), device=out.device)] = self.own
        return out

    def adopt(self, copy: int) -> tuple[Tensor, Tensor]:
        """Make copy ``copy`` the base of later runs: writes its computed deltas into the given ones (the base this
        run read, which is gone) and returns ``(deltas, mask)``. Its sources are there at every position that a
        circuit keeping a subset of its edges reads (the needed positions of this run cover the copy's)."""
        if self.given.shape[0] != self.e.n_sources:
            raise ValueError("only a run made with a base can hand one on")
        out = self.deltas(in_place=True)
        for s, slot in self.var_slot.items():
            if s in self.full_slot:
                out[s] = self.var_full[copy, self.full_slot[s]]
            else:
                out[s, :, :-1] = 0
                out[s, :, -1] = self.var_last[copy, slot]
        return out, self.masks[copy].detach().clone()

    def sources(self) -> Tensor:
        """All source outputs ``[C, S, B, P, d]`` (a run made with ``prune=False``)."""
        assert bool((self.plan.need == ALL).all())
        out = (self.deltas() + self.patch).unsqueeze(0).repeat(self.C, 1, 1, 1, 1)
        for s, slot in self.full_slot.items():
            out[:, s] = self.var_full[:, slot] + self.patch[s]
        return out


def _put(buf: Tensor, slots: list[int], value: Tensor, minus: Optional[Tensor]) -> Tensor:
    """``buf[:, slots] = value - minus`` (``minus`` broadcast; None: nothing subtracted), written in place into
    the buffer's view when the slots are consecutive; returns the written ``[n, k, ...]``."""
    if slots == list(range(slots[0], slots[0] + len(slots))):
        view = buf[:, slots[0] : slots[0] + len(slots)]
        if minus is None:
            view.copy_(value)
        else:
            torch.sub(value, minus, out=view)
        return view
    delta = value if minus is None else value - minus
    buf[:, slots] = delta
    return delta
