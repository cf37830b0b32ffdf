"""How good is a circuit: its metric, share of the model, faithfulness, KL and accuracy; random baselines; overlaps.

Definitions (``discovery.metrics`` holds the formulas):
- ``kept_fraction`` = m(C) / m(model), Lan et al.'s (2023) "% of the model's performance";
- ``faithfulness`` = (m(C) - m(empty)) / (m(model) - m(empty)) (MIB, arXiv 2504.13151), "empty" patching every edge;
- ``kl`` = KL(clean model || circuit) over the next token, from the circuit's logits and the clean run's, whatever
  the setup's metric is; ``accuracy`` = the circuit's top token is a correct answer.
A nodes-only circuit is evaluated by node ablation (everything out of a node outside the circuit is patched;
``embed`` is always kept); an edge circuit by edge ablation. ``performance`` in the baselines below is
the metric's share measure (``discovery.names``: ``kept_fraction``, or ``faithfulness`` for ``kl``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional, Union

import torch
from torch import Tensor

from discovery.errors import SettingsError
from discovery.graph import EMBED, ComponentGraph, Edge, Granularity, Node, NodeKind
from discovery.methods.base import MethodOutput
from discovery.metrics import Metric
from discovery.patching import PatchSetup
from discovery.results import DiscoveryResult
from discovery.topology import internal_nodes, random_circuits

Members = Union[Iterable[Node], Iterable[Edge], Any]  # Any: a MethodOutput or DiscoveryResult


def circuit_mask(setup: PatchSetup, *, nodes: Optional[Iterable[Node]] = None,
                 edges: Optional[Iterable[Edge]] = None) -> Tensor:
    """``[S, D]`` mask of a circuit: edges when given (edge ablation), else nodes plus embed (node ablation)."""
    if edges is not None:
        return setup.mask_from_edges(edges)
    if nodes is None:
        raise SettingsError("a circuit needs nodes or edges")
    return setup.mask_from_nodes([EMBED, *nodes])


def evaluate_masks(setup: PatchSetup, masks: Tensor) -> list[dict[str, float]]:
    """The figures of ``evaluate_circuit`` for each of ``C`` masks ``[C, S, D]``, from one batched run; with the
    spread of the metric over the prompts (``value_std``, the sample standard deviation, and ``value_sem``, the
    standard error of the mean; nan with one prompt)."""
    logits = setup.logits(masks)  # [C, B, V]
    per_prompt = setup.metric.per_prompt(logits)  # [C, B]
    values = per_prompt.mean(-1).tolist()
    n = int(per_prompt.shape[-1])
    stds = per_prompt.std(-1, unbiased=True).tolist() if n > 1 else [float("nan")] * len(values)
    kl = _metric(setup, "kl").value(logits).tolist()
    acc = _metric(setup, "accuracy").value(logits).tolist()
    out = []
    for v, sd, k, a in zip(values, stds, kl, acc):
        row = {"metric": setup.metric.name, "value": v, **setup.performance(v), "kl": k, "accuracy": a,
               "value_std": sd, "value_sem": sd / n**0.5, "n_prompts": n}
        row["performance"] = setup.share(v)
        out.append(row)
    return out


def evaluate_circuit(setup: PatchSetup, *, nodes: Optional[Iterable[Node]] = None,
                     edges: Optional[Iterable[Edge]] = None) -> dict[str, Any]:
    """Metric value, kept_fraction, faithfulness, KL vs the clean model and accuracy of one circuit.

    Give ``edges`` for an edge circuit (``nodes`` are then ignored) or ``nodes`` for a nodes-only one.
    """
    edges = None if edges is None else list(edges)
    nodes = None if nodes is None else list(nodes)
    row: dict[str, Any] = evaluate_masks(setup, circuit_mask(setup, nodes=nodes, edges=edges).unsqueeze(0))[0]
    row["level"] = "edges" if edges is not None else "nodes"
    if edges is not None:
        row["n_edges"] = len(set(edges))
    else:
        row["n_nodes"] = len({n for n in nodes or () if n.kind in (NodeKind.HEAD, NodeKind.MLP)})
    return row


def compare_to_random(setup: PatchSetup, circuit: Members, *, n: int = 100, seed: int = 0,
                      level: Optional[str] = None) -> dict[str, Any]:
    """The circuit's performance against ``n`` random connected circuits of the same size (one batched run).

    Node level draws the same numbers of heads and of MLPs; edge level the same number of edges over the same
    number of heads and MLPs where that is possible (else just the edge count). ``fraction_beaten`` is the
    share of random circuits whose performance is strictly below the circuit's.
    """
    kind, members = _as_circuit(circuit, level)
    if kind == "nodes":
        inner = [x for x in members if x.kind in (NodeKind.HEAD, NodeKind.MLP)]
        size: Any = (sum(x.kind is NodeKind.HEAD for x in inner), sum(x.kind is NodeKind.MLP for x in inner))
        randoms = random_circuits(setup.graph, size, n, seed, "nodes")
        masks = [circuit_mask(setup, nodes=members)] + [circuit_mask(setup, nodes=r) for r in randoms]
    else:
        graph = _edge_graph(setup, members)
        touched = {x for e in members for x in (e.src, e.dst)} & set(internal_nodes(graph))
        size = (len(members), len(touched)) if len(members) > len(touched) else len(members)
        randoms = random_circuits(graph, size, n, seed, "edges")
        masks = [circuit_mask(setup, edges=members)] + [circuit_mask(setup, edges=r) for r in randoms]
    rows = evaluate_masks(setup, torch.stack(masks))
    perf = [r["performance"] for r in rows]
    mine, rand = perf[0], torch.tensor(perf[1:], dtype=torch.float64)
    mean = float(rand.mean()) if n else float("nan")
    std = float(rand.std(unbiased=True)) if n > 1 else float("nan")
    return {
        "level": kind, "n": n, "seed": seed, "size": size,
        "measure": setup.measure, "performance": mine, "value": rows[0]["value"],
        "random_mean": mean, "random_std": std,
        "random_min": float(rand.min()) if n else float("nan"), "random_max": float(rand.max()) if n else float("nan"),
        "fraction_beaten": float((rand < mine).double().mean()) if n else float("nan"),
        "z_score": (mine - mean) / std if n > 1 and std > 0 else float("nan"),
        "random": perf[1:],
    }


def ablate_shared(setup: PatchSetup, circuit_nodes: Iterable[Node], other_nodes: Iterable[Node], *,
                  keep_mlps: bool = False) -> dict[str, Any]:
    """A sub-circuit test: ablate from a circuit the nodes it shares with another (Lan et al. 2023 ask whether
    tasks share a sub-circuit this way).

    Evaluates (node ablation, one batched run) the circuit, the circuit without the shared nodes, and the shared
    nodes alone; ``lost`` is performance(circuit) - performance(circuit without shared), ``lost_share`` that
    as a share of the circuit's performance. ``keep_mlps`` keeps every MLP in all three (for heads-only
    circuits such as Lan & Barez's, whose MLPs were not pruned).
    """
    mine = {x for x in circuit_nodes if x.kind in (NodeKind.HEAD, NodeKind.MLP)}
    other = {x for x in other_nodes if x.kind in (NodeKind.HEAD, NodeKind.MLP)}
    shared = mine & other
    extra = [x for x in internal_nodes(setup.graph) if x.kind is NodeKind.MLP] if keep_mlps else []
    variants = [mine, mine - shared, shared]
    rows = evaluate_masks(setup, torch.stack([circuit_mask(setup, nodes=[*v, *extra]) for v in variants]))
    full, without, alone = rows
    lost = full["performance"] - without["performance"]
    return {
        "shared": [x.key for x in sorted(shared)], "n_shared": len(shared),
        "only_in_circuit": [x.key for x in sorted(mine - shared)], "measure": setup.measure,
        "circuit": full, "without_shared": without, "shared_only": alone,
        "lost": lost, "lost_share": lost / full["performance"] if full["performance"] else float("nan"),
    }


# ---------------------------------------------------------------------------------------------------------


def _metric(setup: PatchSetup, name: str) -> Metric:
    m = setup.metric
    return Metric(name, m.answers, m.answers_mask, m.wrong, m.wrong_mask, clean_logits=setup.clean_logits)


def _as_circuit(circuit: Members, level: Optional[str]) -> tuple[str, list]:
    """(``nodes`` | ``edges``, members) from a node or edge collection or a method's output."""
    if isinstance(circuit, (MethodOutput, DiscoveryResult)):
        if circuit.granularity is Granularity.NODES or level == "nodes":
            return "nodes", list(circuit.kept_nodes)
        return "edges", list(circuit.kept_edges)
    members = list(circuit)
    kind = "edges" if members and isinstance(members[0], Edge) else "nodes"
    if level is not None and level != kind:
        raise SettingsError(f"a circuit of {kind} cannot be compared at the {level} level")
    if kind == "edges" and not members:
        raise SettingsError("an empty edge circuit has no random counterpart")
    return kind, members


def _edge_graph(setup: PatchSetup, edges: list[Edge]) -> ComponentGraph:
    """The setup's graph at the circuit's granularity: QKV if its edges into heads name inputs, else HEADS."""
    into_heads = [e for e in edges if e.dst.kind is NodeKind.HEAD]
    if into_heads and all(e.input is None for e in into_heads):
        return ComponentGraph(setup.graph.shape, Granularity.HEADS)
    return setup.graph

