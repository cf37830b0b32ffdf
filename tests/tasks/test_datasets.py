"""Covers: built-in tasks' prompts and corruptions, build_dataset's tensors, seeding, hashing and refusals."""

from __future__ import annotations

import pytest
import torch

from discovery.errors import TaskError
from discovery.tasks import build_dataset, get_task, list_tasks, task_names
from discovery.tasks.seqcont import FIRST_NAMES, OBJECT_WORDS
from discovery.tasks.sequences import DIGITS, MONTHS, NUMWORDS, SequenceTask
from discovery.toy.vocab import vocabulary

ALL = [(t.name, c) for t in list_tasks() for c in t.corruptions]


def members(text: str) -> list[str]:
    return text.split()


def test_builtins_are_listed() -> None:
    assert task_names() == ["digits", "numwords", "months", "digits-list", "numwords-list", "months-list",
                            "decreasing", "greater-than", "less-than", "ioi"]
    for t in list_tasks():
        assert t.default_corruption in t.corruptions and t.description and t.metric in ("logit-diff", "prob-diff")
    assert get_task("greater-than").metric == "prob-diff"


@pytest.mark.parametrize("name,corruption", ALL)
def test_one_token_length_and_bos(toy_tokenizer, name: str, corruption: str) -> None:
    data = build_dataset(name, toy_tokenizer, n=40, seed=3, corruption=corruption)
    assert data.clean.shape == data.corrupted.shape == (40, data.seq_len)
    with_bos = name not in ("digits", "numwords", "months")  # Lan et al.'s tasks go without, as their code does
    assert (data.clean[:, 0] == toy_tokenizer.bos_token_id).all() == with_bos == data.bos_prepended
    assert not (data.clean[:, 1:] == toy_tokenizer.bos_token_id).any()
    assert not (data.clean == toy_tokenizer.unk_token_id).any()
    assert not (data.corrupted == toy_tokenizer.unk_token_id).any()
    assert data.answers_mask.any(-1).all() and data.wrong_mask.any(-1).all()
    assert ((data.answers >= 0) == data.answers_mask).all()
    assert data.spec.size == 40 and data.spec.seq_len == data.seq_len and data.spec.corruption == corruption
    assert torch.equal(data.tokens("corrupted"), data.corrupted)


def test_seeded_and_reproducible(toy_tokenizer) -> None:
    a = build_dataset("ioi", toy_tokenizer, n=30, seed=7)
    b = build_dataset("ioi", toy_tokenizer, n=30, seed=7)
    c = build_dataset("ioi", toy_tokenizer, n=30, seed=8)
    assert a.prompts == b.prompts and torch.equal(a.clean, b.clean)
    assert a.spec.content_hash == b.spec.content_hash != c.spec.content_hash
    assert len(a.spec.content_hash) == 64
    # more prompts with the same seed begin with the same prompts; the clean side ignores the corruption
    for name in ("digits", "digits-list"):
        assert get_task(name).prompts(50, 1, "random")[:10] == get_task(name).prompts(10, 1, "random")
        clean = [p.clean for p in get_task(name).prompts(10, 1, "shuffled")]
        assert clean == [p.clean for p in get_task(name).prompts(10, 1, "repeat-all")]


def lan_members(text: str) -> list[str]:
    """The sequence members of a Lan et al. template prompt: the word before each '.'."""
    return [part.split()[-1] for part in text.split(".")[:-1]]


@pytest.mark.parametrize("name,members", [("digits", [str(i) for i in range(1, 13)]),
                                          ("numwords", list(NUMWORDS[:12])), ("months", list(MONTHS))])
def test_lan_templates(name: str, members: list[str]) -> None:
    # Lan et al.'s data: three templates in turn, starts one..eight in equal measure, four members shown, the
    # fifth the answer, the fourth repeated the wrong answer, five distinct words a prompt.
    prompts = get_task(name).prompts(3 * 8 * 4, 5, "random")
    verbs = [p.clean.split()[1] for p in prompts]
    assert verbs[:6] == ["done", "lost", "born"] * 2
    starts = [members.index(lan_members(p.clean)[0]) for p in prompts]
    assert sorted(starts) == sorted(list(range(8)) * 12) and starts[:6] == [0, 0, 0, 1, 1, 1]
    for p, verb in zip(prompts, verbs):
        shown = lan_members(p.clean)
        i = members.index(shown[0])
        assert shown == members[i : i + 4]
        assert p.answers == (" " + members[i + 4],) and p.wrong == (" " + shown[-1],)
        words = [part.split()[0] for part in p.clean.split(". ")]
        assert len(set(words)) == 5 and p.clean.endswith(f"{words[-1]} {verb} in")
        pool = FIRST_NAMES if verb == "born" else OBJECT_WORDS
        assert set(words) <= set(pool)
        corrupted = lan_members(p.corrupted)
        assert p.corrupted.split(".")[-1] == p.clean.split(".")[-1] and len(corrupted) == 4
        assert set(corrupted) <= set(members)
        assert members.index(corrupted[3]) - members.index(corrupted[2]) != 1  # no valid step at the end
    assert get_task(name).default_n == 1536 and get_task(name).correctness_filter == "lan2023"


def test_sequence_answers() -> None:
    for p in get_task("digits-list").prompts(50, 0, "random"):
        shown = [int(m) for m in members(p.clean)]
        assert shown == list(range(shown[0], shown[0] + 4))
        assert p.answers == (f" {shown[-1] + 1}",) and p.wrong == (f" {shown[-1]}",)
    for p in get_task("decreasing").prompts(50, 0, "random"):
        shown = [int(m) for m in members(p.clean)]
        assert shown == list(range(shown[0], shown[0] - 4, -1)) and p.answers == (f" {shown[-1] - 1}",)
    p = get_task("numwords-list").prompts(1, 0, "random")[0]
    i = NUMWORDS.index(members(p.clean)[-1])
    assert p.answers == (" " + NUMWORDS[i + 1],)


@pytest.mark.parametrize("task", ["digits-list", "numwords-list", "months-list", "decreasing"])
def test_sequence_corruptions(task: str) -> None:
    t = get_task(task)
    for p in t.prompts(30, 0, "repeat-all"):
        c = members(p.corrupted)
        assert c == [members(p.clean)[0]] * 4
    for p in t.prompts(30, 0, "random-some"):
        diff = [a != b for a, b in zip(members(p.clean), members(p.corrupted))]
        assert sum(diff) == 1
    for p in t.prompts(30, 0, "shuffled"):
        assert sorted(members(p.corrupted)) == sorted(members(p.clean)) and p.corrupted != p.clean
    for p in t.prompts(30, 0, "random"):
        assert len(members(p.corrupted)) == 4 and p.corrupted != p.clean


def test_year_tasks() -> None:
    for p in get_task("greater-than").prompts(40, 0, "01"):
        year = next(w for w in p.clean.split() if len(w) == 4 and w.isdigit())
        yy = int(year[2:])
        assert p.corrupted == p.clean.replace(year, year[:2] + "01")
        assert set(map(int, p.answers)) == set(range(yy + 1, 100))
        assert set(map(int, p.wrong)) == set(range(0, yy + 1))
        assert all(len(a) == 2 for a in p.answers + p.wrong)
    for p in get_task("less-than").prompts(40, 0, "01"):
        yy = int(next(w for w in p.clean.split() if len(w) == 4 and w.isdigit())[2:])
        assert set(map(int, p.answers)) == set(range(0, yy)) and set(map(int, p.wrong)) == set(range(yy, 100))


def test_ioi_prompts() -> None:
    for p in get_task("ioi").prompts(40, 0, "abc"):
        words = p.clean.replace(",", " ").split()
        io, s = p.answers[0].strip(), p.wrong[0].strip()
        assert words.count(io) == 1 and words.count(s) == 2
        corrupted = set(p.corrupted.replace(",", " ").split())
        names = corrupted - set(words)
        assert len(names) == 3 and io not in corrupted and s not in corrupted
    orders = [p.clean.split()[1] == p.answers[0].strip() for p in get_task("ioi").prompts(200, 0, "abc")]
    assert 60 < sum(orders) < 140  # ABBA and BABA in about equal measure


def test_unknown_task_and_corruption(toy_tokenizer) -> None:
    with pytest.raises(TaskError, match="known tasks: digits, numwords"):
        get_task("nope")
    with pytest.raises(TaskError, match="no corruption 'abc'.*random, repeat-all"):
        build_dataset("digits", toy_tokenizer, n=2, corruption="abc")
    with pytest.raises(TaskError, match="at least one prompt"):
        build_dataset("digits", toy_tokenizer, n=0)


def test_refuses_unknown_word_naming_it(make_tokenizer) -> None:
    lacking = make_tokenizer([w for w in vocabulary() if w not in ("seventeen", "Wallet")])
    with pytest.raises(TaskError, match="'seventeen'|' seventeen'"):
        build_dataset("numwords-list", lacking, n=200)
    with pytest.raises(TaskError, match="words unknown to this tokenizer: 'Wallet'"):
        build_dataset("digits", lacking, n=1536)  # an object word of Lan et al.'s templates
    build_dataset("digits-list", lacking, n=20)  # other tasks are unaffected


def test_refuses_multi_token_members_naming_them(make_tokenizer) -> None:
    digit_split = make_tokenizer(vocabulary(), split_digits=True)  # " 17" -> "1" "7"
    with pytest.raises(TaskError, match=r"not single known tokens.*' \d\d' -> \['\d', '\d'\]"):
        build_dataset(SequenceTask("teens", "", DIGITS[10:30]), digit_split, n=5)
    build_dataset(SequenceTask("small", "", DIGITS[:10]), digit_split, n=5)  # one-digit members are fine


def test_keeps_one_length_when_templates_differ(make_tokenizer) -> None:
    # A tokenizer that merges years of the 1750s into one token (as a BPE may): those prompts come out one
    # token shorter, so the builder keeps the most common length and still returns n prompts of one length.
    inner = make_tokenizer(vocabulary())
    century, merged = inner.convert_tokens_to_ids("17"), inner.convert_tokens_to_ids("Monday")
    fifties = {inner.convert_tokens_to_ids(str(y)) for y in range(50, 60)}

    class Merging:
        bos_token_id, unk_token_id = inner.bos_token_id, inner.unk_token_id

        def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
            ids, out = inner(text, add_special_tokens=False)["input_ids"], []
            for i in ids:
                if out and out[-1] == century and i in fifties:
                    out[-1] = merged
                else:
                    out.append(i)
            return {"input_ids": out}

        def convert_ids_to_tokens(self, ids: list) -> list:
            return inner.convert_ids_to_tokens(ids)

    task = get_task("greater-than")
    pool = task.prompts(1200, 0, "01")
    assert any(" 175" in p.clean for p in pool)
    data = build_dataset(task, Merging(), n=150, seed=0)
    assert list(data.prompts) == [p for p in pool if " 175" not in p.clean][:150]


def test_byte_level_bpe_like_gpt2() -> None:
    # A GPT-2-style byte-level BPE trained here on the tasks' own text: answers keep their leading space
    # (" 16" -> 'Ġ16'), the first member is bare, and <|endoftext|> is prepended as GPT-2's BOS, except for
    # Lan et al.'s templates, which their code tokenizes without one.
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    names = ["digits", "months", "digits-list", "ioi"]
    prompts = [p for n in names for p in get_task(n).prompts(400, 99, None)]
    texts = [p.clean + p.answers[0] for p in prompts] + [p.corrupted for p in prompts]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    bpe = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    for name in names:
        data = build_dataset(name, bpe, n=30, seed=1)
        bos = name not in ("digits", "months")
        assert bool((data.clean[:, 0] == bpe.bos_token_id).all()) == bos
        for i, p in enumerate(data.prompts):
            assert bpe.decode([int(data.answers[i, 0])]) == p.answers[0]
            assert bpe.decode(data.clean[i, int(bos):].tolist()) == p.clean
