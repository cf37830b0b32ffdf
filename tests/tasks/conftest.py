"""Fixtures for the task tests: word-level tokenizers made in memory (no files, no network)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest


def word_tokenizer(words: Iterable[str], split_digits: bool = False) -> Any:
    """A WordLevel tokenizer over ``words`` (plus specials); ``split_digits`` cuts numbers into single digits."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<bos>", "<eos>", *dict.fromkeys(words)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    pattern = r"\d" if split_digits else r"\d\d"
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Split(Regex(pattern), behavior="isolated")]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


@pytest.fixture(scope="session")
def toy_tokenizer() -> Any:
    """The toy model's tokenizer, built in memory (the same one the shipped folder holds)."""
    from discovery.toy.vocab import build_tokenizer

    return build_tokenizer(32)


@pytest.fixture(scope="session")
def make_tokenizer():
    return word_tokenizer
