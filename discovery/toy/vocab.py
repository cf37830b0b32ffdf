"""The toy model's word-level tokenizer: the words the built-in tasks use, and nothing else.

Pre-tokenization splits on whitespace and punctuation (``tokenizers``' ``Whitespace``: ``\\w+|[^\\w\\s]+``) and
then cuts digit runs into pairs, so a year ``1732`` becomes ``17`` ``32`` as in GPT-2. The tokenizer adds no
special tokens itself (like GPT-2's): callers prepend ``<bos>`` (``build_dataset`` and TransformerLens both do).
Saved as ``tokenizer.json`` plus ``tokenizer_config.json``/``special_tokens_map.json``, so that
``AutoTokenizer.from_pretrained(folder)`` and ``PreTrainedTokenizerFast(tokenizer_file=...)`` both load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from discovery.tasks.ioi import NAMES, OBJECTS, PLACES, TEMPLATES
from discovery.tasks.seqcont import FIRST_NAMES, OBJECT_WORDS
from discovery.tasks.seqcont import TEMPLATES as SEQCONT_TEMPLATES
from discovery.tasks.sequences import MONTHS, NUMWORDS
from discovery.tasks.years import NOUNS, greater_than, less_than

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS)
NUMBERS: tuple[str, ...] = tuple(str(i) for i in range(100)) + tuple(f"0{i}" for i in range(10))
DAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
PUNCTUATION: tuple[str, ...] = (",", ".")


def template_words() -> list[str]:
    """The fixed words of the built-in templates (slots removed), in first-seen order."""
    texts = [greater_than().template, less_than().template, *TEMPLATES, *(f"{t.verb} in" for t in SEQCONT_TEMPLATES)]
    words: list[str] = []
    for text in texts:
        for word in text.replace(",", " , ").replace(".", " . ").split():
            if not word.startswith("{") and word not in words:
                words.append(word)
    return words


def vocabulary() -> list[str]:
    """Every token, in id order: specials, numbers, number words, months, days, names, nouns, template words, and
    the object words and first names of Lan et al.'s templates."""
    vocab: list[str] = []
    groups: list[tuple[str, ...]] = [SPECIALS, NUMBERS, NUMWORDS, MONTHS, DAYS, NAMES, NOUNS, PLACES, OBJECTS,
                                     PUNCTUATION, tuple(template_words()), OBJECT_WORDS, FIRST_NAMES]
    for group in groups:
        for word in group:
            if word not in vocab:
                vocab.append(word)
    return vocab


def build_tokenizer(n_ctx: int) -> Any:  # a transformers.PreTrainedTokenizerFast
    """The toy tokenizer as a ``PreTrainedTokenizerFast`` (call ``save_pretrained(folder)`` to ship it)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Split(Regex(r"\d\d"), behavior="isolated")]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=n_ctx,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def save_tokenizer(folder: Path, n_ctx: int) -> None:
    build_tokenizer(n_ctx).save_pretrained(str(folder))
