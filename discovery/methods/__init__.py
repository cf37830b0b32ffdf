"""The registry of discovery methods: slug keys, citations, and where each function lives.

Every method has one shape: ``fn(setup: PatchSetup, *, threshold, progress, **params) -> MethodOutput``.
Entries name their function by import path so that listing methods (``circuits discover --help``) loads no
algorithm module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from discovery.errors import SettingsError
from discovery.graph import Granularity


@dataclass(frozen=True)
class MethodSpec:
    key: str
    name: str
    citation: str
    granularity: Granularity
    target: str  # "module:function"
    default_metric: str
    default_ablation: str
    threshold_means: str

    def load(self) -> Callable:
        module, _, fn = self.target.partition(":")
        return getattr(importlib.import_module(module), fn)


METHODS: dict[str, MethodSpec] = {
    spec.key: spec
    for spec in (
        MethodSpec(
            "node-pruning", "Iterative mean-ablation pruning of heads (and MLPs)",
            "Lan, Torr & Barez (2023), arXiv 2311.04131", Granularity.NODES,
            "discovery.methods.node_pruning:node_pruning", "logit-diff", "mean",
            "the share of the model's performance the circuit must keep (e.g. 0.8)",
        ),
        MethodSpec(
            "acdc", "ACDC edge pruning",
            "Conmy et al. (2023), arXiv 2304.14997", Granularity.QKV,
            "discovery.methods.acdc:acdc", "kl", "patch",
            "tau: an edge is removed when removing it raises the loss by less than this",
        ),
        MethodSpec(
            "path-patching", "Iterative path patching from a seed circuit",
            "Wang et al. (2022), arXiv 2211.00593", Granularity.QKV,
            "discovery.methods.path_patching:path_patching", "logit-diff", "patch",
            "the path effect (as a share of the model's metric) a sender must have to be added",
        ),
        MethodSpec(
            "eap", "Edge attribution patching",
            "Syed, Rager & Conmy (2023), arXiv 2310.10348", Granularity.QKV,
            "discovery.methods.eap:eap", "logit-diff", "patch",
            "|attribution score| an edge needs to be kept (or use --top-k / --target)",
        ),
        MethodSpec(
            "eap-ig", "Edge attribution patching with integrated gradients",
            "Hanna, Pezzelle & Belinkov (2024), arXiv 2403.17806", Granularity.QKV,
            "discovery.methods.eap:eap_ig", "logit-diff", "patch",
            "|attribution score| an edge needs to be kept (or use --top-k / --target)",
        ),
    )
}


def get_method(key: str) -> MethodSpec:
    try:
        return METHODS[key]
    except KeyError:
        raise SettingsError(f"unknown method {key!r}: choose one of {', '.join(METHODS)}") from None
