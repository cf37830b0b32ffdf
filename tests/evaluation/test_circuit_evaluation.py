"""Covers: evaluate_circuit (node and edge ablation, KL, accuracy), compare_to_random, ablate_shared on a hand-made case."""

from __future__ import annotations

import pytest
import torch

from discovery.evaluation import ablate_shared, compare_to_random, evaluate_circuit, random_circuits
from discovery.graph import EMBED, Edge, NodeKind, head, mlp
from tests.evaluation.conftest import make_setup


def test_full_circuit_is_the_model_and_empty_edges_the_empty_circuit(setup) -> None:
    every = [n for n in setup.graph.sources if n.kind is not NodeKind.EMBED]
    full = evaluate_circuit(setup, nodes=every)
    assert full["kept_fraction"] == pytest.approx(1.0, abs=1e-5)
    assert full["faithfulness"] == pytest.approx(1.0, abs=1e-5)
    assert full["kl"] == pytest.approx(0.0, abs=1e-5)
    assert full["accuracy"] == 1.0  # the fixture's answers are the model's top tokens
    empty = evaluate_circuit(setup, edges=[])
    assert empty["faithfulness"] == pytest.approx(0.0, abs=1e-6)
    assert empty["value"] == pytest.approx(setup.empty_value, abs=1e-5)


def test_node_circuit_equals_the_edges_out_of_its_nodes(setup) -> None:
    nodes = {head(0, 1), head(1, 2), mlp(0), head(2, 3)}
    graph = setup.graph
    edges = [e for e in graph.edges if e.src in nodes | {EMBED}]
    by_nodes = evaluate_circuit(setup, nodes=nodes)
    by_edges = evaluate_circuit(setup, edges=edges)
    assert by_nodes["value"] == pytest.approx(by_edges["value"], abs=1e-5)
    assert by_nodes["level"] == "nodes" and by_edges["level"] == "edges" and by_nodes["n_nodes"] == 4


def test_kl_is_computed_from_the_circuit_logits_whatever_the_metric(setup) -> None:
    nodes = [head(0, 0), mlp(1)]
    logits = setup.logits(setup.mask_from_nodes([EMBED, *nodes]).unsqueeze(0))[0]
    p = torch.log_softmax(setup.clean_logits.float(), -1)
    q = torch.log_softmax(logits.float(), -1)
    expected = float((p.exp() * (p - q)).sum(-1).mean())
    ev = evaluate_circuit(setup, nodes=nodes)
    assert ev["metric"] == "logit-diff"
    assert ev["kl"] == pytest.approx(expected, rel=1e-5)
    top = logits.argmax(-1)
    assert ev["accuracy"] == pytest.approx(float((top == setup.metric.answers[:, 0]).float().mean()))


def test_compare_to_random_at_node_level(setup) -> None:
    circuit = {head(0, 0), head(0, 1), head(0, 2), head(0, 3), mlp(0), mlp(1), mlp(2)}
    result = compare_to_random(setup, circuit, n=12, seed=5)
    assert result["level"] == "nodes" and result["size"] == (4, 3) and len(result["random"]) == 12
    randoms = random_circuits(setup.graph, (4, 3), 12, 5, "nodes")
    perf = [evaluate_circuit(setup, nodes=r)["kept_fraction"] for r in randoms]
    assert result["random"] == pytest.approx(perf, abs=1e-5)
    mine = evaluate_circuit(setup, nodes=circuit)["kept_fraction"]
    assert result["performance"] == pytest.approx(mine, abs=1e-6)
    assert result["fraction_beaten"] == pytest.approx(sum(p < mine for p in perf) / 12)
    assert result["random_mean"] == pytest.approx(sum(perf) / 12, abs=1e-5)


def test_compare_to_random_at_edge_level(setup) -> None:
    edges = [Edge(EMBED, head(0, 1), "v"), Edge(head(0, 1), head(2, 0), "q"), Edge(head(2, 0), setup.graph.logits),
             Edge(EMBED, setup.graph.logits)]
    result = compare_to_random(setup, edges, n=6, seed=1)
    assert result["level"] == "edges" and result["size"] == (4, 2)
    assert 0.0 <= result["fraction_beaten"] <= 1.0 and len(result["random"]) == 6


def test_ablate_shared_on_a_hand_made_case() -> None:
    setup = make_setup(seed=2)
    circuit = {head(0, 0), head(0, 2), head(1, 1), mlp(0)}
    other = {head(0, 2), head(1, 1), head(2, 3)}
    result = ablate_shared(setup, circuit, other)
    assert result["shared"] == ["a0.2", "a1.1"] and result["n_shared"] == 2
    assert result["only_in_circuit"] == ["a0.0", "m0"]
    full = evaluate_circuit(setup, nodes=circuit)["kept_fraction"]
    without = evaluate_circuit(setup, nodes={head(0, 0), mlp(0)})["kept_fraction"]
    alone = evaluate_circuit(setup, nodes={head(0, 2), head(1, 1)})["kept_fraction"]
    assert result["circuit"]["kept_fraction"] == pytest.approx(full, abs=1e-6)
    assert result["without_shared"]["kept_fraction"] == pytest.approx(without, abs=1e-6)
    assert result["shared_only"]["kept_fraction"] == pytest.approx(alone, abs=1e-6)
    assert result["lost"] == pytest.approx(full - without, abs=1e-6)
    assert result["lost_share"] == pytest.approx((full - without) / full, abs=1e-6)
    with_mlps = ablate_shared(setup, circuit, other, keep_mlps=True)
    all_mlps = {mlp(layer) for layer in range(setup.engine.L)}
    expected = evaluate_circuit(setup, nodes={head(0, 0)} | all_mlps)["kept_fraction"]
    assert with_mlps["without_shared"]["kept_fraction"] == pytest.approx(expected, abs=1e-6)
