"""The registry of discovery methods: slug keys, citations, where each function lives, and its options as data.

Every method has one shape: ``fn(setup: PatchSetup, *, progress, **settings) -> MethodOutput``, where
``settings`` are exactly its options (``discovery.settings.Option``), resolved and checked by
``discovery.settings.resolve`` before anything runs. Adding a method is one entry here (and its module): the CLI's
flags, the defaults a run records and the checks all come from the entry. Entries name their function by import
path, so listing methods (``circuits discover --help``) loads no algorithm module and no torch.

``score_sign`` says what a method's edge and node scores measure, so exporters and MIB's curves can bring them to
one convention: ``metric`` = metric(patched) - metric(model) (negative for an important edge under logit
difference), ``loss`` = loss(patched) - loss(current) (positive for an important edge; EAP-IG's and MIB's sign).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from discovery.errors import SettingsError
from discovery.graph import Granularity
from discovery.settings import BOOL, CHOICE, FLOAT, FLOATS, INT, NODES, Option, OptionSet, resolve

MAX_ORDERS = 1000  # random removal orders a node-pruning run may be asked for
MAX_BATCH = 4096  # candidate copies per forward
MAX_STEPS = 1000  # integration steps, rounds


@dataclass(frozen=True)
class MethodSpec:
    key: str
    name: str
    citation: str
    granularity: Granularity
    target: str  # "module:function"
    default_metric: Optional[str]  # None: the task's own metric
    default_ablation: str
    options: OptionSet
    reproduces: str  # which paper setting the defaults reproduce (the README's methods table)
    score_sign: str  # "metric" or "loss": see the module docstring
    takes_seed: bool = False
    needs_smooth_metric: bool = False  # gradients or small metric changes: accuracy will not do

    def load(self) -> Callable[..., Any]:
        module, _, fn = self.target.partition(":")
        return getattr(importlib.import_module(module), fn)

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """This method's complete, checked settings from what was given (see ``discovery.settings.resolve``)."""
        return resolve(self.key, self.options, given, flag_of=option_flag)


def _threshold(help_: str, default: Optional[float] = None, **bounds: Any) -> Option:
    return Option("threshold", FLOAT, help_, default=default, **bounds)


_SELECT = (
    Option("top_k", INT, "Keep the K edges of largest |score|.", low=1),
    Option("target", FLOAT, "Keep the smallest top-k circuit reaching this share of the model's performance.",
           low=0, high=1, low_open=True),
)
_BATCH_SIZE = Option("batch_size", INT, "Prompts per forward (default: what the memory budget allows).", low=1,
                     high=MAX_BATCH)

METHODS: dict[str, MethodSpec] = {
    spec.key: spec
    for spec in (
        MethodSpec(
            "node-pruning", "Iterative mean-ablation pruning of heads and MLPs",
            "Lan, Torr & Barez (2023), arXiv 2311.04131", Granularity.NODES,
            "discovery.methods.node_pruning:node_pruning", None, "mean",
            OptionSet((
                _threshold("The share of the model's performance the circuit must keep.", 0.8, low=0, high=1,
                           low_open=True),
                Option("thresholds", FLOATS, "Several levels at once, e.g. 0.7,0.8,0.9.", low=0, high=1,
                       low_open=True),
                Option("order", CHOICE, "Removal order of the sweeps.", "backward",
                       choices=("backward", "forward", "random")),
                Option("orders", INT, "Also prune in N seeded random orders (survival counts).", 0, low=0,
                       high=MAX_ORDERS),
                Option("include_mlps", BOOL, "Prune MLPs as well as heads (Lan et al.'s loop does).", True),
                Option("nested", BOOL, "Prune each lower level from the circuit of the level above it.", False),
                Option("measure", CHOICE, "kept_fraction or faithfulness (default: the metric's).",
                       choices=("kept_fraction", "faithfulness")),
                Option("max_batch", INT, "Most candidate removals evaluated per forward.", 32, low=1, high=MAX_BATCH,
                       flag="--batch"),
            )),
            "Lan et al.'s loop (apartresearch/seqcont_circuits run_node_ablation.py): backward then forward sweeps "
            "over heads and MLPs to a fixed point at 80 %, mean ablation over the random-member prompts",
            "metric", takes_seed=True,
        ),
        MethodSpec(
            "acdc", "ACDC edge pruning",
            "Conmy et al. (2023), arXiv 2304.14997", Granularity.QKV,
            "discovery.methods.acdc:acdc", "kl", "patch",
            OptionSet((
                _threshold("tau: an edge goes when removing it raises the loss by less than this.", 0.01, low=0),
                Option("order", CHOICE, "reference: TLACDCExperiment's visiting order and edge set (q/k/v-to-head "
                       "edges included); head-major: this project's order, residual edges only.", "reference",
                       choices=("reference", "head-major")),
                Option("max_batch", INT, "Most candidate edges evaluated per forward.", 64, low=1, high=MAX_BATCH,
                       flag="--batch"),
            )),
            "TLACDCExperiment's order and edge set, KL from the clean model, patching from corrupted prompts",
            "loss",
        ),
        MethodSpec(
            "path-patching", "Iterative path patching from a seed circuit",
            "Wang et al. (2022), arXiv 2211.00593", Granularity.QKV,
            "discovery.methods.path_patching:path_patching", None, "patch",
            OptionSet((
                _threshold("The path effect, as a share of the model's metric, a sender needs to join.", 0.05,
                           low=0),
                Option("seed_nodes", NODES, "Nodes to start from, e.g. logits or a9.9,a10.0 (default: logits)."),
                Option("mode", CHOICE, "nodes: add senders round by round; edges: score edges among the seed.",
                       "nodes", choices=("nodes", "edges")),
                Option("max_rounds", INT, "Most rounds of receivers in mode nodes.", low=1, high=MAX_STEPS),
                Option("paths", CHOICE, "via-mlps: the sender's effect reaches the receiver through the MLPs between "
                       "them (Wang et al.); direct: the one residual edge only.", "via-mlps",
                       choices=("via-mlps", "direct")),
            )),
            "Wang et al.'s path patching: other heads frozen, MLPs recomputed between sender and receiver",
            "metric", needs_smooth_metric=True,
        ),
        MethodSpec(
            "eap", "Edge attribution patching",
            "Syed, Rager & Conmy (2023), arXiv 2310.10348", Granularity.QKV,
            "discovery.methods.eap:eap", None, "patch",
            OptionSet((
                _threshold("Keep edges with |score| >= this.", low=0), *_SELECT,
                Option("gradient_at", CHOICE, "Where the gradient is taken (default: clean; ablated for KL).",
                       choices=("clean", "ablated")),
                _BATCH_SIZE,
            ), one_of=("threshold", "top_k", "target"), one_of_default={"target": 0.8}),
            "Syed et al.'s EAP: gradient at the clean input, activation difference corrupted - clean",
            "metric", needs_smooth_metric=True,
        ),
        MethodSpec(
            "eap-ig", "Edge attribution patching with integrated gradients",
            "Hanna, Pezzelle & Belinkov (2024), arXiv 2403.17806", Granularity.QKV,
            "discovery.methods.eap:eap_ig", None, "patch",
            OptionSet((
                _threshold("Keep edges with |score| >= this.", low=0), *_SELECT,
                Option("steps", INT, "Integration steps (MIB's run_attribution.py uses 5).", 5, low=1, high=MAX_STEPS,
                       flag="--ig-steps"),
                _BATCH_SIZE,
            ), one_of=("threshold", "top_k", "target"), one_of_default={"target": 0.8}),
            "hannamw/EAP-IG get_scores_eap_ig: input embeddings interpolated from corrupted to clean, k/steps for "
            "k = 0..steps-1, 5 steps as MIB",
            "metric", needs_smooth_metric=True,
        ),
    )
}


def get_method(key: str) -> MethodSpec:
    try:
        return METHODS[key]
    except KeyError:
        raise SettingsError(f"unknown method {key!r}: choose one of {', '.join(METHODS)}") from None


def all_options() -> dict[str, list[tuple[str, Option]]]:
    """Every option name with the methods that take it (and their declarations), for the CLI's generated flags."""
    out: dict[str, list[tuple[str, Option]]] = {}
    for spec in METHODS.values():
        for option in spec.options.options:
            out.setdefault(option.name, []).append((spec.key, option))
    return out


def option_flag(name: str) -> str:
    """The CLI flag of an option name, whichever method declares it."""
    for spec in METHODS.values():
        option = spec.options.get(name)
        if option is not None:
            return option.cli_flag
    return "--" + name.replace("_", "-")
