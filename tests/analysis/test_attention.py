"""Covers: attention categories on hand-set patterns and heads, positional vs type heads told apart by irregular prompts, random-token scores, patterns against the bridge."""

from __future__ import annotations

import pytest
import torch

from discovery import hooks
from discovery.analysis.attention import (
    CATEGORIES,
    AttentionSettings,
    PromptTokens,
    analyze_attention,
    category_shares,
    follow,
    insert_fillers,
    kind_of,
)
from discovery.analysis.roles import label
from discovery.analysis.stream import as_engine, attention_pattern, run_stream
from discovery.errors import SettingsError
from discovery.graph import head
from tests.analysis.builders import BOS, FILLER, MEMBERS

torch.set_num_threads(1)


def _prompts() -> PromptTokens:
    """BOS, then four members (some prompts with a non-member word among them)."""
    tokens = torch.tensor([[BOS, 0, 1, 2, 3], [BOS, 3, 2, 1, 0], [BOS, 1, 4, 2, 3], [BOS, 2, 0, 5, 1]])
    return PromptTokens(tokens, torch.isin(tokens, torch.tensor(MEMBERS)))


def test_category_shares_of_a_hand_set_row() -> None:
    members = torch.tensor([[False, True, True, False, True, True]])
    row = torch.tensor([0.1, 0.2, 0.05, 0.15, 0.3, 0.2])  # first, member, member, other, previous, self
    shares = category_shares(row.view(1, 1, 6), members)[0]
    expected = {"first": 0.1, "self": 0.2, "previous": 0.3, "same_type": 0.25, "other": 0.15}
    assert dict(zip(CATEGORIES, shares.tolist())) == pytest.approx(expected)
    assert float(shares.sum()) == pytest.approx(1.0)


def test_inserting_fillers_moves_tokens_and_members() -> None:
    p = _prompts()
    new, moved = insert_fillers(p, 4, 2, FILLER)
    assert new.tokens[0].tolist() == [BOS, 0, 1, 2, FILLER, FILLER, 3]
    assert new.members[0].tolist() == [False, True, True, True, False, False, True]
    assert moved.tolist() == [0, 1, 2, 3, 6]


def test_follow_scores_and_kinds_on_hand_set_rows() -> None:
    old = torch.tensor([[[0.0, 0.0, 0.0, 1.0, 0.0]]])  # all on key 3 (q-1)
    on_filler = torch.tensor([[[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]]])  # one filler at 4: reads the new q-1
    on_token = torch.tensor([[[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]])  # still reads the old token at 3
    same_token, same_offset = torch.tensor([0, 1, 2, 3, 5]), torch.arange(5) + 1
    assert float(follow(old, on_filler, same_offset)[0]) == 1.0 and float(follow(old, on_filler, same_token)[0]) == 0.0
    assert float(follow(old, on_token, same_token)[0]) == 1.0 and float(follow(old, on_token, same_offset)[0]) == 0.0
    assert kind_of(0.9, token_gap=0.1, relative_gap=0.9, token_prefix=1, absolute_prefix=0) == "positional"
    assert kind_of(0.9, token_gap=0.9, relative_gap=0.3, token_prefix=1, absolute_prefix=0) == "type"
    assert kind_of(0.9, token_gap=0.9, relative_gap=0.3, token_prefix=0.1, absolute_prefix=0.9) == "absolute-position"
    assert kind_of(0.1, token_gap=0.9, relative_gap=0.1, token_prefix=1, absolute_prefix=0) == "undetermined"


def test_hand_built_heads_are_told_apart(attention_weights) -> None:
    result = analyze_attention(attention_weights, _prompts(), [head(0, 0), head(0, 1), head(0, 2)], FILLER,
                               AttentionSettings(repeat_len=5, n_repeats=4),
                               random_ids=torch.tensor([0, 1, 2, 3, 4, 5, 6]))
    prev, typ, n2 = (result.heads[k] for k in ("a0.0", "a0.1", "a0.2"))
    assert prev["shares"]["previous"] > 0.99 and prev["kind"] == "positional" and prev["top_offset"] == 1
    assert prev["shares_irregular"]["previous"] > 0.99  # whatever precedes the query, fillers included
    assert prev["follow"]["relative_gap"] > 0.99 and prev["follow"]["token_gap"] < 0.01
    assert prev["random_tokens"]["previous_token"] > 0.99
    assert typ["kind"] == "type" and typ["follow"]["token_gap"] > 0.99
    assert typ["shares"]["same_type"] + typ["shares"]["previous"] + typ["shares"]["self"] > 0.99
    assert n2["kind"] == "positional" and n2["top_offset"] == 2 and n2["offsets"][2] > 0.99
    roles = {k: label({"attention": v}).role for k, v in result.heads.items()}
    assert roles == {"a0.0": "previous-token", "a0.1": "same-type", "a0.2": "positional"}
    assert len(result.patterns["a0.0"]) == 5 and float(torch.tensor(result.patterns["a0.0"]).sum()) == pytest.approx(5)


def test_irregular_prompts_must_fit_the_context(attention_weights) -> None:
    long = PromptTokens(torch.full((1, 11), 0), torch.ones(1, 11, dtype=torch.bool))
    with pytest.raises(SettingsError, match="context"):
        analyze_attention(attention_weights, long, [head(0, 0)], FILLER)


def test_patterns_match_the_bridge_hook(tiny_model) -> None:
    tokens = torch.randint(3, 40, (3, 7), generator=torch.Generator().manual_seed(1))
    tokens[:, 0] = 1
    engine = as_engine(tiny_model)
    stream = run_stream(engine, tokens)
    names = [hooks.attn_pattern(layer) for layer in range(engine.L)]
    _, cache = tiny_model.bridge.run_with_cache(tokens, names_filter=lambda name: name in names)
    for layer in range(engine.L):
        ours = attention_pattern(engine, stream.resid[layer], layer)
        assert torch.allclose(ours, cache[hooks.attn_pattern(layer)].float(), atol=1e-5)


def test_the_filler_is_one_token_absent_from_the_prompts() -> None:
    from discovery.analysis.attention import choose_filler
    from discovery.toy.vocab import build_tokenizer

    tok = build_tokenizer(32)
    comma, dot = (tok.convert_tokens_to_ids(t) for t in (",", "."))
    with_comma = torch.tensor([[2, 10, comma, 11]])
    assert choose_filler(tok, with_comma) == (".", dot)  # ',' is in the prompt: the next candidate
    assert choose_filler(tok, torch.tensor([[2, 10, 11]])) == (",", comma)
    with pytest.raises(SettingsError, match="occurs in the prompts"):
        choose_filler(tok, with_comma, ",")
    with pytest.raises(SettingsError, match="not one known token"):
        choose_filler(tok, with_comma, "zebra")
