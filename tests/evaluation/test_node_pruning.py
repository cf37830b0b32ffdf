"""Covers: iterative node pruning (Lan & Barez): batched == one-at-a-time, thresholds kept, levels, random-order survival, planted heads."""

from __future__ import annotations

import pytest

from discovery.errors import SettingsError
from discovery.evaluation import evaluate_circuit
from discovery.graph import EMBED, Granularity, Node, NodeKind, head, mlp
from discovery.methods import get_method
from discovery.methods.node_pruning import node_pruning
from discovery.patching import PatchSetup
from tests.evaluation.conftest import make_setup


def reference_prune(setup: PatchSetup, threshold: float, order: str, include_mlps: bool) -> set[Node]:
    """The procedure written plainly: one removal evaluated at a time, sweeps alternating until nothing changes."""
    L, H = setup.engine.L, setup.engine.H
    backward = [n for layer in reversed(range(L)) for n in [mlp(layer), *(head(layer, h) for h in range(H))]]
    forward = [n for layer in range(L) for n in [*(head(layer, h) for h in range(H)), mlp(layer)]]
    sweeps = (backward, forward) if order == "backward" else (forward, backward)
    circuit = {n for n in setup.graph.sources if n.kind is not NodeKind.EMBED}

    def performance(nodes: set[Node]) -> float:
        value = float(setup.values(setup.mask_from_nodes([EMBED, *nodes]).unsqueeze(0))[0])
        return value / setup.model_value

    i = 0
    while True:
        removed = 0
        for node in sweeps[i % 2]:
            candidate = node in circuit and (include_mlps or node.kind is NodeKind.HEAD)
            if candidate and performance(circuit - {node}) >= threshold:
                circuit.discard(node)
                removed += 1
        i += 1
        if not removed:
            return circuit


def kept(output) -> set[Node]:
    return {n for n in output.kept_nodes if n.kind is not NodeKind.EMBED}


@pytest.mark.parametrize(
    "order,include_mlps,threshold,max_batch",
    [("backward", True, 0.8, 32), ("backward", False, 0.7, 3), ("forward", True, 0.9, 5)],
)
def test_batched_pruning_equals_the_one_at_a_time_loop(order, include_mlps, threshold, max_batch) -> None:
    setup = make_setup()
    expected = reference_prune(setup, threshold, order, include_mlps)
    out = node_pruning(setup, threshold=threshold, order=order, include_mlps=include_mlps, max_batch=max_batch)
    assert kept(out) == expected
    assert 0 < len(expected) < len(setup.graph.sources) - 1  # the case is not trivial


def test_random_order_batched_equals_unbatched_and_is_seeded() -> None:
    setup = make_setup(seed=1)
    a = node_pruning(setup, threshold=0.8, order="random", include_mlps=True, seed=3, max_batch=1)
    b = node_pruning(setup, threshold=0.8, order="random", include_mlps=True, seed=3, max_batch=6)
    assert kept(a) == kept(b)
    assert a.extras["removal_order"] == b.extras["removal_order"]


def test_circuit_keeps_its_threshold_and_no_single_removal_would(setup) -> None:
    out = node_pruning(setup, threshold=0.8, include_mlps=True)
    circuit = kept(out)
    ev = evaluate_circuit(setup, nodes=circuit)  # independent: node ablation through evaluate_circuit
    assert ev["kept_fraction"] >= 0.8
    assert ev["kept_fraction"] == pytest.approx(out.extras["performance"], abs=1e-5)
    for node in circuit:  # a fixed point: every further removal falls below the threshold
        assert evaluate_circuit(setup, nodes=circuit - {node})["kept_fraction"] < 0.8


def test_node_scores_are_the_drop_from_the_final_circuit(setup) -> None:
    out = node_pruning(setup, threshold=0.8, include_mlps=True)
    circuit = kept(out)
    base = evaluate_circuit(setup, nodes=circuit)["kept_fraction"]
    by_node = {n.node: n for n in out.nodes}
    some_kept, some_removed = sorted(circuit)[0], next(n for n in by_node if n not in circuit and n != EMBED)
    assert by_node[some_kept].score == pytest.approx(
        base - evaluate_circuit(setup, nodes=circuit - {some_kept})["kept_fraction"], abs=1e-4)
    assert by_node[some_removed].score == pytest.approx(
        evaluate_circuit(setup, nodes=circuit | {some_removed})["kept_fraction"] - base, abs=1e-4)
    assert by_node[EMBED].kept and by_node[EMBED].score is None
    assert out.granularity is Granularity.NODES and get_method("node-pruning").load() is node_pruning


def test_levels_table_each_level_keeps_its_share() -> None:
    setup = make_setup()
    out = node_pruning(setup, threshold=0.8, thresholds=[0.7, 0.8, 0.9], include_mlps=True)
    levels = out.extras["levels"]
    assert set(levels) == {"0.7", "0.8", "0.9"}
    for key, row in levels.items():
        nodes = {n for n in setup.graph.sources if n.key in row["nodes"]}
        assert evaluate_circuit(setup, nodes=nodes)["kept_fraction"] >= float(key)
    assert {n.key for n in kept(out)} == set(levels["0.8"]["nodes"])
    for n in out.nodes:
        if n.node.kind is not NodeKind.EMBED:
            assert n.attributes["kept_at"] == {k: n.node.key in row["nodes"] for k, row in levels.items()}


def test_nested_levels_are_monotone() -> None:
    """Independent levels need not nest (order effects); nested ones do by construction."""
    setup = make_setup()
    out = node_pruning(setup, threshold=0.8, thresholds=[0.6, 0.7, 0.9], include_mlps=True, nested=True)
    sets = [set(out.extras["levels"][k]["nodes"]) for k in ("0.6", "0.7", "0.8", "0.9")]
    assert all(low <= high for low, high in zip(sets, sets[1:]))
    assert sets[0] != sets[-1]


def test_survival_over_random_orders(setup) -> None:
    out = node_pruning(setup, threshold=0.8, orders=3, seed=2, include_mlps=True)
    circuits = out.extras["orders"]["circuits"]
    assert out.extras["orders"]["n"] == 3 and len(circuits) == 3
    for n in out.nodes:
        if n.node.kind is NodeKind.EMBED:
            continue
        s = n.attributes["survival"]
        assert 0.0 <= s <= 1.0
        assert s == pytest.approx(sum(n.node.key in c for c in circuits) / 3)
    assert all(p >= 0.8 for p in out.extras["orders"]["performance"])
    again = node_pruning(setup, threshold=0.8, orders=3, seed=2, include_mlps=True)
    assert again.extras["orders"]["circuits"] == circuits


def test_kl_metric_prunes_by_faithfulness() -> None:
    setup = make_setup(metric="kl")
    out = node_pruning(setup, threshold=0.8)
    assert out.extras["measure"] == "faithfulness"
    assert evaluate_circuit(setup, nodes=out.kept_nodes)["faithfulness"] >= 0.8
    assert all("kept_at" in n.attributes for n in out.nodes if n.node.kind is NodeKind.MLP)  # MLPs are candidates
    kept_mlps = node_pruning(setup, threshold=0.8, include_mlps=False)
    assert all(n.kept for n in kept_mlps.nodes if n.node.kind is NodeKind.MLP)  # the named variant keeps them all


def test_bad_settings_are_refused(setup) -> None:
    with pytest.raises(SettingsError):
        node_pruning(setup, order="sideways")
    with pytest.raises(SettingsError):
        node_pruning(setup, threshold=0)
    with pytest.raises(SettingsError):
        node_pruning(make_setup(metric="kl"), measure="kept_fraction")


@pytest.mark.slow
def test_recovers_the_planted_heads(tmp_path) -> None:
    planted = pytest.importorskip("tests.methods.planted")
    from discovery.patching import prepare

    p = planted.planted_circuit(tmp_path)
    for ablation in ("mean", "patch"):
        setup = prepare(p.model, p.dataset, ablation=ablation)
        for include_mlps in (False, True):
            out = node_pruning(setup, threshold=0.8, include_mlps=include_mlps, orders=2)
            found = {n for n in out.kept_nodes if n.kind is NodeKind.HEAD}
            assert found == set(p.heads)  # precision and recall 1
            if include_mlps:  # the planted MLPs write nothing, so pruning drops them too
                assert not any(n.kind is NodeKind.MLP for n in out.kept_nodes)
