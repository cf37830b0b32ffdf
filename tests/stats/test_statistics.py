"""Covers: catalog.stats on constructed cases with known answers: Jaccard distributions and frequencies, the
stability verdict, the overlap null (identical, disjoint, a planted shared core; exact hypergeometric tail), the
+1-corrected p-value, and Holm / Benjamini-Hochberg against hand-computed values."""

from __future__ import annotations

import math

import pytest

from catalog.errors import InvalidCircuit
from catalog.stats import (
    adjust,
    benjamini_hochberg,
    exact_node_p,
    frequencies,
    holm,
    hypergeometric_pmf,
    overlap_null,
    overlap_nulls,
    pairwise_jaccards,
    percentile,
    stability,
    summarize,
    upper_p_value,
    verdict,
)
from discovery.graph import ModelShape
from tests.stats.builders import edges_circuit, nodes_circuit

GPT2 = ModelShape(12, 12)
TOY = ModelShape(4, 4)


def test_pairwise_jaccards_and_their_summary_by_hand() -> None:
    sets = [{"a", "b"}, {"a", "b"}, {"a", "c"}]
    # pairs (0,1): 2/2 = 1; (0,2): 1/3; (1,2): 1/3
    assert pairwise_jaccards(sets) == pytest.approx((1.0, 1 / 3, 1 / 3))
    s = summarize(pairwise_jaccards(sets))
    assert s.n == 3 and s.mean == pytest.approx(5 / 9)
    # linear interpolation between order statistics 1/3, 1/3, 1: rank 0.05 -> 1/3; rank 1.95 -> 1/3 + 0.95 * 2/3
    assert s.low == pytest.approx(1 / 3) and s.high == pytest.approx(1 / 3 + 0.95 * 2 / 3)
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert math.isnan(percentile([], 50))


def test_frequencies_are_shares_most_frequent_first_then_model_order() -> None:
    freq = frequencies([{"m1", "a0.1"}, {"a0.1", "a1.0"}, {"a0.1", "m1"}, {"a2.3"}], "nodes")
    assert freq == {"a0.1": 0.75, "m1": 0.5, "a1.0": 0.25, "a2.3": 0.25}
    assert list(freq) == ["a0.1", "m1", "a1.0", "a2.3"]


def test_identical_resamples_are_perfectly_stable_but_need_100_runs() -> None:
    runs = [nodes_circuit(f"r{i}", ["a0.1", "a1.2", "m2"]) for i in range(5)]
    report = stability(runs)
    assert report.level == "nodes" and report.jaccards == (1.0,) * 10
    assert report.jaccard.mean == 1.0 and report.node_frequency == {"a0.1": 1.0, "a1.2": 1.0, "m2": 1.0}
    assert report.verdict == "too-few-resamples" and "5 resamples" in report.verdict_text
    assert stability(runs, min_resamples=5).verdict == "stable"


def test_disjoint_resamples_are_unstable_and_edges_compared_when_known() -> None:
    runs = [edges_circuit("x", ["embed->a0.1.v", "a0.1->logits"]), edges_circuit("y", ["embed->m1", "m1->logits"])]
    report = stability(runs)
    assert report.level == "edges" and report.jaccards == (0.0,)
    assert report.edge_frequency == {"embed->a0.1.v": 0.5, "a0.1->logits": 0.5, "embed->m1": 0.5, "m1->logits": 0.5}
    assert report.node_jaccard.mean == 0.0 and report.verdict == "unstable"
    assert stability(runs, "nodes").level == "nodes"


def test_verdict_follows_the_bar() -> None:
    assert verdict(0.85, 120)[0] == "stable"
    assert verdict(0.79, 500)[0] == "unstable"
    assert verdict(0.67, 20)[0] == "unstable" and "fewer than the 100" in verdict(0.67, 20)[1]
    assert verdict(0.9, 99)[0] == "too-few-resamples"
    assert verdict(math.nan, 1)[0] == "too-few-resamples"


def test_plus_one_corrected_p_value() -> None:
    assert upper_p_value(5, [0, 1, 2, 3]) == pytest.approx(1 / 5)  # never 0
    assert upper_p_value(2, [0, 1, 2, 3]) == pytest.approx(3 / 5)  # ties count as at least as large
    assert upper_p_value(0, [0, 0]) == 1.0


def test_holm_and_benjamini_hochberg_against_hand_computed_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06 for the last
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04 -> running min from the top
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert adjust(p, "none") == p
    with pytest.raises(InvalidCircuit):
        adjust(p, "bonferroni")


def test_hypergeometric_tail_by_hand() -> None:
    # 2-of-4 against 2-of-4: P(shared = 0, 1, 2) = 1/6, 4/6, 1/6
    assert hypergeometric_pmf(4, 2, 2) == pytest.approx([1 / 6, 4 / 6, 1 / 6])
    assert exact_node_p(2, [(4, 2, 2)]) == pytest.approx(1 / 6)
    # two pools convolve: P(total >= 1) = 1 - P(0) P(0) = 1 - (1/6) * (1/2)
    assert exact_node_p(1, [(4, 2, 2), (2, 1, 1)]) == pytest.approx(1 - 1 / 12)


def test_identical_circuits_overlap_far_beyond_chance() -> None:
    heads = ["a0.1", "a3.4", "a5.5", "a9.1", "a10.7"]
    test = overlap_null(nodes_circuit("a", heads, model="gpt2"), nodes_circuit("b", heads, model="gpt2"), GPT2,
                        samples=500, seed=1)
    assert test.observed == 5 and test.jaccard == 1.0
    assert test.expected < 1 and test.p_value == pytest.approx(1 / 501)  # no random pair shares all five
    assert test.exact_p == pytest.approx(1 / math.comb(144, 5))


def test_disjoint_circuits_are_not_significant() -> None:
    a = nodes_circuit("a", ["a0.0", "a0.1", "m0"], model="gpt2")
    b = nodes_circuit("b", ["a5.0", "a6.1", "m7"], model="gpt2")
    test = overlap_null(a, b, GPT2, samples=300)
    assert test.observed == 0 and test.p_value == 1.0 and test.exact_p == pytest.approx(1.0)


def test_a_planted_shared_core_is_found_and_monte_carlo_agrees_with_the_exact_tail() -> None:
    core = ["a1.1", "a4.4", "a6.6", "a8.8", "a9.1", "m3"]
    a = nodes_circuit("a", [*core, "a0.5", "a2.2", "a3.3", "m1"], model="gpt2")
    b = nodes_circuit("b", [*core, "a7.7", "a10.1", "a11.2", "m9"], model="gpt2")
    test = overlap_null(a, b, GPT2, samples=2000, seed=3)
    assert test.observed == 6 and test.p_value < 0.01 and test.exact_p is not None and test.exact_p < 1e-3
    # 8 heads of 144 and 2 MLPs of 12 each: E[shared] = 8 * 8 / 144 + 2 * 2 / 12
    assert test.expected == pytest.approx(64 / 144 + 4 / 12, abs=0.06)
    # a weaker overlap where the Monte-Carlo p-value can be compared with the exact one
    c = nodes_circuit("c", ["a0.1", "a0.2", "m1", "m2", "m3"], model="gpt2")
    d = nodes_circuit("d", ["a0.1", "a5.2", "m1", "m4", "m5"], model="gpt2")
    weak = overlap_null(c, d, GPT2, samples=4000, seed=0)
    assert weak.observed == 2 and weak.p_value == pytest.approx(weak.exact_p, abs=0.02)


def test_heads_only_comparison_draws_heads_only() -> None:
    a = nodes_circuit("a", ["a0.1", "m0", "m1"], model="gpt2")
    b = nodes_circuit("b", ["a0.1", "m0", "m2"], model="gpt2")
    test = overlap_null(a, b, GPT2, samples=200, kinds=("head",))
    assert test.observed == 1 and test.union == 1 and "1 heads and 0 MLPs" in test.null


def test_edge_level_null_draws_connected_circuits_and_finds_a_planted_core() -> None:
    core = ["embed->a0.1.v", "a0.1->a2.3.q", "a2.3->m3", "m3->logits"]
    a = edges_circuit("a", [*core, "embed->m0", "m0->logits"])
    b = edges_circuit("b", [*core, "embed->a1.0.k", "a1.0->logits"])
    test = overlap_null(a, b, TOY, level="edges", samples=300, seed=2)
    assert test.observed == 4 and test.union == 8 and test.p_value < 0.05 and test.exact_p is None
    assert "connected" in test.null and test.expected < 2


def test_a_matrix_of_pairs_is_corrected_together() -> None:
    circuits = [nodes_circuit(n, keys, model="gpt2") for n, keys in
                (("x", ["a0.1", "a1.1", "a2.2"]), ("y", ["a0.1", "a1.1", "a2.2"]), ("z", ["a9.9", "a10.10", "m4"]))]
    tests = overlap_nulls(circuits, GPT2, samples=200, correction="holm")
    assert [(t.a, t.b) for t in tests] == [("x", "y"), ("x", "z"), ("y", "z")]
    assert [t.adjusted_p for t in tests] == pytest.approx(holm([t.p_value for t in tests]))
    assert tests[0].adjusted_p < 0.05 and tests[1].adjusted_p == 1.0
    bh = overlap_nulls(circuits, GPT2, samples=200, correction="bh")
    assert [t.adjusted_p for t in bh] == pytest.approx(benjamini_hochberg([t.p_value for t in bh]))


def test_circuits_of_another_model_are_refused() -> None:
    a = nodes_circuit("a", ["a11.11"], model="gpt2")
    with pytest.raises(InvalidCircuit, match="another model"):
        overlap_null(a, a, TOY, samples=10)
    with pytest.raises(InvalidCircuit, match="known only by its nodes"):
        overlap_null(a, a, GPT2, level="edges", samples=10)
