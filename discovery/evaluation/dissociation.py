"""Double dissociation between two tasks' circuits, by lesions of the full model.

The sub-circuit question of Lan, Torr & Barez (2023, arXiv 2311.04131) and the caution of Hanna et al. (2024, "Have
Faith in Faithfulness", arXiv 2403.17806) that overlapping circuits need not do each other's job ask for a causal
test, the neuropsychologist's double dissociation: remove components from the *full* model (node ablation, as
``PatchSetup.mask_from_nodes``: every edge out of a removed node ablated) and measure both tasks.

For circuits A (of task a) and B (of task b), three lesions, each measured on both tasks:

- ``shared``: the heads and MLPs A and B both keep. A shared sub-circuit should hurt both tasks;
- ``only_a``: A's own components (in A, not in B): should hurt task a and spare task b;
- ``only_b``: B's own: should hurt task b and spare task a.

``damage`` = 1 - the task's share of the model's performance with the lesion (``PatchSetup.share``: kept_fraction,
or faithfulness for KL). A lesion "hurts" a task when its damage is at least ``hurt``; the threshold is this
project's choice (no paper fixes one), named in every report. The double dissociation holds when ``only_a`` hurts a
but not b and ``only_b`` hurts b but not a; "shared hurts both" is reported beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from discovery.evaluation.circuits import circuit_mask, evaluate_masks
from discovery.graph import Node, NodeKind
from discovery.patching import PatchSetup
from discovery.topology import internal_nodes

LESIONS: tuple[str, ...] = ("shared", "only_a", "only_b")
DEFAULT_HURT = 0.1


def components(nodes: Iterable[Node]) -> frozenset[Node]:
    return frozenset(n for n in nodes if n.kind in (NodeKind.HEAD, NodeKind.MLP))


def lesion_sets(a: Iterable[Node], b: Iterable[Node]) -> dict[str, frozenset[Node]]:
    """The three lesions of the module docstring, by name."""
    ca, cb = components(a), components(b)
    return {"shared": ca & cb, "only_a": ca - cb, "only_b": cb - ca}


def lesions(setup: PatchSetup, removed: Mapping[str, Iterable[Node]]) -> dict[str, dict[str, Any]]:
    """The full model with each set of ``removed`` components ablated (one batched run on ``setup``'s task): the
    figures of ``evaluate_masks`` plus ``damage`` = 1 - performance."""
    every = internal_nodes(setup.graph)
    names = list(removed)
    masks = [circuit_mask(setup, nodes=[n for n in every if n not in set(removed[k])]) for k in names]
    rows = evaluate_masks(setup, torch.stack(masks)) if masks else []
    return {k: {**row, "damage": 1.0 - row["performance"], "removed": sorted(n.key for n in removed[k])}
            for k, row in zip(names, rows)}


def verdict(on_a: Mapping[str, Mapping[str, Any]], on_b: Mapping[str, Mapping[str, Any]],
            hurt: float = DEFAULT_HURT) -> dict[str, Any]:
    """Which of the three expectations hold, given each lesion's figures on task a (``on_a``) and task b."""

    def hurts(rows: Mapping[str, Mapping[str, Any]], lesion: str) -> bool:
        return bool(rows[lesion]["removed"]) and rows[lesion]["damage"] >= hurt

    only_a = hurts(on_a, "only_a") and not hurts(on_b, "only_a")
    only_b = hurts(on_b, "only_b") and not hurts(on_a, "only_b")
    return {"shared_hurts_both": hurts(on_a, "shared") and hurts(on_b, "shared"),
            "only_a_hurts_only_a": only_a, "only_b_hurts_only_b": only_b,
            "double_dissociation": only_a and only_b, "hurt": hurt}
