"""Covers: ablation restricted to token positions: a patched edge carries the patch at the chosen positions and the
source's own output (in the same run) elsewhere, so an edge into the logits patched at a position the logits do
not read changes nothing, whatever was patched before it; all positions chosen is the unrestricted ablation."""

from __future__ import annotations

import pytest
import torch

from discovery.graph import EMBED, Edge, head, logits, mlp
from discovery.patching import prepare


@pytest.fixture(scope="module")
def toy():
    from discovery.models import load_model
    from discovery.tasks import build_dataset

    model = load_model("toy")
    return model, build_dataset("digits-list", model.tokenizer, n=16, seed=0)


def value(setup, edges_patched) -> float:
    mask = setup.full_mask()[0]
    for e in edges_patched:
        mask[setup.graph.source_index[e.src], setup.graph.dest_index[(e.dst, e.input)]] = 0
    return float(setup.values(mask.unsqueeze(0))[0])


def test_an_edge_into_the_logits_patched_where_they_do_not_read_changes_nothing(toy) -> None:
    # The case: toy digits, positions [1]. Patching m0->logits after embed->a0.0.v used to move the
    # metric (13.6425 -> 13.5412), because the clean run's m0 stood in at the other positions.
    model, data = toy
    setup = prepare(model, data, metric="logit-diff", ablation="patch", positions=[1])
    first = Edge(EMBED, head(0, 0), "v")
    then = Edge(mlp(0), logits(setup.engine.L))
    alone = value(setup, [first])
    assert alone != pytest.approx(setup.model_value, abs=1e-4)  # the first patch does change the model
    assert value(setup, [first, then]) == pytest.approx(alone, abs=1e-5)
    batched = setup.values(torch.stack([setup.full_mask()[0], setup.full_mask()[0]]))  # copies agree with one run
    assert float(batched[0]) == pytest.approx(setup.model_value, abs=1e-5)


def test_every_position_chosen_is_the_unrestricted_ablation(toy) -> None:
    model, data = toy
    everywhere = prepare(model, data, metric="logit-diff", ablation="mean")
    chosen = prepare(model, data, metric="logit-diff", ablation="mean", positions=list(range(data.seq_len)))
    edges = [Edge(EMBED, head(0, 0), "v"), Edge(head(0, 1), head(2, 3), "k"), Edge(mlp(1), logits(4))]
    assert value(chosen, edges) == pytest.approx(value(everywhere, edges), abs=1e-5)
    assert chosen.empty_value == pytest.approx(everywhere.empty_value, abs=1e-5)


def test_the_last_position_alone_is_where_the_logits_read(toy) -> None:
    # Patching only edges into the logits: at the last position it is the whole ablation, elsewhere nothing.
    model, data = toy
    into_logits = [e for e in prepare(model, data).graph.edges if e.dst.kind.value == "logits"]
    last = prepare(model, data, metric="logit-diff", positions=[-1])
    first = prepare(model, data, metric="logit-diff", positions=[0])
    full = prepare(model, data, metric="logit-diff")
    assert value(last, into_logits) == pytest.approx(value(full, into_logits), abs=1e-5)
    assert value(first, into_logits) == pytest.approx(full.model_value, abs=1e-5)
