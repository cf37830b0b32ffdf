"""Covers: ACDC as the reference implementation runs it (TLACDCExperiment's order, q/k/v-to-head edges, skipping
of receivers that reach nothing) against a one-edge-at-a-time reimplementation written here from the paper's
pseudocode, on the shipped toy model for every task; exact batching; the head-major variant; refusals."""

from __future__ import annotations

import pytest
import torch

from discovery.methods.acdc import acdc
from discovery.patching import prepare
from tests.helpers import acdc_by_the_paper

TASKS = ("digits", "numwords", "months", "greater-than", "ioi")
TAU = 0.01


@pytest.fixture(scope="module")
def toy_setups():
    from discovery.models import load_model
    from discovery.tasks.filtering import prepare_dataset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is faster on a shared 2-core machine
    model = load_model("toy")
    yield {task: prepare(model, prepare_dataset(task, model, n=16, seed=0), metric="kl") for task in TASKS}
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_acdc_keeps_the_edges_the_papers_algorithm_keeps(toy_setups, task: str) -> None:
    setup = toy_setups[task]
    kept, cut, _ = acdc_by_the_paper(setup, TAU)
    out = acdc(setup, threshold=TAU)  # order="reference", batched
    assert {e.edge for e in out.edges if e.kept} == kept
    removed = {tuple(k.split("->")[0].rsplit(".", 1)) for k in out.extras["qkv_to_head_removed"]}
    assert removed == {(node.key, inp) for node, inp in cut}
    assert 0 < len(kept) < len(out.edges)  # a real decision, not all or nothing
    counts = out.extras["edge_counts"]
    assert (counts["residual_edges"], counts["qkv_to_head_edges"]) == (setup.graph.n_edges(), 3 * 4 * 4)
    tested = counts["tested_residual"] + counts["tested_qkv_to_head"] + counts["skipped_untested"]
    assert tested == counts["residual_edges"] + counts["qkv_to_head_edges"]


@pytest.mark.slow
def test_batched_acdc_makes_the_one_at_a_time_decisions_in_both_orders(toy_setups) -> None:
    setup = toy_setups["digits"]
    for order in ("reference", "head-major"):
        one = acdc(setup, threshold=TAU, order=order, max_batch=1)
        many = acdc(setup, threshold=TAU, order=order, max_batch=64)
        assert {e.edge for e in many.edges if e.kept} == {e.edge for e in one.edges if e.kept}, order
        scores_one = {e.edge: e.score for e in one.edges}
        assert all(abs(scores_one[e.edge] - e.score) < 1e-4 or (e.score != e.score and scores_one[e.edge]
                   != scores_one[e.edge]) for e in many.edges)


@pytest.mark.slow
def test_the_head_major_variant_is_another_circuit(toy_setups) -> None:
    differ = []
    for task in ("greater-than", "ioi"):
        reference = {e.edge for e in acdc(toy_setups[task], threshold=TAU).edges if e.kept}
        head_major = acdc(toy_setups[task], threshold=TAU, order="head-major")
        assert head_major.extras["edge_counts"]["qkv_to_head_edges"] == 0
        differ.append(len(reference ^ {e.edge for e in head_major.edges if e.kept}))
    assert max(differ) > 0, differ


def test_acdc_circuit_loss_matches_an_independent_evaluation(toy_setups) -> None:
    setup = toy_setups["digits"]
    out = acdc(setup, threshold=0.02)
    kept = [e.edge for e in out.edges if e.kept]
    mask = setup.mask_from_edges(kept)
    for key in out.extras["qkv_to_head_removed"]:  # a removed q/k/v-to-head edge: that input reads the corrupted run
        node_key, inp = key.split("->")[0].rsplit(".", 1)
        node = next(n for n in setup.graph.nodes if n.key == node_key)
        assert mask[:, setup.graph.dest_index[(node, inp)]].sum() == 0
    loss = float(setup.losses(mask.unsqueeze(0))[0])
    assert loss == pytest.approx(out.extras["final_loss"], abs=1e-4)
    assert len(out.edges) == setup.graph.n_edges()


def test_bad_settings_are_refused(toy_setups) -> None:
    from discovery.errors import SettingsError

    with pytest.raises(SettingsError):
        acdc(toy_setups["digits"], threshold=-1)
    with pytest.raises(SettingsError):
        acdc(toy_setups["digits"], threshold=0.1, order="sideways")
