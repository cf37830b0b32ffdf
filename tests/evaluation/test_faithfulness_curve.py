"""Covers: MIB's faithfulness curves (endpoints, one batched run, the pruned top-k by signed loss score for CPR and by
|score| for CMD, the score sign), CPR/CMD by the trapezoid rule, plot_curves files."""

from __future__ import annotations

import pytest
import torch

from discovery.errors import SettingsError
from discovery.evaluation import Curve, evaluate_circuit, faithfulness_curve, plot_curves, trapezoid
from discovery.evaluation.curves import Points
from discovery.topology import connected_core


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
    assert calls == [10]  # both curves, every k, in one stacked evaluation
    for points in (curve.signed, curve.absolute):
        assert points.faithfulness[0] == pytest.approx(0.0, abs=1e-6)  # the empty circuit
        assert points.faithfulness[-1] == pytest.approx(1.0, abs=1e-5)  # every edge: the model
        assert points.n_kept[-1] == curve.n_edges == len(setup.graph.edges)
        assert points.n_requested == tuple(int(k * curve.n_edges) for k in curve.ks)


@pytest.mark.parametrize("score_sign", ["metric", "loss"])
def test_cpr_ranks_by_signed_loss_score_and_cmd_by_magnitude(setup, score_sign: str) -> None:
    # MIB (print_results.py): CPR from edges ranked by signed score, CMD by |score|, under the loss sign. Under
    # logit difference a "metric" score (metric(patched) - metric(model)) is minus the loss one.
    scores = random_scores(setup, seed=3)
    curve = faithfulness_curve(setup, scores, ks=(0.2, 1.0), score_sign=score_sign)
    n = int(0.2 * len(scores))
    loss = (lambda s: -s) if score_sign == "metric" else (lambda s: s)
    by_signed = [e for e, _ in sorted(scores, key=lambda p: -loss(p[1]))[:n]]
    by_magnitude = [e for e, _ in sorted(scores, key=lambda p: -abs(p[1]))[:n]]
    for points, top in ((curve.signed, by_signed), (curve.absolute, by_magnitude)):
        ev = evaluate_circuit(setup, edges=connected_core(top))
        assert points.values[0] == pytest.approx(ev["value"], abs=1e-5)
        assert points.faithfulness[0] == pytest.approx(ev["faithfulness"], abs=1e-5)
        assert points.n_kept[0] == len(connected_core(top)) <= n
    assert curve.signed.values[0] != curve.absolute.values[0]  # the two rankings differ here
    variant = faithfulness_curve(setup, scores, ks=(0.2, 1.0), score_sign=score_sign, ranking="absolute")
    assert "variant" in variant.rule
    for points in (variant.signed, variant.absolute):  # the |score| ranking twice; values from other batches
        assert (points.n_requested, points.n_kept) == (curve.absolute.n_requested, curve.absolute.n_kept)
        assert points.values == pytest.approx(curve.absolute.values, rel=1e-6)
        assert points.faithfulness == pytest.approx(curve.absolute.faithfulness, rel=1e-6)


def _points(faithfulness: tuple[float, ...]) -> Points:
    n = len(faithfulness)
    return Points(n_requested=(0,) * n, n_kept=(0,) * n, values=(0.0,) * n, faithfulness=faithfulness)


def test_cpr_and_cmd_on_a_hand_computed_curve() -> None:
    curve = Curve(ks=(0.1, 0.5, 1.0), signed=_points((0.2, 0.6, 1.2)), absolute=_points((0.5, 1.5, 1.0)),
                  model_value=1.0, empty_value=0.0, n_edges=10)
    # CPR, on the signed curve: 0.4 * (0.2 + 0.6) / 2 + 0.5 * (0.6 + 1.2) / 2 = 0.16 + 0.45
    assert curve.cpr == pytest.approx(0.61)
    # CMD, on the |score| curve: |1 - f| = 0.5, 0.5, 0 -> 0.4 * 1.0 / 2 + 0.5 * 0.5 / 2 = 0.2 + 0.125
    assert curve.cmd == pytest.approx(0.325)
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
        name: Curve(ks=(0.001, 0.01, 0.1, 1.0), signed=_points(f), absolute=_points(f[::-1]), model_value=1.0,
                    empty_value=0.0, n_edges=324)
        for name, f in {"eap": (0.1, 0.5, 0.9, 1.0), "acdc": (0.0, 0.3, 0.8, 1.0)}.items()
    }
    path = plot_curves(curves, tmp_path / f"curves{suffix}")
    assert path.read_bytes()[:4] == magic
    with pytest.raises(SettingsError):
        plot_curves(curves, tmp_path / "curves.txt")
