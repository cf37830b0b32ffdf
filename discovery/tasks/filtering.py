"""Correctness filters: keep only the prompts a model gets right, as a paper did before finding its circuits.

``lan2023`` (Lan, Torr & Barez 2023; apartresearch/seqcont_circuits ``src/generate_data/generate_data.py`` lines
146 and 183): the model's top token after the prompt is the right answer, and its probability is more than twice
that of the wrong answer (the last member repeated). The authors scored each prompt with TransformerLens's
``to_tokens(prompt, prepend_bos=True)`` (line 21), while their circuit runs tokenized without BOS; so the filter
here puts the tokenizer's BOS before the prompt when it has one, whatever the dataset itself does.

A filter needs the model, so it runs where a run loads one (``prepare_dataset``); the kept count and the number
drawn are recorded on the dataset's spec (``filter``, ``size`` of ``drawn``). ``resample`` draws a bootstrap
resample of the kept prompts, for stability studies (``circuits stability``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Optional

import torch
from torch import Tensor

from discovery.errors import TaskError
from discovery.tasks.base import Task, get_task
from discovery.tasks.dataset import TaskDataset, build_dataset

FILTERS = ("lan2023",)
Forward = Callable[[Tensor], Tensor]  # tokens [B, P] -> last-position logits [B, V]
_BATCH = 256


def lan2023_keep(logits: Tensor, dataset: TaskDataset) -> list[int]:
    """Indices of prompts whose top token is the (first) answer and p(answer) > 2 p(first wrong answer)."""
    probs = torch.softmax(logits.float(), -1)
    rows = torch.arange(dataset.n)
    right, wrong = dataset.answers[:, 0], dataset.wrong[:, 0]
    top = probs.argmax(-1)
    ok = (top == right) & (probs[rows, right] > 2 * probs[rows, wrong])
    return ok.nonzero().flatten().tolist()


def filter_tokens(dataset: TaskDataset, bos: Optional[int]) -> Tensor:
    """The clean prompts as the filter scores them: with BOS in front (see the module docstring)."""
    if dataset.bos_prepended or bos is None:
        return dataset.clean
    return torch.cat([torch.full((dataset.n, 1), bos, dtype=dataset.clean.dtype), dataset.clean], dim=1)


def apply_filter(dataset: TaskDataset, rule: str, forward: Forward, bos: Optional[int]) -> TaskDataset:
    """The prompts ``rule`` keeps; refuses (TaskError) when it keeps none, since no circuit explains nothing."""
    if rule not in FILTERS:
        raise TaskError(f"unknown correctness filter {rule!r}: known filters are {', '.join(FILTERS)}")
    tokens = filter_tokens(dataset, bos)
    with torch.no_grad():
        logits = torch.cat([forward(tokens[i : i + _BATCH]) for i in range(0, dataset.n, _BATCH)])
    keep = lan2023_keep(logits.cpu(), dataset)
    if not keep:
        raise TaskError(
            f"task {dataset.task!r}: the model gets none of the {dataset.n} prompts right by the {rule} filter "
            "(top token right and p(right) > 2 p(wrong)): there is no behaviour to find a circuit for"
        )
    return dataset.subset(keep, filter=rule, drawn=dataset.n)


def resample(dataset: TaskDataset, seed: int) -> TaskDataset:
    """A bootstrap resample: as many prompts as the dataset has, drawn from it uniformly WITH replacement by
    ``random.Random(seed)`` (Python's generator, the same on every machine and version), clean and corrupted prompts
    and answers kept together; the seed is recorded on the spec (``resample``) and the content hash recomputed.
    This is how Méloux et al. (2025, arXiv 2510.00845) resample inputs to measure a circuit's stability."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TaskError(f"a resample seed is a whole number >= 0, got {seed!r}")
    rng = random.Random(seed)
    return dataset.subset([rng.randrange(dataset.n) for _ in range(dataset.n)], resample=seed)


def prepare_dataset(task: Task | str, model: Any, *, n: Optional[int] = None, seed: int = 0,
                    corruption: Optional[str] = None, correctness_filter: Optional[bool] = None,
                    resample_seed: Optional[int] = None) -> TaskDataset:
    """A task's dataset for a loaded model: ``n`` prompts drawn (default: the task's own size), tokenized,
    filtered by the task's correctness filter when it has one (``correctness_filter=False`` skips it), and, given
    ``resample_seed``, bootstrap-resampled from the prompts the filter kept (``resample``)."""
    task = get_task(task) if isinstance(task, str) else task
    dataset = build_dataset(task, model.tokenizer, n=n or task.default_n, seed=seed, corruption=corruption)
    rule = task.correctness_filter
    if rule is not None and correctness_filter is not False:
        dataset = apply_filter(dataset, rule, lambda t: last_logits(model, t),
                               getattr(model.tokenizer, "bos_token_id", None))
    return dataset if resample_seed is None else resample(dataset, resample_seed)


def last_logits(model: Any, tokens: Tensor) -> Tensor:
    """The model's next-token logits after each prompt ``[B, V]`` (the bridge's own forward)."""
    with torch.no_grad():
        return model.bridge(tokens.to(model.device))[:, -1].float()
