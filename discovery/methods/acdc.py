"""ACDC: Automated Circuit DisCovery by edge pruning.

Conmy, Mavor-Parker, Lynch, Heimersheim, Garriga-Alonso (2023), "Towards Automated Circuit Discovery for
Mechanistic Interpretability", arXiv 2304.14997.

Destinations are visited in reverse topological order (logits first); each edge into the current destination
is patched in turn and removed for good when the loss (KL from the clean model, or minus the logit/probability
difference) rises by less than ``threshold`` (tau) over the current circuit's loss. Sign convention: an edge's
stored score is that rise, ``loss(circuit without the edge) - loss(circuit)``, measured at its turn; higher
means more important. A circuit at another tau can be cut from the stored scores (``|score| >= tau``): an
approximation, since the true ACDC decisions at another tau see another current circuit.

Exact batching. Each decision depends on the ones before it, but most edges are removed. A batch of ``C``
candidates into one destination is evaluated as ``C`` stacked copies, copy ``i`` having candidates ``0..i``
removed; walking the copies in order reproduces the one-at-a-time decisions until the first kept edge, and the
copies after it (evaluated assuming it removed) are redone in the next batch. Because every edge into layers
below the destination is still intact, those layers are read from the cached clean run and only the layers
from the destination's upward are recomputed.
"""

from __future__ import annotations

from typing import Optional

import torch

from discovery.errors import SettingsError
from discovery.graph import Granularity, NodeKind
from discovery.methods.base import MethodOutput, Progress, edge_matrix, edge_scores, no_progress
from discovery.patching import PatchSetup


def acdc(
    setup: PatchSetup,
    *,
    threshold: float,
    max_batch: int = 64,
    progress: Progress = no_progress,
) -> MethodOutput:
    """Prune edges with ACDC at ``threshold``; ``max_batch=1`` is the one-edge-at-a-time algorithm."""
    if threshold < 0:
        raise SettingsError("ACDC's threshold (tau) must be >= 0")
    if max_batch < 1:
        raise SettingsError("ACDC's batch must be at least 1")
    engine, graph = setup.engine, setup.graph
    device = setup.device
    is_edge = edge_matrix(graph, device)
    mask = setup.full_mask()[0]  # [S, D], 1 = kept
    scores = torch.full(mask.shape, float("nan"), device=device)
    current = float(setup.losses(mask)[0])
    total, done = int(is_edge.sum()), 0
    last_run = max_batch
    for d in reversed(range(engine.n_dests)):
        dst, _ = graph.destinations[d]
        start = _start_layer(dst.kind, dst.layer, engine.L)
        candidates = list(reversed(range(graph.n_upstream(dst))))
        limit = min(max_batch, setup.copies_per_forward(start))
        i = 0
        while i < len(candidates):
            batch = _batch_size(limit, last_run)
            chunk = candidates[i : i + batch]
            losses = _cumulative_losses(setup, mask, d, chunk, start)
            last_run = 2 * batch  # every copy decided: try a batch twice as large next
            for j, s in enumerate(chunk):
                rise = losses[j] - current
                scores[s, d] = rise
                if rise < threshold:
                    mask[s, d] = 0
                    current = losses[j]
                else:
                    chunk = chunk[: j + 1]
                    last_run = 2 * (j + 1)  # a kept edge wasted the copies after it: aim at about this run
                    break
            i += len(chunk)
            done += len(chunk)
            progress(done, total)
    kept = (mask > 0) & is_edge
    return MethodOutput(
        granularity=Granularity.QKV,
        edges=edge_scores(graph, scores, kept),
        threshold=threshold,
        params={"threshold": threshold, "max_batch": max_batch},
        extras={"final_loss": current},
    )


def _batch_size(limit: int, last_run: int) -> int:
    """Copies per batch: as many as fit, unless the last batch stopped early at a kept edge.

    After a kept edge the copies that follow it are wasted, so the next batch aims at twice the run of
    removals just seen; after a batch decided in full it doubles again (but never below 8, where a forward
    costs about the same whatever its size)."""
    return max(1, min(limit, max(8, last_run)))


def _start_layer(kind: NodeKind, layer: int, n_layers: int) -> int:
    """The first layer a change to this destination's input can affect."""
    return n_layers if kind is NodeKind.LOGITS else layer


def _cumulative_losses(setup: PatchSetup, mask: torch.Tensor, d: int, chunk: list[int], start: int) -> list[float]:
    """Loss of copy i = the current circuit with edges chunk[0..i] -> d removed."""
    C = len(chunk)
    masks = mask.unsqueeze(0).repeat(C, 1, 1)
    idx = torch.tensor(chunk, device=mask.device)
    later = torch.triu(torch.ones(C, C, device=mask.device, dtype=mask.dtype), diagonal=1)  # [i, j] = 1 if j > i
    masks[:, idx, d] = later
    return setup.losses(masks, start_layer=start).tolist()


def acdc_reference(setup: PatchSetup, *, threshold: float) -> MethodOutput:
    """The one-edge-at-a-time algorithm, for tests: the batched version must make the same decisions."""
    return acdc(setup, threshold=threshold, max_batch=1)


def describe(output: MethodOutput) -> Optional[str]:
    kept = sum(1 for e in output.edges if e.kept)
    return f"ACDC kept {kept} of {len(output.edges)} edges at tau={output.threshold}"
