"""Covers: the planted-circuit model's ground truth, and that ACDC, EAP, EAP-IG and path patching recover it exactly."""

from __future__ import annotations

import pytest
import torch

from discovery.methods.acdc import acdc
from discovery.methods.eap import eap, eap_ig
from discovery.methods.path_patching import path_patching
from discovery.patching import PatchSetup, prepare

from .planted import LOGIT_DIFF, Planted


def _single_edge_effects(setup: PatchSetup) -> dict:
    """metric(only this edge patched) - metric(model), for every edge, one batched forward."""
    edges = setup.graph.edges
    masks = setup.full_mask(len(edges))
    for i, e in enumerate(edges):
        masks[i, setup.graph.source_index[e.src], setup.graph.dest_index[(e.dst, e.input)]] = 0
    return dict(zip(edges, (setup.values(masks) - setup.model_value).tolist()))


def _precision_recall(found: set, truth: set) -> tuple[float, float]:
    hit = len(found & truth)
    return (hit / len(found) if found else 0.0), hit / len(truth)


@pytest.fixture(scope="module")
def logit_setup(planted: Planted) -> PatchSetup:
    return prepare(planted.model, planted.dataset, metric="logit-diff")


@pytest.fixture(scope="module")
def kl_setup(planted: Planted) -> PatchSetup:
    return prepare(planted.model, planted.dataset, metric="kl")


def test_the_model_does_the_task_only_through_the_planted_edges(planted: Planted, logit_setup: PatchSetup) -> None:
    assert logit_setup.model_value == pytest.approx(LOGIT_DIFF, abs=1e-3)
    assert logit_setup.empty_value == pytest.approx(-LOGIT_DIFF, abs=1e-3)
    for edge, effect in _single_edge_effects(logit_setup).items():
        if edge in planted.edges:
            assert effect == pytest.approx(-2 * LOGIT_DIFF, abs=1e-3), edge
        else:
            assert abs(effect) < 1e-4, edge


def test_mean_ablation_keeps_the_planted_edges_dominant(planted: Planted) -> None:
    setup = prepare(planted.model, planted.dataset, ablation="mean")
    effects = _single_edge_effects(setup)
    assert min(abs(effects[e]) for e in planted.edges) > 0.9 * LOGIT_DIFF
    assert max(abs(v) for e, v in effects.items() if e not in planted.edges) < 0.05 * LOGIT_DIFF


def test_the_planted_truth_is_consistent(planted: Planted) -> None:
    ends = {e.src for e in planted.edges} | {e.dst for e in planted.edges}
    assert ends == set(planted.nodes)
    assert {n.key for n in planted.heads} == {"a0.0", "a1.0"}
    assert planted.dataset.clean.shape == planted.dataset.corrupted.shape
    assert torch.equal(planted.dataset.clean[:, [0, 2, 3]], planted.dataset.corrupted[:, [0, 2, 3]])


def test_acdc_recovers_the_planted_edges(planted: Planted, kl_setup: PatchSetup) -> None:
    out = acdc(kl_setup, threshold=0.01)
    assert _precision_recall(set(out.kept_edges), set(planted.edges)) == (1.0, 1.0)


@pytest.mark.parametrize("metric", ["logit-diff", "kl"])
def test_eap_top_k_recovers_the_planted_edges(planted: Planted, logit_setup: PatchSetup, kl_setup: PatchSetup,
                                              metric: str) -> None:
    setup = logit_setup if metric == "logit-diff" else kl_setup
    out = eap(setup, top_k=len(planted.edges))
    assert _precision_recall(set(out.kept_edges), set(planted.edges)) == (1.0, 1.0)
    sign = -1 if metric == "logit-diff" else 1  # patching a planted edge lowers the logit diff, raises KL
    assert all(sign * e.score > 0 for e in out.edges if e.kept)


def test_eap_threshold_recovers_the_planted_edges(planted: Planted, logit_setup: PatchSetup) -> None:
    out = eap(logit_setup, threshold=LOGIT_DIFF / 2)
    assert set(out.kept_edges) == set(planted.edges)


def test_eap_target_recovers_the_planted_edges(planted: Planted, logit_setup: PatchSetup) -> None:
    out = eap(logit_setup, target=0.9)
    assert set(out.kept_edges) == set(planted.edges)
    assert out.extras["share"] == pytest.approx(1.0, abs=1e-4)


def test_eap_ig_recovers_the_planted_edges(planted: Planted, logit_setup: PatchSetup) -> None:
    out = eap_ig(logit_setup, top_k=len(planted.edges), steps=3)
    assert set(out.kept_edges) == set(planted.edges)


@pytest.mark.parametrize("metric", ["logit-diff", "kl"])
def test_path_patching_from_the_logits_recovers_the_planted_nodes_and_edges(
    planted: Planted, logit_setup: PatchSetup, kl_setup: PatchSetup, metric: str
) -> None:
    setup = logit_setup if metric == "logit-diff" else kl_setup
    out = path_patching(setup, threshold=0.1)
    assert _precision_recall(set(out.kept_nodes), set(planted.nodes)) == (1.0, 1.0)
    assert set(out.kept_edges) == set(planted.edges)
    rounds = {n.node.key: n.attributes.get("round") for n in out.nodes if n.kept}
    assert rounds == {"logits": 0, "a1.0": 1, "a0.0": 2, "embed": 3}
