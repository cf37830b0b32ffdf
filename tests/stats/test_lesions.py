"""Covers: the per-prompt spread evaluate_masks reports, lesions of the full model and the double-dissociation
verdict (discovery.evaluation.dissociation), on a tiny random engine."""

from __future__ import annotations

import pytest
import torch

from discovery.evaluation import evaluate_circuit
from discovery.evaluation.dissociation import lesion_sets, lesions, verdict
from discovery.graph import EMBED, NodeKind, head, mlp
from discovery.topology import internal_nodes
from tests.evaluation.conftest import make_setup


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_spread_over_prompts_is_that_of_the_per_prompt_metric() -> None:
    setup = make_setup(n_prompts=10)
    nodes = [head(0, 1), mlp(1), head(2, 0)]
    row = evaluate_circuit(setup, nodes=nodes)
    per_prompt = setup.metric.per_prompt(setup.logits(setup.mask_from_nodes([EMBED, *nodes]).unsqueeze(0)))[0]
    assert row["value"] == pytest.approx(float(per_prompt.mean()), abs=1e-5)
    assert row["value_std"] == pytest.approx(float(per_prompt.std()), rel=1e-4)
    assert row["value_sem"] == pytest.approx(row["value_std"] / 10**0.5) and row["n_prompts"] == 10


def test_lesions_remove_components_from_the_full_model() -> None:
    setup = make_setup(seed=1)
    every = internal_nodes(setup.graph)
    removed = {"nothing": [], "one": [head(1, 2)], "all": list(every)}
    rows = lesions(setup, removed)
    assert rows["nothing"]["performance"] == pytest.approx(1.0, abs=1e-5) and rows["nothing"]["damage"] == pytest.approx(
        0.0, abs=1e-5)
    keep = [n for n in every if n != head(1, 2)]
    assert rows["one"]["value"] == pytest.approx(evaluate_circuit(setup, nodes=keep)["value"], abs=1e-5)
    assert rows["all"]["value"] == pytest.approx(evaluate_circuit(setup, nodes=[])["value"], abs=1e-5)
    assert rows["one"]["removed"] == ["a1.2"]
    for row in rows.values():
        assert row["damage"] == pytest.approx(1 - row["performance"])


def test_lesion_sets_and_the_verdict_on_constructed_figures() -> None:
    a = [EMBED, head(0, 1), head(1, 1), mlp(0)]
    b = [head(0, 1), mlp(0), head(2, 2)]
    sets = lesion_sets(a, b)
    assert sets == {"shared": {head(0, 1), mlp(0)}, "only_a": {head(1, 1)}, "only_b": {head(2, 2)}}
    assert all(n.kind is not NodeKind.EMBED for s in sets.values() for n in s)

    def rows(shared: float, only_a: float, only_b: float) -> dict:
        return {"shared": {"damage": shared, "removed": ["x"]}, "only_a": {"damage": only_a, "removed": ["y"]},
                "only_b": {"damage": only_b, "removed": ["z"]}}

    double = verdict(rows(0.6, 0.3, 0.02), rows(0.5, 0.05, 0.4), hurt=0.1)
    assert double == {"shared_hurts_both": True, "only_a_hurts_only_a": True, "only_b_hurts_only_b": True,
                      "double_dissociation": True, "hurt": 0.1}
    one_way = verdict(rows(0.6, 0.3, 0.2), rows(0.05, 0.05, 0.4), hurt=0.1)
    assert not one_way["double_dissociation"] and one_way["only_a_hurts_only_a"] and not one_way["shared_hurts_both"]
    empty = {"shared": {"damage": 0.9, "removed": []}, "only_a": {"damage": 0.0, "removed": []},
             "only_b": {"damage": 0.0, "removed": []}}
    assert verdict(empty, empty)["shared_hurts_both"] is False  # removing nothing hurts nothing, whatever the noise
