"""Covers: the patching engine's forward against TransformerBridge, and the invariances every method relies on."""

from __future__ import annotations

import pytest
import torch

from discovery import hooks
from discovery.engine import PatchingEngine
from discovery.graph import Edge, head, mlp
from discovery.patching import prepare, weights_for


@pytest.fixture(scope="module")
def engine(tiny_model) -> PatchingEngine:
    return PatchingEngine(weights_for(tiny_model))


def test_plain_forward_matches_bridge_logits(engine, tiny_model, dataset) -> None:
    assert engine.check_against_bridge(tiny_model.bridge, dataset.clean, atol=1e-5) < 1e-5


def test_source_outputs_match_bridge_hooks(engine, tiny_model, dataset) -> None:
    _, cache = tiny_model.bridge.run_with_cache(dataset.clean)
    sources = engine.run(dataset.clean).sources[0]
    for layer in range(engine.L):
        for h in range(engine.H):
            ref = cache[hooks.attn_result(layer)][:, :, h]
            assert torch.allclose(sources[engine.head_source(layer, h)], ref, atol=1e-5)
        assert torch.allclose(sources[engine.mlp_source(layer)], cache[hooks.mlp_out(layer)], atol=1e-5)


def test_per_head_hooks_do_not_change_logits(tiny_folder, dataset) -> None:
    from transformer_lens.model_bridge import TransformerBridge

    plain = TransformerBridge.boot_transformers(str(tiny_folder), device="cpu")
    plain.enable_compatibility_mode()
    hooked = TransformerBridge.boot_transformers(str(tiny_folder), device="cpu")
    hooked.enable_compatibility_mode()
    hooked.set_use_attn_result(True)
    hooked.set_use_split_qkv_input(True)
    hooked.set_use_hook_mlp_in(True)
    with torch.no_grad():
        assert torch.allclose(plain(dataset.clean), hooked(dataset.clean), atol=1e-5)


def test_keeping_every_edge_reproduces_the_model(tiny_model, dataset) -> None:
    setup = prepare(tiny_model, dataset)
    logits = setup.logits(setup.full_mask())
    assert torch.allclose(logits[0], setup.clean_logits, atol=1e-5)


def test_patching_every_edge_gives_the_corrupted_model(tiny_model, dataset) -> None:
    setup = prepare(tiny_model, dataset)
    corrupted = setup.engine.forward(dataset.corrupted).logits[0]
    assert torch.allclose(setup.logits(setup.full_mask() * 0)[0], corrupted, atol=1e-5)


def test_identical_clean_and_corrupted_inputs_change_nothing(tiny_model, dataset) -> None:
    dataset.corrupted = dataset.clean.clone()
    setup = prepare(tiny_model, dataset)
    masks = (torch.rand(5, *setup.full_mask().shape[1:], generator=torch.Generator().manual_seed(1)) > 0.5).float()
    out = setup.logits(masks)
    assert torch.allclose(out, setup.clean_logits.expand_as(out), atol=1e-5)


def test_one_edge_patch_matches_a_bridge_hook(tiny_model, dataset) -> None:
    """Patching a0.1 -> a1.2.q in the engine equals editing hook_q_input of head 1.2 in the bridge."""
    bridge = tiny_model.bridge
    _, clean_cache = bridge.run_with_cache(dataset.clean)
    _, corrupt_cache = bridge.run_with_cache(dataset.corrupted)
    swap = corrupt_cache[hooks.attn_result(0)][:, :, 1] - clean_cache[hooks.attn_result(0)][:, :, 1]

    def edit(x: torch.Tensor, hook) -> torch.Tensor:
        x = x.clone()
        x[:, :, 2] += swap
        return x

    with torch.no_grad():
        ref = bridge.run_with_hooks(dataset.clean, fwd_hooks=[(hooks.head_input(1, "q"), edit)])[:, -1]
    setup = prepare(tiny_model, dataset)
    keep = setup.full_mask()[0]
    drop = setup.mask_from_edges([Edge(head(0, 1), head(1, 2), "q")]).bool()
    ours = setup.logits((keep * ~drop).unsqueeze(0))[0]
    assert torch.allclose(ours, ref, atol=1e-5)
    assert not torch.allclose(ours, setup.clean_logits, atol=1e-3)  # the edge matters in this model


def test_starting_above_layer_zero_reuses_the_clean_run(tiny_model, dataset) -> None:
    setup = prepare(tiny_model, dataset)
    masks = setup.full_mask(3)
    layer1 = setup.engine.head_dests(1).start
    masks[:, :, layer1:] = (torch.rand(3, masks.shape[1], masks.shape[2] - layer1,
                                       generator=torch.Generator().manual_seed(2)) > 0.5).float()
    assert torch.allclose(setup.logits(masks), setup.logits(masks, start_layer=1), atol=1e-5)


def test_node_mask_ablates_a_whole_node(tiny_model, dataset) -> None:
    setup = prepare(tiny_model, dataset, ablation="mean")
    graph = setup.graph
    keep = [n for n in graph.sources if n != mlp(0)]
    m = setup.mask_from_nodes(keep)
    assert m[graph.source_index[mlp(0)]].sum() == 0
    assert m[graph.source_index[head(1, 0)]].sum() == m.shape[1]


def test_probes_give_input_gradients(tiny_model, dataset) -> None:
    engine = PatchingEngine(weights_for(tiny_model))
    out = engine.forward(dataset.clean, probes=True)
    out.logits.sum().backward()
    assert len(out.probes) == 2 * engine.L + 1
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in out.probes)


def test_stacked_copies_equal_separate_runs(tiny_model, dataset) -> None:
    """Copies that share most mask columns (computed once) must still equal one run per copy."""
    setup = prepare(tiny_model, dataset)
    g = torch.Generator().manual_seed(3)
    base = (torch.rand(setup.full_mask().shape[1:], generator=g) > 0.3).float()
    masks = base.repeat(4, 1, 1)
    layer1 = setup.engine.head_dests(1)
    masks[1, :, layer1.start + 2] = 0  # copy 1 differs at one input of head 1.0
    masks[2, 3, :] = 0  # copy 2 ablates one source everywhere
    masks[3] = (torch.rand(masks.shape[1:], generator=g) > 0.5).float()  # copy 3 differs everywhere
    together = setup.logits(masks)
    apart = torch.cat([setup.logits(masks[i : i + 1]) for i in range(4)])
    assert torch.allclose(together, apart, atol=1e-5)
    assert not torch.allclose(together[0], together[3], atol=1e-3)


def test_ablation_restricted_to_positions(tiny_model, dataset) -> None:
    """Every position = no restriction; position 0 alone changes nothing (clean and corrupted share token 0, and
    attention is causal); the last position alone does change the output."""
    choices = {"all": list(range(dataset.clean.shape[1])), "none": None, "first": [0], "last": [-1]}
    setups = {name: prepare(tiny_model, dataset, positions=positions) for name, positions in choices.items()}
    outputs = {name: s.logits(s.full_mask() * 0)[0] for name, s in setups.items()}  # every edge patched
    clean = setups["none"].clean_logits
    assert torch.allclose(outputs["all"], outputs["none"], atol=1e-5)
    assert torch.allclose(outputs["first"], clean, atol=1e-5)
    assert not torch.allclose(outputs["last"], clean, atol=1e-3)


def test_positions_outside_the_prompt_are_refused(tiny_model, dataset) -> None:
    from discovery.errors import SettingsError

    with pytest.raises(SettingsError, match="outside prompts"):
        prepare(tiny_model, dataset, positions=[99])
