"""Covers: the masked run's shortcuts change no number: positions computed at the last position alone, sources
nobody reads left out, sources read from a base circuit instead of recomputed, a copy adopted as the next base;
and ACDC with all of them (batched, speculative) keeps the circuit that the plain one-edge-at-a-time definition
keeps, computed without any shortcut, on a random model at a threshold that keeps edges."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import pytest
import torch

from discovery.engine import PatchingEngine
from discovery.masked import ALL, LAST, NONE
from discovery.methods.acdc import acdc
from discovery.patching import PatchSetup, prepare_from_engine
from discovery.weights import GPT2Weights
from tests.helpers import SyntheticDataset, acdc_by_the_paper

L, H, D_MODEL, VOCAB, N, P = 3, 4, 32, 40, 6, 7


def random_weights(seed: int, std: float = 0.3) -> GPT2Weights:
    """A GPT-2 with large random weights, so that edges matter and ACDC's loss rises are spread out."""
    g = torch.Generator().manual_seed(seed)
    e, f = D_MODEL // H, 4 * D_MODEL

    def normal(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=g) * std

    return GPT2Weights(
        W_E=normal(VOCAB, D_MODEL) * 3, W_pos=normal(16, D_MODEL) * 3,
        W_Q=normal(L, H, D_MODEL, e), W_K=normal(L, H, D_MODEL, e), W_V=normal(L, H, D_MODEL, e),
        b_Q=normal(L, H, e), b_K=normal(L, H, e), b_V=normal(L, H, e),
        W_O=normal(L, H, e, D_MODEL), b_O=normal(L, D_MODEL),
        W_in=normal(L, D_MODEL, f), b_in=normal(L, f), W_out=normal(L, f, D_MODEL), b_out=normal(L, D_MODEL),
        W_U=normal(D_MODEL, VOCAB), b_U=normal(VOCAB),
        ln1_w=1 + normal(L, D_MODEL), ln1_b=normal(L, D_MODEL), ln2_w=1 + normal(L, D_MODEL),
        ln2_b=normal(L, D_MODEL), lnf_w=1 + normal(D_MODEL), lnf_b=normal(D_MODEL),
    )


def make_setup(positions: Optional[list[int]] = None) -> PatchSetup:
    g = torch.Generator().manual_seed(7)
    clean = torch.randint(0, VOCAB, (N, P), generator=g)
    corrupted = torch.randint(0, VOCAB, (N, P), generator=g)
    ones = torch.ones(N, 1, dtype=torch.bool)
    data = SyntheticDataset(clean, corrupted, torch.randint(0, VOCAB, (N, 1), generator=g), ones,
                torch.randint(0, VOCAB, (N, 1), generator=g), ones)
    return prepare_from_engine(PatchingEngine(random_weights(0)), clean, corrupted, data, metric="kl",
                               positions=positions)


@pytest.fixture(scope="module")
def setup() -> Iterator[PatchSetup]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is faster on a shared 2-core machine
    yield make_setup()
    torch.set_num_threads(threads)


def sparse_mask(setup: PatchSetup, keep: float, seed: int) -> torch.Tensor:
    return (torch.rand(setup.full_mask().shape[1:], generator=torch.Generator().manual_seed(seed)) < keep).float()


def without_shortcuts(setup: PatchSetup, masks: torch.Tensor) -> torch.Tensor:
    """Last-position logits ``[C, B, V]`` with every source computed at every position: asking for every source's
    output turns the position pruning off, and no base is given."""
    out = setup.engine.forward(setup.tokens, masks=masks, patch=setup.patch, return_sources=True,
                               positions=setup.positions)
    return out.logits


def test_last_position_pruning_changes_no_logit(setup: PatchSetup) -> None:
    masks = torch.stack([sparse_mask(setup, 0.15, seed) for seed in range(5)])
    with torch.no_grad():
        pruned = setup.engine.forward(setup.tokens, masks=masks, patch=setup.patch)
    assert pruned.masked is not None
    need = pruned.masked.plan.need
    assert {int(x) for x in need.unique()} == {NONE, LAST, ALL}  # every shortcut was taken somewhere
    assert torch.allclose(pruned.logits, without_shortcuts(setup, masks), atol=1e-5)


def test_sources_read_from_a_base_equal_recomputed_ones(setup: PatchSetup) -> None:
    circuit = sparse_mask(setup, 0.4, 11)
    base = setup.circuit_base(circuit)
    g = torch.Generator().manual_seed(12)
    masks = torch.stack([circuit * (torch.rand(circuit.shape, generator=g) > 0.05) for _ in range(4)])
    masks[:, :, : setup.engine.head_dests(1).start] = circuit[:, : setup.engine.head_dests(1).start]  # layer 0 alike
    with torch.no_grad():
        out = setup.engine.forward(setup.tokens, masks=masks, patch=setup.patch, base=base)
    assert out.masked is not None
    assert not bool(out.masked.plan.computed[1 : setup.engine.n_up_heads(1)].any())  # layer 0 read from the base
    assert torch.allclose(out.logits, without_shortcuts(setup, masks), atol=1e-5)


def test_an_adopted_copy_is_the_base_of_later_runs(setup: PatchSetup) -> None:
    start = setup.full_mask()[0]
    base = setup.model_base
    g = torch.Generator().manual_seed(13)
    for step in range(4):  # as ACDC goes: each base is a copy of the run before, edges only ever removed
        masks = torch.stack([start * (torch.rand(start.shape, generator=g) > 0.3) for _ in range(3)])
        losses, run = setup.trial(masks, 0, base)
        assert torch.allclose(losses, setup.metric.loss(without_shortcuts(setup, masks)), atol=1e-5)
        base = run.adopt(step % 3)
        start = masks[step % 3]
        assert torch.equal(base[1], start)


def acdc_without_shortcuts(setup: PatchSetup, tau: float) -> tuple[set, dict]:
    """ACDC one edge at a time in the reference order (``tests.helpers.acdc_by_the_paper``), each loss from a
    forward with no shortcut at all; returns the kept edges and every tested edge's rise."""

    def loss(mask: torch.Tensor) -> float:
        return float(setup.metric.loss(without_shortcuts(setup, mask.unsqueeze(0)))[0])

    kept, _, rises = acdc_by_the_paper(setup, tau, loss)
    return kept, rises


@pytest.mark.parametrize("tau", [0.01, 0.05])  # 16 % and 4 % of the edges kept
def test_acdc_with_every_shortcut_keeps_the_plain_definitions_circuit(setup: PatchSetup, tau: float) -> None:
    check_acdc(setup, tau)


def test_acdc_with_ablations_at_some_positions_keeps_the_plain_definitions_circuit(setup: PatchSetup) -> None:
    """Positions: the masks apply at the last two positions only; nothing is pruned, but bases are still used."""
    check_acdc(make_setup(positions=[P - 2, P - 1]), 0.01)


def check_acdc(setup: PatchSetup, tau: float) -> None:
    kept, rises = acdc_without_shortcuts(setup, tau)
    n = setup.graph.n_edges()
    assert 0.02 * n < len(kept) < 0.6 * n, len(kept)  # a threshold that keeps edges, not all or nothing
    # every decision clear of float rounding, so the comparison below is about the algorithm
    assert min(abs(r - tau) for r in rises.values()) > 1e-5
    for batch in (1, 64):
        out = acdc(setup, threshold=tau, max_batch=batch)
        assert {e.edge for e in out.edges if e.kept} == kept, batch
        graph = setup.graph
        for e in out.edges:
            key = (graph.source_index[e.edge.src], graph.dest_index[(e.edge.dst, e.edge.input)])
            if key in rises:
                assert e.score == pytest.approx(rises[key], abs=1e-5)
        if batch == 64:
            stats = out.extras["batching"]
            assert stats["wasted_copies"] < stats["copies"]
            assert stats["mispredicted"] > 0  # kept edges were met, so guesses were made and checked
