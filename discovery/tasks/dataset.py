"""Token-level datasets: a task's prompts run through a model's tokenizer, checked and made into tensors.

Conventions (one for every tokenizer):

- Texts are encoded with ``add_special_tokens=False``; then the tokenizer's BOS token is prepended when it
  has one (GPT-2's ``<|endoftext|>``, the toy model's ``<bos>``), as TransformerLens's ``to_tokens`` does,
  unless the task says its paper used none (``Task.prepend_bos``: Lan et al.'s tasks). A tokenizer without a
  BOS token gets nothing prepended.
- Every prompt of a dataset has one token length; the answer position is the last position.
- Answers, wrong answers and a prompt's members must each be ONE known token (not the unknown token):
  otherwise the dataset is refused with a ``TaskError`` naming the offending items and where they occur (the
  tool does not guess how to score multi-token words). A prompt with a word the tokenizer does not know
  (a word-level tokenizer's ``<unk>``) is refused likewise.
- Prompts from a file are never dropped: a clean/corrupted pair of different token lengths, or a prompt
  whose length differs from the first one's, is refused, naming its line. A generated task's prompts may
  come out at several lengths with some tokenizers (a BPE that merges some years into one token): then the
  prompts whose clean and corrupted texts both have the MOST COMMON clean length are kept (ties: the
  shorter), drawing more from the same seeded stream until ``n`` are found; if no pair matches at all,
  the task is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from discovery.errors import TaskError
from discovery.results import DatasetSpec
from discovery.tasks.base import Prompt, Task, get_task

Which = Literal["clean", "corrupted"]
MAX_DRAW_FACTOR = 8  # a generated task may be asked for up to 8n prompts to find n of one length


@dataclass(frozen=True)
class TaskDataset:
    """A task's prompts as token ids, ready for a model. Shapes: n prompts, pos positions."""

    task: str
    corruption: str
    seed: int
    metric: str
    prompts: tuple[Prompt, ...]
    clean: torch.Tensor  # [n, pos] long
    corrupted: torch.Tensor  # [n, pos] long
    answers: torch.Tensor  # [n, k_a] long, padded with -1
    answers_mask: torch.Tensor  # [n, k_a] bool, True where answers holds an id
    wrong: torch.Tensor  # [n, k_w] long, padded with -1
    wrong_mask: torch.Tensor  # [n, k_w] bool
    spec: DatasetSpec
    bos_prepended: bool = True

    def tokens(self, which: Which) -> torch.Tensor:
        """The clean or corrupted token ids, [n, pos]."""
        if which == "clean":
            return self.clean
        if which == "corrupted":
            return self.corrupted
        raise ValueError(f"which must be 'clean' or 'corrupted', got {which!r}")

    @property
    def n(self) -> int:
        return int(self.clean.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.clean.shape[1])

    def __len__(self) -> int:
        return self.n

    def subset(self, keep: Sequence[int], **spec_changes: Any) -> "TaskDataset":
        """The dataset of the prompts at ``keep`` (in that order), with its content hash recomputed."""
        idx = torch.tensor(list(keep), dtype=torch.long)
        clean, corrupted = self.clean[idx], self.corrupted[idx]
        answers, answers_mask = self.answers[idx], self.answers_mask[idx]
        wrong, wrong_mask = self.wrong[idx], self.wrong_mask[idx]
        digest = content_hash(clean.tolist(), corrupted.tolist(), _unpadded(answers, answers_mask),
                              _unpadded(wrong, wrong_mask))
        spec = replace(self.spec, size=len(idx), content_hash=digest, **spec_changes)
        return replace(self, prompts=tuple(self.prompts[i] for i in keep), clean=clean, corrupted=corrupted,
                       answers=answers, answers_mask=answers_mask, wrong=wrong, wrong_mask=wrong_mask, spec=spec)


def _encoder(tokenizer: Any) -> Callable[[str], tuple[int, ...]]:
    cache: dict[str, tuple[int, ...]] = {}

    def encode(text: str) -> tuple[int, ...]:
        if text not in cache:
            cache[text] = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
        return cache[text]

    return encode


def _show_tokens(tokenizer: Any, ids: Sequence[int]) -> str:
    return "[" + ", ".join(repr(t) for t in tokenizer.convert_ids_to_tokens(list(ids))) + "]"


def check_single_tokens(task: Task, prompts: Sequence[Prompt], tokenizer: Any, encode: Callable) -> None:
    """Refuse prompts whose answers, wrong answers or members are not single tokens, naming them."""
    unk = getattr(tokenizer, "unk_token_id", None)
    bad: dict[str, tuple[str, tuple[int, ...]]] = {}  # item -> (where first seen, its ids)
    for i, p in enumerate(prompts):
        for kind, items in (("answer", p.answers), ("wrong answer", p.wrong), ("member", p.members)):
            for item in items:
                ids = encode(item)
                if (len(ids) != 1 or ids[0] == unk) and item not in bad:
                    bad[item] = (f"{kind} at {task.where(i)}", ids)
    if bad:
        shown = [f"{item!r} -> {_show_tokens(tokenizer, ids)} ({where})" for item, (where, ids) in bad.items()]
        more = f" and {len(shown) - 8} more" if len(shown) > 8 else ""
        raise TaskError(
            f"task {task.name!r}: not single known tokens for this tokenizer: {'; '.join(shown[:8])}{more}"
        )
    if unk is not None:
        for i, p in enumerate(prompts):
            for text in (p.clean, p.corrupted):
                if unk in encode(text):
                    words = [w for w in text.split() if unk in encode(w)]
                    raise TaskError(
                        f"{task.where(i)}: words unknown to this tokenizer: {', '.join(map(repr, words))} "
                        f"in {text!r}"
                    )


def _select(task: Task, prompts: list[Prompt], encode: Callable) -> list[int]:
    """Indices of the prompts to keep, all of one token length (see the module docstring)."""
    lengths = [(len(encode(p.clean)), len(encode(p.corrupted))) for p in prompts]
    if not task.may_drop_prompts:
        first = lengths[0][0]
        for i, (c, k) in enumerate(lengths):
            if c != k:
                raise TaskError(
                    f"{task.where(i)}: clean and corrupted differ in token length ({c} vs {k}): "
                    f"{prompts[i].clean!r} / {prompts[i].corrupted!r}"
                )
            if c != first:
                raise TaskError(
                    f"{task.where(i)}: {c} tokens, but {task.where(0)} has {first}; "
                    f"all prompts of a dataset need one token length"
                )
        return list(range(len(prompts)))
    paired = [c for c, k in lengths if c == k]
    if not paired:
        c, k = lengths[0]
        raise TaskError(
            f"task {task.name!r}: clean and corrupted differ in token length ({c} vs {k}) at {task.where(0)}: "
            f"{prompts[0].clean!r} / {prompts[0].corrupted!r}"
        )
    counts: dict[int, int] = {}
    for c in paired:
        counts[c] = counts.get(c, 0) + 1
    keep_len = min(counts, key=lambda length: (-counts[length], length))
    return [i for i, (c, k) in enumerate(lengths) if c == k == keep_len]


def draw_prompts(task: Task, n: int, seed: int, corruption: str, tokenizer: Any) -> list[Prompt]:
    """``n`` checked prompts of one token length (see the module docstring for what is dropped or refused)."""
    encode = _encoder(tokenizer)
    m = n
    while True:
        prompts = task.prompts(m, seed, corruption)
        check_single_tokens(task, prompts, tokenizer, encode)
        keep = _select(task, prompts, encode)
        if len(keep) >= n:
            return [prompts[i] for i in keep[:n]]
        if m >= MAX_DRAW_FACTOR * n:
            raise TaskError(
                f"task {task.name!r}: only {len(keep)} of {m} prompts share one token length with this "
                f"tokenizer; ask for fewer than {n}"
            )
        m = min(2 * m, MAX_DRAW_FACTOR * n)


def _padded(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return ids, ids >= 0


def _unpadded(ids: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    return [[int(i) for i, m in zip(row, row_mask) if m] for row, row_mask in zip(ids.tolist(), mask.tolist())]


def content_hash(clean: list, corrupted: list, answers: list, wrong: list) -> str:
    """sha256 of the canonical JSON of the token ids (unpadded answer lists)."""
    payload = {"clean": clean, "corrupted": corrupted, "answers": answers, "wrong": wrong}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_dataset(
    task: Task | str, tokenizer: Any, *, n: int, seed: int = 0, corruption: str | None = None
) -> TaskDataset:
    """``n`` prompts of ``task`` tokenized by ``tokenizer`` (a Hugging Face tokenizer), checked, as tensors."""
    task = get_task(task) if isinstance(task, str) else task
    corruption = task.check_corruption(corruption)
    prompts = draw_prompts(task, n, seed, corruption, tokenizer)
    encode = _encoder(tokenizer)
    bos = getattr(tokenizer, "bos_token_id", None)
    prefix = [bos] if bos is not None and task.prepend_bos else []
    clean = [prefix + list(encode(p.clean)) for p in prompts]
    corrupted = [prefix + list(encode(p.corrupted)) for p in prompts]
    answers = [[encode(a)[0] for a in p.answers] for p in prompts]
    wrong = [[encode(w)[0] for w in p.wrong] for p in prompts]
    answer_ids, answer_mask = _padded(answers)
    wrong_ids, wrong_mask = _padded(wrong)
    spec = DatasetSpec(
        task=task.name,
        corruption=corruption,
        size=len(prompts),
        seed=seed,
        content_hash=content_hash(clean, corrupted, answers, wrong),
        seq_len=len(clean[0]),
    )
    return TaskDataset(
        task=task.name,
        corruption=corruption,
        seed=seed,
        metric=task.metric,
        prompts=tuple(prompts),
        clean=torch.tensor(clean, dtype=torch.long),
        corrupted=torch.tensor(corrupted, dtype=torch.long),
        answers=answer_ids,
        answers_mask=answer_mask,
        wrong=wrong_ids,
        wrong_mask=wrong_mask,
        spec=spec,
        bos_prepended=bool(prefix),
    )
