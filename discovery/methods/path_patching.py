"""Iterative path patching from a seed circuit.

Wang, Variengien, Conmy, Shlegeris & Steinhardt (2022), "Interpretability in the Wild: a Circuit for Indirect
Object Identification in GPT-2 small", arXiv 2211.00593 (path patching, their section 3 and appendix B).

The path effect of a sender ``s`` on a receiver input ``r`` (a head's q, k or v input, an MLP's input, or the
logits), as Wang et al. define it (section 3.1 and appendix B; ``paths="via-mlps"``, the default): run the model
with ``s``'s output patched and every other attention head frozen at its clean output, the MLPs recomputing, so
that the sender's effect reaches the receiver directly and through every MLP between them; record the
receiver's input; rerun the clean model with only that input replaced, everything downstream recomputing, and
measure. Here the receiver's changed input is computed in closed form, ``delta_r = (patch_s - clean_s) +
sum over MLPs m between s and r of (m's output with s patched and heads frozen - m's clean output)``, the MLPs
run in layer order from the sender's (``_mlp_deltas``), and the rerun is the engine's full model with ``delta_r``
added to ``r``'s input (``discovery.masked``'s extra deltas).

``paths="direct"`` is the direct-edge variant this project used before: only the residual edge ``s -> r`` is
patched (the full mask with that one entry 0), so MLPs between them see the clean sender. Both are checked
against a brute-force implementation of the paper's three steps in the tests. Many edges are evaluated at once
as stacked copies; layers below the receiver are read from the cached clean run.

Sign convention: an edge's score is ``metric(edge patched) - metric(model)``, the raw change (negative for an
edge that carries logit difference). The threshold compares ``|score| / |metric(model)|`` (a share of the
model's metric) for logit-diff and prob-diff, and ``|score|`` itself for ``kl`` (in nats: the model's KL from
itself is 0).

Modes:
- ``nodes`` (Wang et al.'s iterative procedure): receivers start as the seed's nodes (default: the logits);
  every source upstream of a receiver is scored as a sender into each of the receiver's inputs; a sender with
  any edge passing the threshold joins the circuit; the new nodes become the next receivers, until a round
  adds nothing (or ``max_rounds`` is reached). Kept edges are the scored edges that pass the threshold.
- ``edges``: no node is added; every edge between two seed nodes is scored and kept if it passes.

Output: only scored edges appear (kept or not); edges never scored are absent rather than NaN, so "absent"
means "not examined". Nodes: every scored sender and every seed node, kept when in the circuit; a node's score
is its sender edge of largest ``|score|`` (None for a seed node never scored as a sender), and its
``round`` attribute says when it joined (0 for the seed).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Optional, Union

import torch

from discovery.errors import SettingsError
from discovery.graph import QKV, Edge, Granularity, InputName, InvalidKey, Node, NodeKind, feeds, mlp, parse_node
from discovery.methods.base import MethodOutput, Progress, no_progress
from discovery.patching import PatchSetup
from discovery.results import ScoredEdge, ScoredNode

MODES = ("nodes", "edges")
PATHS = ("via-mlps", "direct")
Receiver = Union[Node, tuple[Node, Optional[InputName]]]
_MAX_COPIES = 256  # mask copies built at once (setup.values chunks them further to its memory budget)


def path_patching(
    setup: PatchSetup,
    *,
    threshold: Optional[float] = None,
    seed_nodes: Optional[Iterable[Node | str]] = None,
    mode: str = "nodes",
    max_rounds: Optional[int] = None,
    paths: str = "via-mlps",
    progress: Progress = no_progress,
) -> MethodOutput:
    """Grow (mode ``nodes``) or prune to edges (mode ``edges``) a circuit by single-edge path patching.

    ``threshold``: the share of |metric(model)| (absolute nats for kl) an edge's |effect| needs; ``seed_nodes``:
    the starting circuit (default: the logits; ``parse_node("logits")`` is re-placed at this model's depth);
    ``max_rounds``: the most rounds of receivers in mode ``nodes`` (default: until a round adds nothing; the
    loop always ends, since senders sit strictly upstream of their receivers).
    """
    if threshold is None or not (threshold >= 0 and math.isfinite(threshold)):
        raise SettingsError(f"path patching needs a threshold >= 0 (a share of the model's metric), got {threshold}")
    if mode not in MODES:
        raise SettingsError(f"path patching's mode must be one of {', '.join(MODES)}, got {mode!r}")
    if paths not in PATHS:
        raise SettingsError(f"path patching's paths must be one of {', '.join(PATHS)}, got {paths!r}")
    if max_rounds is not None and (isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1):
        raise SettingsError(f"max_rounds must be a whole number >= 1, got {max_rounds!r}")
    if not setup.metric.spec.differentiable:
        raise SettingsError(f"path patching compares metric changes; {setup.metric.name} moves in steps: use "
                            "logit-diff, prob-diff or kl")
    seed = _seed(setup, seed_nodes)
    scale = _scale(setup)
    if mode == "edges":
        if len(seed) < 2:
            raise SettingsError("mode 'edges' scores the edges between seed nodes: give at least two seed nodes")
        senders = [n for n in seed if n.kind is not NodeKind.LOGITS]
        effects = path_effects(setup, senders, seed, paths=paths, progress=progress)
        rounds, added, stopped = 1, {n: 0 for n in seed}, False
    else:
        effects, added, rounds, stopped = _grow(setup, seed, threshold, scale, max_rounds, paths, progress)
    passes = {e: abs(v) / scale >= threshold for e, v in effects.items()}
    edges = tuple(ScoredEdge(e, float(v), passes[e]) for e, v in sorted(effects.items()))
    return MethodOutput(
        granularity=Granularity.QKV,
        edges=edges,
        nodes=_scored_nodes(effects, added, seed),
        threshold=threshold,
        params={"threshold": threshold, "seed_nodes": [n.key for n in seed], "mode": mode, "paths": paths,
                **({"max_rounds": max_rounds} if max_rounds is not None else {})},
        extras={"model_value": setup.model_value, "rounds": rounds, "stopped_early": stopped,
                "circuit_nodes": [n.key for n in sorted(added)]},
    )


def _grow(
    setup: PatchSetup, seed: list[Node], threshold: float, scale: float, max_rounds: Optional[int], paths: str,
    progress: Progress,
) -> tuple[dict[Edge, float], dict[Node, int], int, bool]:
    """Wang et al.'s loop: score senders into the newest receivers, add those that pass, repeat."""
    added: dict[Node, int] = {n: 0 for n in seed}
    effects: dict[Edge, float] = {}
    receivers, rounds = list(seed), 0
    while receivers and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        new_effects = path_effects(setup, setup.graph.sources, receivers, paths=paths, progress=progress)
        effects.update(new_effects)
        passing = {e.src for e, v in new_effects.items() if abs(v) / scale >= threshold}
        receivers = sorted(n for n in passing if n not in added)
        for n in receivers:
            added[n] = rounds
    return effects, added, rounds, bool(receivers)


def path_effects(
    setup: PatchSetup,
    senders: Iterable[Node],
    receivers: Iterable[Receiver],
    *,
    paths: str = "via-mlps",
    progress: Progress = no_progress,
) -> dict[Edge, float]:
    """``metric(path s -> r patched) - metric(model)`` for every sender ``s`` feeding a receiver input ``r`` (the
    path through the MLPs between them with ``via-mlps``, the one edge with ``direct``).

    A receiver is a node (a head: its q, k and v inputs, each its own edge; an MLP; the logits) or a
    ``(head, "q"|"k"|"v")`` pair. Pairs that are not edges of the graph (a sender not upstream of the receiver,
    the embed as receiver) are skipped. Evaluated as batched single-edge masks, grouped by receiver layer so
    that the layers below each receiver are read from the cached clean run.
    """
    graph = setup.graph
    srcs = [_check(setup, s) for s in senders]
    for s in srcs:
        if s.kind is NodeKind.LOGITS:
            raise SettingsError("the logits send nothing: they cannot be a path patching sender")
    by_layer: dict[int, list[tuple[int, int, Edge]]] = defaultdict(list)
    for dst, inp in _destinations(setup, receivers):
        d = graph.dest_index[(dst, inp)]
        start = setup.engine.L if dst.kind is NodeKind.LOGITS else dst.layer
        for s in dict.fromkeys(srcs):
            if feeds(s, dst):
                by_layer[start].append((graph.source_index[s], d, Edge(s, dst, inp)))
    total = sum(len(v) for v in by_layer.values())
    done, out = 0, {}
    model_value = setup.model_value
    for start in sorted(by_layer):
        pairs = by_layer[start]
        for i in range(0, len(pairs), _MAX_COPIES):
            chunk = pairs[i : i + _MAX_COPIES]
            masks = setup.full_mask(len(chunk))
            if paths == "direct":
                idx = torch.tensor([(i, s, d) for i, (s, d, _) in enumerate(chunk)], device=masks.device)
                masks[idx[:, 0], idx[:, 1], idx[:, 2]] = 0
                values = setup.values(masks, start_layer=start).tolist()
            else:
                extra = ([d for _, d, _ in chunk], _receiver_deltas(setup, [e for _, _, e in chunk]))
                values = setup.values(masks, start_layer=start, extra=extra).tolist()
            for (_, _, edge), v in zip(chunk, values):
                out[edge] = float(v) - model_value
            done += len(chunk)
            progress(done, total)
    return out


def _receiver_deltas(setup: PatchSetup, edges: list[Edge]) -> torch.Tensor:
    """``[E, B, P, d]``: each edge's receiver input change when its sender is patched, directly and through the MLPs
    between them, every other head frozen (see the module docstring)."""
    senders = list(dict.fromkeys(e.src for e in edges))
    direct, mlps = _mlp_deltas(setup, senders)  # [n, B, P, d], [n, L, B, P, d]
    row = {s: i for i, s in enumerate(senders)}
    out = []
    for e in edges:
        i = row[e.src]
        between = [m for m in range(setup.engine.L) if feeds(mlp(m), e.dst)]
        out.append(direct[i] + (mlps[i, between].sum(0) if between else 0))
    return torch.stack(out)


def _mlp_deltas(setup: PatchSetup, senders: list[Node]) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sender: its output change ``patch - clean`` ``[n, B, P, d]``, and every MLP's output change when the
    sender is patched, every head frozen and the MLPs recomputed in layer order ``[n, L, B, P, d]``."""
    e, graph = setup.engine, setup.graph
    patch = setup.attribution_patch.expand_as(setup.clean)  # the patch where it applies, clean elsewhere
    idx = torch.tensor([graph.source_index[s] for s in senders], device=setup.device)
    direct = patch.index_select(0, idx) - setup.clean.index_select(0, idx)  # [n, B, P, d]
    n, B, P, d = direct.shape
    deltas = torch.zeros(n, e.L, B, P, d, dtype=direct.dtype, device=direct.device)
    with torch.no_grad():
        for layer in range(e.L):
            reads = torch.tensor([float(feeds(s, mlp(layer))) for s in senders], device=direct.device)
            change = direct * reads.view(n, 1, 1, 1) + deltas[:, :layer].sum(1)
            if not bool(change.any()):
                continue
            n_up = e.mlp_source(layer)
            clean_in = setup.clean[:n_up].sum(0) + e.dest_bias[e.mlp_dest(layer)]
            clean_out = setup.clean[n_up]
            out = e.mlp((clean_in.unsqueeze(0) + change).reshape(n * B, P, d), layer).view(n, B, P, d)
            # A patched MLP sender keeps its patch value: its recomputed output is not its output here.
            own = torch.tensor([s == mlp(layer) for s in senders], device=direct.device).view(n, 1, 1, 1)
            deltas[:, layer] = torch.where(own, 0.0, out - clean_out)
    return direct, deltas


def _destinations(setup: PatchSetup, receivers: Iterable[Receiver]) -> list[tuple[Node, Optional[InputName]]]:
    dests: list[tuple[Node, Optional[InputName]]] = []
    for r in receivers:
        node, inputs = (r[0], (r[1],)) if isinstance(r, tuple) else (r, None)
        node = _check(setup, node)
        if node.kind is NodeKind.EMBED:
            continue
        if node.kind is NodeKind.HEAD:
            for inp in inputs or QKV:
                if inp not in QKV:
                    raise SettingsError(f"a head's input is q, k or v, got {inp!r} for {node.key}")
                dests.append((node, inp))
        else:
            if inputs and inputs != (None,):
                raise SettingsError(f"only heads have q/k/v inputs: {node.key}.{inputs[0]}")
            dests.append((node, None))
    return list(dict.fromkeys(dests))


def _check(setup: PatchSetup, node: Node) -> Node:
    try:
        return setup.graph.check_node(node)
    except InvalidKey as err:
        raise SettingsError(str(err)) from None


def _seed(setup: PatchSetup, seed_nodes: Optional[Iterable[Node | str]]) -> list[Node]:
    if seed_nodes is None:
        return [setup.graph.logits]
    try:
        parsed = [n if isinstance(n, Node) else parse_node(n) for n in seed_nodes]
    except InvalidKey as err:
        raise SettingsError(f"--seed-nodes: {err}") from None
    seed = sorted({_check(setup, n) for n in parsed})
    if not seed:
        raise SettingsError("seed_nodes is empty: give at least one node (default: the logits)")
    return seed


def _scale(setup: PatchSetup) -> float:
    """What an effect is divided by before the threshold: |metric(model)|, or 1 for a metric whose model value is
    its best (KL's 0)."""
    if setup.metric.spec.best_at_model:
        return 1.0
    m = abs(setup.model_value)
    if not m > 0:
        raise SettingsError(f"the model's {setup.metric.name} is 0 here, so a threshold relative to it means "
                            "nothing: check the prompts, or use the kl metric")
    return m


def _scored_nodes(effects: dict[Edge, float], added: dict[Node, int], seed: list[Node]) -> tuple[ScoredNode, ...]:
    best: dict[Node, float] = {}
    for e, v in effects.items():
        if e.src not in best or abs(v) > abs(best[e.src]):
            best[e.src] = v
    nodes = sorted(set(best) | set(seed))
    out = []
    for n in nodes:
        attrs: dict[str, Any] = {"round": added[n]} if n in added else {}
        out.append(ScoredNode(n, best.get(n), n in added, attrs))
    return tuple(out)
