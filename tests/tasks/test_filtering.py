"""Covers: Lan et al.'s correctness filter (top-1 right and p(right) > 2 p(wrong)), its BOS, the kept subset's
spec and hash, refusal when nothing passes, and prepare_dataset on the shipped toy model."""

from __future__ import annotations

import pytest
import torch

from discovery.errors import TaskError
from discovery.tasks import build_dataset
from discovery.tasks.filtering import apply_filter, filter_tokens, lan2023_keep, prepare_dataset


def logits_for(data, rows: list[tuple[float, float, float]]) -> torch.Tensor:
    """Logits [n, V]: per prompt (right, wrong, best other) values, every other token far below."""
    V = int(data.answers.max().item()) + int(data.wrong.max().item()) + 10
    out = torch.full((len(rows), V), -50.0)
    other = V - 1
    for i, (right, wrong, rest) in enumerate(rows):
        out[i, data.answers[i, 0]] = right
        out[i, data.wrong[i, 0]] = wrong
        out[i, other] = rest
    return out


def test_the_rule_keeps_top1_right_and_twice_as_likely(toy_tokenizer) -> None:
    data = build_dataset("digits", toy_tokenizer, n=5, seed=0)
    rows = [
        (3.0, 1.0, 0.0),  # top-1 right, p(right)/p(wrong) = e^2 > 2: kept
        (3.0, 2.5, 0.0),  # top-1 right, ratio e^0.5 < 2: dropped
        (2.0, 3.0, 0.0),  # the wrong answer on top: dropped
        (2.0, 0.0, 2.5),  # another token on top: dropped
        (1.0 + 0.7, 1.0, 0.0),  # ratio e^0.7 = 2.01 > 2: kept
    ]
    assert lan2023_keep(logits_for(data, rows), data) == [0, 4]


def test_filter_scores_with_bos_and_keeps_a_rehashed_subset(toy_tokenizer) -> None:
    data = build_dataset("digits", toy_tokenizer, n=6, seed=0)
    assert not data.bos_prepended
    bos = toy_tokenizer.bos_token_id
    tokens = filter_tokens(data, bos)
    assert (tokens[:, 0] == bos).all() and torch.equal(tokens[:, 1:], data.clean)
    seen = []

    def forward(t: torch.Tensor) -> torch.Tensor:
        seen.append(t)
        return logits_for(data, [(3.0, 0.0, 0.0) if i % 2 == 0 else (0.0, 3.0, 0.0) for i in range(len(t))])

    kept = apply_filter(data, "lan2023", forward, bos)
    assert torch.equal(seen[0], tokens)
    assert kept.n == 3 and kept.prompts == data.prompts[0::2] and torch.equal(kept.clean, data.clean[0::2])
    assert (kept.spec.filter, kept.spec.size, kept.spec.drawn) == ("lan2023", 3, 6)
    assert kept.spec.content_hash != data.spec.content_hash
    assert kept.spec.content_hash == data.subset([0, 2, 4]).spec.content_hash
    with pytest.raises(TaskError, match="none of the 6 prompts"):
        apply_filter(data, "lan2023", lambda t: logits_for(data, [(0.0, 3.0, 0.0)] * len(t)), bos)
    with pytest.raises(TaskError, match="unknown correctness filter"):
        apply_filter(data, "mine", forward, bos)


def test_prepare_dataset_filters_on_the_toy_model() -> None:
    from discovery.models import load_model

    model = load_model("toy")
    data = prepare_dataset("months", model, n=96, seed=4)
    assert data.spec.filter == "lan2023" and data.spec.drawn == 96 and 0 < data.n <= 96
    with torch.no_grad():
        logits = model.bridge(filter_tokens(data, model.tokenizer.bos_token_id))[:, -1]
    assert lan2023_keep(logits, data) == list(range(data.n))  # every kept prompt passes, re-checked
    plain = prepare_dataset("months", model, n=96, seed=4, correctness_filter=False)
    assert plain.n == 96 and plain.spec.filter is None
    lists = prepare_dataset("digits-list", model, n=10, seed=4)
    assert lists.spec.filter is None and lists.n == 10  # the bare lists have no filter
