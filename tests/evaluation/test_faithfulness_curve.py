"""Covers: MIB faithfulness curve (endpoints, one batched run, top-k cut), CPR/CMD by the trapezoid rule, plot_curves files."""

from __future__ import annotations

import pytest
import torch

from discovery.errors import SettingsError
from discovery.evaluation import Curve, evaluate_circuit, faithfulness_curve, plot_curves, trapezoid
from discovery.evaluation.connectivity import connected_core


def random_scores(setup, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    edges = setup.graph.edges
    return list(zip(edges, torch.randn(len(edges), generator=g).tolist()))


def test_endpoints_and_one_batched_run(setup, monkeypatch) -> None:
    scores = random_scores(setup)
    setup.empty_value  # noqa: B018 - cached before counting runs
    calls = []
    original = setup.logits
    monkeypatch.setattr(setup, "logits", lambda masks, *a, **k: calls.append(masks.shape[0]) or original(masks, *a, **k))
    curve = faithfulness_curve(setup, scores, ks=(0.0, 0.01, 0.1, 0.5, 1.0))
    assert calls == [5]  # every k in one stacked evaluation
    assert curve.faithfulness[0] == pytest.approx(0.0, abs=1e-6)  # the empty circuit
    assert curve.faithfulness[-1] == pytest.approx(1.0, abs=1e-5)  # every edge: the model
    assert curve.n_edges == len(setup.graph.edges) and curve.n_kept[-1] == curve.n_edges
    assert curve.n_requested == tuple(int(k * curve.n_edges) for k in curve.ks)


def test_a_point_is_the_pruned_top_k_by_absolute_score(setup) -> None:
    scores = random_scores(setup, seed=3)
    curve = faithfulness_curve(setup, scores, ks=(0.2, 1.0))
    n = int(0.2 * len(scores))
    top = [e for e, _ in sorted(scores, key=lambda p: -abs(p[1]))[:n]]
    ev = evaluate_circuit(setup, edges=connected_core(top))
    assert curve.values[0] == pytest.approx(ev["value"], abs=1e-5)
    assert curve.faithfulness[0] == pytest.approx(ev["faithfulness"], abs=1e-5)
    assert curve.n_kept[0] == len(connected_core(top)) <= n


def test_cpr_and_cmd_on_a_hand_computed_curve() -> None:
    curve = Curve(ks=(0.1, 0.5, 1.0), n_requested=(1, 5, 10), n_kept=(1, 5, 10), values=(0.0, 0.0, 0.0),
                  faithfulness=(0.2, 0.6, 1.2), model_value=1.0, empty_value=0.0, n_edges=10)
    # CPR: 0.4 * (0.2 + 0.6) / 2 + 0.5 * (0.6 + 1.2) / 2 = 0.16 + 0.45
    assert curve.cpr == pytest.approx(0.61)
    # CMD: |1 - f| = 0.8, 0.4, 0.2 -> 0.4 * 1.2 / 2 + 0.5 * 0.6 / 2 = 0.24 + 0.15
    assert curve.cmd == pytest.approx(0.39)
    assert trapezoid([0, 1], [1, 1]) == 1.0
    with pytest.raises(ValueError):
        trapezoid([0.5], [1.0])


def test_bad_ks_are_refused(setup) -> None:
    with pytest.raises(SettingsError):
        faithfulness_curve(setup, random_scores(setup), ks=(0.5, 0.1))
    with pytest.raises(SettingsError):
        faithfulness_curve(setup, random_scores(setup), ks=(1.5,))


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_plot_curves_writes_the_file_type_of_the_suffix(tmp_path, suffix, magic) -> None:
    curves = {
        name: Curve(ks=(0.001, 0.01, 0.1, 1.0), n_requested=(0, 3, 32, 324), n_kept=(0, 3, 30, 324),
                    values=(0.0,) * 4, faithfulness=f, model_value=1.0, empty_value=0.0, n_edges=324)
        for name, f in {"eap": (0.1, 0.5, 0.9, 1.0), "acdc": (0.0, 0.3, 0.8, 1.0)}.items()
    }
    path = plot_curves(curves, tmp_path / f"curves{suffix}")
    assert path.read_bytes()[:4] == magic
    with pytest.raises(SettingsError):
        plot_curves(curves, tmp_path / "curves.txt")
