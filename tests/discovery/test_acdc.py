"""Covers: ACDC as the reference implementation runs it (TLACDCExperiment's order, q/k/v-to-head edges, skipping
of receivers that reach nothing) against a one-edge-at-a-time reimplementation written here from the paper's
pseudocode, on the shipped toy model for every task; exact batching; the head-major variant; refusals."""

from __future__ import annotations

import pytest
import torch

from discovery.graph import QKV, NodeKind
from discovery.methods.acdc import acdc
from discovery.patching import PatchSetup, prepare

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


def acdc_by_the_paper(setup: PatchSetup, tau: float) -> tuple[set, set]:
    """Conmy et al.'s algorithm one edge at a time, in the reference implementation's order: receivers from the
    logits down; per layer the MLP input, the heads' v, k, q input-to-head edges (heads from the last), then their
    v, k, q inputs; parents latest first; an edge goes when the loss rises by less than tau; a receiver whose
    output reaches nothing (or whose input-to-head edge went) is skipped and loses its incoming edges."""
    graph, e = setup.graph, setup.engine
    mask = setup.full_mask()[0]
    is_edge = torch.zeros_like(mask, dtype=torch.bool)
    for edge in graph.edges:
        is_edge[graph.source_index[edge.src], graph.dest_index[(edge.dst, edge.input)]] = True
    current = float(setup.losses(mask)[0])
    cut: set[int] = set()

    def try_removing(entries: list[tuple[int, int]]) -> bool:
        nonlocal current
        trial = mask.clone()
        for s, d in entries:
            trial[s, d] = 0
        loss = float(setup.losses(trial)[0])
        if loss - current < tau:
            mask.copy_(trial)
            current = loss
            return True
        return False

    def reaches_something(d: int) -> bool:
        node, _ = graph.destinations[d]
        if node.kind is NodeKind.LOGITS:
            return True
        s = graph.source_index[node]
        return d not in cut and bool((mask[s].gt(0) & is_edge[s]).any())

    def visit(d: int) -> None:
        if not reaches_something(d):
            mask[:, d] = 0
            return
        node, _ = graph.destinations[d]
        for s in reversed(range(graph.n_upstream(node))):
            try_removing([(s, d)])

    visit(e.logits_dest)
    for layer in reversed(range(e.L)):
        visit(e.mlp_dest(layer))
        inputs = {x: [e.head_dests(layer).start + 3 * h + QKV.index(x) for h in reversed(range(e.H))] for x in QKV}
        for x in ("v", "k", "q"):
            for d in inputs[x]:
                node, _ = graph.destinations[d]
                if reaches_something(d) and try_removing([(s, d) for s in range(graph.n_upstream(node))]):
                    cut.add(d)
        for x in ("v", "k", "q"):
            for d in inputs[x]:
                visit(d)
    kept = {edge for edge in graph.edges if mask[graph.source_index[edge.src], graph.dest_index[(edge.dst, edge.input)]] > 0}
    return kept, {graph.destinations[d] for d in cut}


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_acdc_keeps_the_edges_the_papers_algorithm_keeps(toy_setups, task: str) -> None:
    setup = toy_setups[task]
    kept, cut = acdc_by_the_paper(setup, TAU)
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
