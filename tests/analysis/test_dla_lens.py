"""Covers: DLA's exact split of the logit difference (heads + MLPs = logit diff - embed - biases), and the logit lens (last row = the model's logits, ranks, every position)."""

from __future__ import annotations

import pytest
import torch

from discovery.analysis.dla import analyze_dla, attributions
from discovery.analysis.logit_lens import analyze_logit_lens, lens_logits, target_ranks
from discovery.analysis.stream import as_engine
from discovery.graph import EMBED, NodeKind, head, mlp
from discovery.metrics import Metric
from tests.analysis.builders import random_prompts, random_weights

torch.set_num_threads(1)


@pytest.mark.parametrize("k_answers", [1, 3])
def test_heads_and_mlps_sum_to_logit_diff_minus_embed_and_bias_terms(k_answers: int) -> None:
    """logit_diff = sum_{heads, MLPs} DLA + DLA(embed) + DLA(sum b_O) + (mean b_U[answers] - mean b_U[wrong]),
    exactly, per prompt, with the final LayerNorm's divisor held at its value (LN scale and shift unfolded)."""
    w = random_weights()
    engine = as_engine(w)
    data = random_prompts(6, 7, 11, k_answers=k_answers)
    per_source, terms = attributions(engine, data)
    components = [i for i, n in enumerate(engine.graph.sources) if n.kind in (NodeKind.HEAD, NodeKind.MLP)]
    parts = per_source[components].sum(0)
    rest = terms["logit_diff"] - per_source[0] - terms["attn_bias"] - terms["unembed_bias"]
    assert torch.allclose(parts, rest, atol=1e-4)
    metric = Metric("logit-diff", data.answers, data.answers_mask, data.wrong, data.wrong_mask)
    model_logits = engine.forward(data.clean).logits  # [1, B, V]
    assert torch.allclose(terms["logit_diff"], metric.per_prompt(model_logits)[0], atol=1e-5)


def test_dla_figures_per_node_and_totals() -> None:
    engine = as_engine(random_weights())
    data = random_prompts(5, 6, 11)
    nodes = [EMBED, head(0, 1), mlp(1), head(1, 0)]
    result = analyze_dla(engine, data, nodes)
    per_source, _ = attributions(engine, data)
    assert set(result.nodes) == {"embed", "a0.1", "m1", "a1.0"}
    assert result.nodes["m1"]["dla"] == pytest.approx(float(per_source[engine.graph.source_index[mlp(1)]].mean()), abs=1e-4)
    t = result.totals
    assert t["heads_and_mlps"] == pytest.approx(t["logit_diff"] - t["embed"] - t["attn_bias"] - t["unembed_bias"], abs=1e-3)
    assert t["circuit"] == pytest.approx(result.nodes["a0.1"]["dla"] + result.nodes["m1"]["dla"] + result.nodes["a1.0"]["dla"], abs=1e-3)


def test_dla_identity_on_a_bridge_loaded_model(tiny_model) -> None:
    data = random_prompts(4, 6, 43, bos=1, seed=3)
    engine = as_engine(tiny_model)
    per_source, terms = attributions(engine, data)
    with torch.no_grad():
        logits = tiny_model.bridge(data.clean)[:, -1].float()
    metric = Metric("logit-diff", data.answers, data.answers_mask, data.wrong, data.wrong_mask)
    assert torch.allclose(terms["logit_diff"], metric.per_prompt(logits.unsqueeze(0))[0], atol=1e-4)
    total = per_source.sum(0) + terms["attn_bias"] + terms["unembed_bias"]
    assert torch.allclose(total, terms["logit_diff"], atol=1e-4)


def test_logit_lens_last_row_is_the_models_logits(tiny_model) -> None:
    data = random_prompts(3, 6, 43, bos=1, seed=4)
    lens = lens_logits(as_engine(tiny_model), data.clean)
    with torch.no_grad():
        model_logits = tiny_model.bridge(data.clean).float()
    assert lens.shape[0] == tiny_model.spec.n_layers + 1
    assert torch.allclose(lens[-1], model_logits, atol=1e-4)


def test_logit_lens_table_covers_every_layer_and_position(tiny_model) -> None:
    data = random_prompts(4, 6, 43, bos=1, seed=5)
    table = analyze_logit_lens(tiny_model, data, tiny_model.tokenizer)
    assert table.layers == ["embed", "after L0", "after L1"]
    assert len(table.positions) == 6 and all(len(row) == 6 for row in table.target_prob)
    lens = lens_logits(as_engine(tiny_model), data.clean)
    probs = torch.softmax(lens[-1], -1)
    answer = probs[torch.arange(4), -1, data.answers[:, 0]].mean()
    nxt = probs[torch.arange(4), 2, data.clean[:, 3]].mean()  # position 2's target is the token at 3
    assert table.target_prob[-1][-1] == pytest.approx(float(answer), abs=1e-4)
    assert table.target_prob[-1][2] == pytest.approx(float(nxt), abs=1e-4)
    assert table.targets[2] == tiny_model.tokenizer.convert_ids_to_tokens(int(data.clean[0, 3]))


def test_target_ranks_take_the_best_ranked_answer() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    rank, prob = target_ranks(logits, torch.tensor([[2, 3, 0]]), torch.tensor([[True, True, False]]))
    assert int(rank[0]) == 1  # token 3 (logit 2) has one token above it; token 0 is masked out
    p = torch.softmax(logits, -1)[0]
    assert float(prob[0]) == pytest.approx(float(p[2] + p[3]))
