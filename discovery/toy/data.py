"""The toy model's training mixture: prompts of every task family, made so that the answer needs context.

A model trained on ``+1`` sequences alone learns a bigram from the last token (mean-ablating all its heads
costs little). Here the last token alone never decides the answer:

- bare lists of digits 0-99 in steps of +-1, +-2, +-3 (number words and months in steps of +-1, +-2), 2 to 6
  members long: the step must be read from the earlier members;
- Lan et al.'s sentence templates (``discovery.tasks.seqcont``: ``Van done in 1. ... Sun done in`` -> `` 5``) for
  digits 1-12, number words and months: the members sit five tokens apart behind words that change;
- greater-than and less-than prompts with the same century and year tokens: the threshold ``YY`` and the
  direction (``lasted from .. to`` vs ``ended in .. and began in``) are in context;
- IOI prompts: the indirect object is whichever of the two earlier names is not repeated.

Each example is a prompt and the set of tokens that are right after it (years: every year above or below
the threshold, weighted alike). Half the examples, drawn by a seeded coin, start with ``<bos>`` and half do not,
so that the model does its tasks both ways (Lan et al.'s prompts have none; the other tasks' datasets have one)
and cannot learn a list's length from its absolute positions. Prompts come from the task classes themselves, so training text and task
text cannot drift apart. The generator is seeded from its own namespace (``toy-train``), never the seeds
``circuits toy eval`` draws held-out prompts with.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from discovery.tasks.base import Task
from discovery.tasks.ioi import IOITask
from discovery.tasks.seqcont import digits, months, numwords
from discovery.tasks.sequences import DIGITS, MONTHS, NUMWORDS, SequenceTask, seeded
from discovery.tasks.years import greater_than, less_than

LENGTHS = (2, 3, 4, 5, 6)
DIGIT_STEPS = (1, 2, 3, -1, -2, -3)
WORD_STEPS = (1, 2, -1, -2)


def mixture() -> list[tuple[Task, float]]:
    """(task, weight) pairs; the weights of a family are split evenly over its variants."""
    parts: list[tuple[Task, float]] = []

    def family(tasks: list[Task], weight: float) -> None:
        parts.extend((t, weight / len(tasks)) for t in tasks)

    def seqs(name: str, members: tuple[str, ...], steps: tuple[int, ...]) -> list[Task]:
        out: list[Task] = []
        for step in steps:
            for length in LENGTHS:
                with contextlib.suppress(ValueError):  # that step and length may not fit (months in steps of 3, 6 long)
                    out.append(SequenceTask(f"train-{name}", "", members, step=step, length=length))
        return out

    family(seqs("digits", DIGITS, DIGIT_STEPS), 0.16)
    family(seqs("numwords", NUMWORDS, WORD_STEPS), 0.07)
    family(seqs("months", MONTHS, WORD_STEPS), 0.07)
    family([digits(), numwords(), months()], 0.30)
    family([greater_than()], 0.10)
    family([less_than()], 0.10)
    family([IOITask()], 0.20)
    return parts


@dataclass(frozen=True)
class TrainingSet:
    """Examples as tensors: right-padded token ids, each example's last position, and its right tokens."""

    ids: torch.Tensor  # [N, max_len] long, right-padded with <pad>
    last: torch.Tensor  # [N] long: index of the answer position (the prompt's last token)
    targets: torch.Tensor  # [N, V] float: a distribution over the vocabulary (uniform on the right tokens)

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def make_training_set(tokenizer: Any, size: int, seed: int) -> TrainingSet:
    """``size`` examples drawn from ``mixture()`` in proportion to the weights, seeded by ``seed``."""
    parts = mixture()
    total = sum(w for _, w in parts)
    counts = [max(1, round(size * w / total)) for _, w in parts]
    rows: list[list[int]] = []
    right: list[list[int]] = []
    bos = tokenizer.bos_token_id
    vocab = tokenizer.get_vocab()
    coin = seeded("toy-train-bos", seed)
    for k, ((task, _), count) in enumerate(zip(parts, counts)):
        for p in task.prompts(count, seed=training_seed(seed, k), corruption=None):
            prefix = [bos] if coin.random() < 0.5 else []
            rows.append(prefix + tokenizer(p.clean, add_special_tokens=False)["input_ids"])
            right.append([vocab[a.strip()] for a in p.answers])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    last = torch.empty(len(rows), dtype=torch.long)
    targets = torch.zeros(len(rows), len(vocab))
    for out_i, i in enumerate(order.tolist()):
        ids[out_i, : len(rows[i])] = torch.tensor(rows[i])
        last[out_i] = len(rows[i]) - 1
        targets[out_i, right[i]] = 1.0 / len(right[i])
    return TrainingSet(ids=ids, last=last, targets=targets)


def training_seed(seed: int, part: int) -> int:
    """A training seed per mixture part, in a range (>= 10**9) that held-out evaluation never uses."""
    return 10**9 + seed * 1000 + part
