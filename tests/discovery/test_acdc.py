"""Covers: ACDC's exact batching makes the one-edge-at-a-time decisions, on the shipped toy model and a task."""

from __future__ import annotations

import pytest
import torch

from discovery.methods.acdc import acdc
from discovery.patching import prepare


@pytest.fixture(scope="module")
def toy_setup():
    from discovery.models import load_model
    from discovery.tasks import build_dataset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is faster on a shared 2-core machine
    model = load_model("toy")
    dataset = build_dataset("digits", model.tokenizer, n=16, seed=0)
    yield prepare(model, dataset, metric="kl")
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_batched_acdc_keeps_the_same_edges_as_one_at_a_time(toy_setup) -> None:
    one = acdc(toy_setup, threshold=0.01, max_batch=1)
    many = acdc(toy_setup, threshold=0.01, max_batch=64)
    kept_one = {e.edge for e in one.edges if e.kept}
    kept_many = {e.edge for e in many.edges if e.kept}
    assert 0 < len(kept_one) < len(one.edges)  # a real decision, not all or nothing
    assert kept_many == kept_one
    scores_one = {e.edge: e.score for e in one.edges}
    assert all(abs(scores_one[e.edge] - e.score) < 1e-4 for e in many.edges)


def test_acdc_circuit_loss_matches_an_independent_evaluation(toy_setup) -> None:
    out = acdc(toy_setup, threshold=0.02)
    kept = [e.edge for e in out.edges if e.kept]
    loss = float(toy_setup.losses(toy_setup.mask_from_edges(kept).unsqueeze(0))[0])
    assert loss == pytest.approx(out.extras["final_loss"], abs=1e-4)
    assert len(out.edges) == toy_setup.graph.n_edges()


def test_bad_threshold_is_refused(toy_setup) -> None:
    from discovery.errors import SettingsError

    with pytest.raises(SettingsError):
        acdc(toy_setup, threshold=-1)
