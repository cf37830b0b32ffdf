"""Covers: EAP and EAP-IG scores (against autograd through the masks and slow single-edge patching), circuit selection (threshold, top-k, target) and settings errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from discovery.errors import SettingsError
from discovery.methods.base import edge_matrix
from discovery.methods.eap import attribution_scores, eap, eap_ig
from discovery.metrics import faithfulness, kept_fraction
from discovery.patching import PatchSetup, prepare
from discovery.topology import connected_core, is_connected


@pytest.fixture
def setup(random_model, random_dataset) -> PatchSetup:
    return prepare(random_model, random_dataset)


def _edge_values(setup: PatchSetup, scores: torch.Tensor) -> torch.Tensor:
    return scores[edge_matrix(setup.graph, setup.device)]


def _mask_slope(setup: PatchSetup, h: float = 1e-2) -> torch.Tensor:
    """d(metric)/d(mask) at mask = 1 for every edge, by central differences of the engine's masks (the masked
    forward is not differentiable: it fills preallocated buffers in place)."""
    idx = edge_matrix(setup.graph, setup.device).nonzero()
    n = len(idx)
    masks = setup.full_mask(2 * n)
    masks[torch.arange(n), idx[:, 0], idx[:, 1]] = 1 + h
    masks[n + torch.arange(n), idx[:, 0], idx[:, 1]] = 1 - h
    v = setup.values(masks)
    return (v[:n] - v[n:]) / (2 * h)


def _single_edge_effects(setup: PatchSetup) -> torch.Tensor:
    """The slow reference: metric(only this edge patched) - metric(model), edge by edge (as stacked copies)."""
    idx = edge_matrix(setup.graph, setup.device).nonzero()
    masks = setup.full_mask(len(idx))
    masks[torch.arange(len(idx)), idx[:, 0], idx[:, 1]] = 0
    return setup.values(masks) - setup.model_value


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = (x.argsort().argsort().double() for x in (a, b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def _scaled_patch(setup: PatchSetup, eps: float) -> PatchSetup:
    """The same experiment with patch values moved only ``eps`` of the way from clean to ablated."""
    return dataclasses.replace(setup, patch=setup.clean + eps * (setup.patch - setup.clean), _cache={})


# -- the scores ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ablation", ["patch", "mean"])
def test_clean_scores_are_minus_the_mask_slope(random_model, random_dataset, ablation: str) -> None:
    """Patching s->d moves d's input by mask * (clean_s - patch_s): the score is exactly -d(metric)/d(mask)."""
    setup = prepare(random_model, random_dataset, ablation=ablation)
    scores = _edge_values(setup, attribution_scores(setup, [1.0]))
    slope = _mask_slope(setup)
    assert scores.abs().max() > 1e-3
    assert (scores + slope).abs().max() < 2e-3 * scores.abs().max()
    assert torch.isnan(attribution_scores(setup, [1.0])[~edge_matrix(setup.graph, setup.device)]).all()


def test_ablated_point_scores_are_the_mask_slope_of_the_swapped_run(setup: PatchSetup) -> None:
    """Run the corrupted prompts with the clean outputs as patch values: its mask slope is the score at the
    ablated end (patch ablation), sign included."""
    scores = _edge_values(setup, attribution_scores(setup, [0.0]))
    swapped = dataclasses.replace(setup, tokens=setup.corrupted_tokens, patch=setup.clean, _cache={})
    slope = _mask_slope(swapped)
    assert scores.abs().max() > 1e-3
    assert (scores - slope).abs().max() < 2e-3 * scores.abs().max()


def test_scores_agree_with_slow_single_edge_patching(setup: PatchSetup) -> None:
    """On small patches the estimate ranks edges as real patching does, and its error shrinks like eps^2."""
    errors = []
    for eps in (0.1, 0.01):
        small = _scaled_patch(setup, eps)
        real = _single_edge_effects(small)
        est = _edge_values(small, attribution_scores(small, [1.0]))
        assert _spearman(est, real) > 0.9
        errors.append(float((est - real).abs().max() / real.abs().max()))
    assert errors[0] < 0.15
    assert errors[1] < 0.2 * errors[0]  # relative error is O(eps): the linearisation is exact to first order


def test_eap_output_carries_the_scores_of_every_edge(setup: PatchSetup) -> None:
    out = eap(setup, top_k=5)
    scores = attribution_scores(setup, [1.0])
    assert len(out.edges) == setup.graph.n_edges()
    for e in out.edges[:20]:
        s = scores[setup.graph.source_index[e.edge.src], setup.graph.dest_index[(e.edge.dst, e.edge.input)]]
        assert e.score == pytest.approx(float(s), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("ablation", ["patch", "mean"])
def test_batching_prompts_changes_nothing(random_model, random_dataset, ablation: str) -> None:
    setup = prepare(random_model, random_dataset, ablation=ablation)
    whole = attribution_scores(setup, [1.0, 0.5])
    parts = attribution_scores(setup, [1.0, 0.5], batch_size=5)
    edges = edge_matrix(setup.graph, setup.device)
    assert torch.allclose(whole[edges], parts[edges], rtol=1e-4, atol=1e-7)


def test_eap_ig_with_one_step_is_eap_at_the_ablated_end(setup: PatchSetup) -> None:
    """k/steps for k = 0..steps-1 (the authors' code): one step is the gradient at the corrupted input."""
    ig = eap_ig(setup, top_k=10, steps=1)
    ablated = eap(setup, top_k=10, gradient_at="ablated")
    clean = eap(setup, top_k=10, gradient_at="clean")
    assert [e.score for e in ig.edges] == pytest.approx([e.score for e in ablated.edges], rel=1e-5, abs=1e-8)
    assert [e.score for e in ig.edges] != pytest.approx([e.score for e in clean.edges], rel=1e-2, abs=1e-6)


def test_eap_ig_averages_gradients_over_the_path(setup: PatchSetup) -> None:
    out = eap_ig(setup, top_k=10, steps=4)
    expected = attribution_scores(setup, [0.0, 0.25, 0.5, 0.75])
    by_edge = {e.edge: e.score for e in out.edges}
    for edge, score in list(by_edge.items())[:30]:
        s = expected[setup.graph.source_index[edge.src], setup.graph.dest_index[(edge.dst, edge.input)]]
        assert score == pytest.approx(float(s), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("method", [eap, eap_ig])
def test_identical_clean_and_corrupted_prompts_score_zero(random_model, random_dataset, method) -> None:
    random_dataset.corrupted = random_dataset.clean.clone()
    setup = prepare(random_model, random_dataset)
    out = method(setup, top_k=3)
    assert max(abs(e.score) for e in out.edges) == 0.0


def test_kl_uses_the_ablated_end_and_scores_positive_for_harm(random_model, random_dataset) -> None:
    setup = prepare(random_model, random_dataset, metric="kl")
    out = eap(setup, top_k=5)
    assert out.extras["gradient_at"] == "ablated"
    assert max(abs(e.score) for e in out.edges) > 0  # at the clean point every KL gradient is zero
    clean = attribution_scores(setup, [1.0])
    assert _edge_values(setup, clean).abs().max() < 1e-6


def test_grad_mode_is_left_as_found(setup: PatchSetup) -> None:
    with torch.no_grad():
        eap(setup, top_k=3)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()


# -- circuits -----------------------------------------------------------------------------------------------


def test_top_k_keeps_the_connected_part_of_the_k_largest_magnitudes(setup: PatchSetup) -> None:
    out = eap(setup, top_k=7)
    top = [e.edge for e in sorted(out.edges, key=lambda e: -abs(e.score))[:7]]
    kept = {e.edge for e in out.edges if e.kept}
    assert kept == connected_core(top) and out.extras["k"] == 7 and out.extras["n_kept"] == len(kept)
    assert is_connected(kept) or not kept  # the one cut rule: no dangling edge


def test_threshold_keeps_the_connected_part_of_scores_at_or_above_it(setup: PatchSetup) -> None:
    scores = sorted((abs(e.score) for e in eap(setup, top_k=1).edges), reverse=True)
    t = scores[9]
    out = eap(setup, threshold=t)
    assert out.threshold == t
    assert {e.edge for e in out.edges if e.kept} == connected_core(e.edge for e in out.edges if abs(e.score) >= t)
    assert out.extras["k"] == sum(abs(e.score) >= t for e in out.edges) >= 10


def _real_share(setup: PatchSetup, edges) -> float:
    """Independent evaluation: ablate everything outside the kept edges and measure."""
    value = float(setup.values(setup.mask_from_edges(edges).unsqueeze(0))[0])
    if setup.metric.name == "kl":
        return faithfulness(value, setup.model_value, setup.empty_value)
    return kept_fraction(value, setup.model_value)


@pytest.mark.parametrize("metric,target", [("logit-diff", 0.8), ("kl", 0.6)])
def test_target_circuits_reach_their_target_and_are_smallest(random_model, random_dataset, metric: str,
                                                             target: float) -> None:
    setup = prepare(random_model, random_dataset, metric=metric)
    if metric == "logit-diff" and setup.model_value < 0:  # keep the kept fraction meaningful
        random_dataset.answers, random_dataset.wrong = random_dataset.wrong, random_dataset.answers
        setup = prepare(random_model, random_dataset, metric=metric)
    out = eap(setup, target=target)
    k = out.extras["k"]
    kept = out.kept_edges
    ranked = [e.edge for e in sorted(out.edges, key=lambda e: -abs(e.score))]
    assert set(kept) == connected_core(ranked[:k]) and len(kept) == out.extras["n_kept"] <= k
    assert _real_share(setup, kept) >= target
    assert out.extras["share"] == pytest.approx(_real_share(setup, kept), abs=1e-5)
    if k > 0:  # the cut of one edge fewer misses the target
        assert _real_share(setup, connected_core(ranked[: k - 1])) < target


def test_target_of_the_whole_model_keeps_enough_edges(setup: PatchSetup) -> None:
    if setup.model_value <= 0:
        pytest.skip("the random model's logit difference is not positive on these prompts")
    out = eap(setup, target=1.0)
    assert _real_share(setup, out.kept_edges) >= 1.0 - 1e-6


# -- settings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({}, "exactly one of threshold"),
        ({"threshold": 0.1, "top_k": 3}, "got threshold, top_k"),
        ({"threshold": -1.0}, "must be >= 0"),
        ({"threshold": float("nan")}, "must be >= 0"),
        ({"top_k": -1}, "top_k must be"),
        ({"top_k": 10**6}, "top_k must be"),
        ({"top_k": 2.5}, "top_k must be"),
        ({"target": 0.0}, r"in \(0, 1\]"),
        ({"target": 1.5}, r"in \(0, 1\]"),
        ({"top_k": 3, "gradient_at": "middle"}, "gradient_at must be"),
        ({"top_k": 3, "batch_size": 0}, "batch_size must be"),
    ],
)
def test_bad_eap_settings_raise(setup: PatchSetup, kwargs: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        eap(setup, **kwargs)


@pytest.mark.parametrize("steps", [0, -2, 1.5, True])
def test_bad_ig_steps_raise(setup: PatchSetup, steps) -> None:
    with pytest.raises(SettingsError, match="steps must be"):
        eap_ig(setup, top_k=3, steps=steps)


@pytest.mark.parametrize("method", [eap, eap_ig])
def test_accuracy_is_refused(random_model, random_dataset, method) -> None:
    setup = prepare(random_model, random_dataset, metric="accuracy")
    with pytest.raises(SettingsError, match="differentiable"):
        method(setup, top_k=3)


def test_target_needs_a_positive_model_metric(setup: PatchSetup) -> None:
    flipped = dataclasses.replace(setup, _cache={"model": -1.0})
    with pytest.raises(SettingsError, match="m\\(model\\) > 0"):
        eap(flipped, target=0.5)
