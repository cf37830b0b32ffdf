"""How well a toy model does its tasks, and whether it needs its attention to do them.

Accuracy is top-1: the model's most likely next token is one of the prompt's answers (greater-than: any year
above the threshold). Prompts are held out: drawn with seeds from ``EVAL_SEED`` on, which training never uses.

Context reading is measured by mean-ablating EVERY attention head: each layer's attention output (the sum of
its heads, after the output projection) is replaced by its mean over the evaluation prompts at that position,
with plain PyTorch forward hooks on the Hugging Face model's ``transformer.h[l].attn``. With no head left to
carry information between positions, a model that reads context should fall to chance on

- sequences of steps +1, +2 and -1 (the step is only in the earlier members), and
- IOI, scored between its two names (the indirect object is only in the earlier names).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from discovery.results import DatasetSpec
from discovery.tasks.base import PROB_DIFF, list_tasks
from discovery.tasks.dataset import TaskDataset, build_dataset, content_hash
from discovery.tasks.ioi import IOITask
from discovery.tasks.sequences import DIGITS, SequenceTask

EVAL_SEED = 20_240_001
CONTEXT_STEPS = (1, 2, -1)
LIST_LENGTHS = (2, 3, 4, 5, 6)


def load(model_dir: Path | str) -> tuple[Any, Any]:
    """The Hugging Face model (eval mode) and tokenizer of a model folder."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from discovery.models import check_available, offline, quiet_transformers, weights_errors

    folder = check_available(str(model_dir))  # a GPT-2 folder with a config.json, or one line saying what is not
    quiet_transformers()
    with offline(), weights_errors(str(model_dir), folder):
        model = GPT2LMHeadModel.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    model.eval()
    return model, tokenizer


def final_logits(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Logits at the last position, [n, vocab]."""
    with torch.no_grad():
        return model(input_ids=tokens).logits[:, -1, :]


def top1_accuracy(logits: torch.Tensor, data: TaskDataset) -> float:
    """Fraction of prompts whose top-1 token is one of their answers."""
    top = logits.argmax(-1, keepdim=True)  # [n, 1]
    hit = ((data.answers == top) & data.answers_mask).any(-1)
    return float(hit.float().mean())


def pair_accuracy(logits: torch.Tensor, data: TaskDataset) -> float:
    """Fraction of prompts whose first answer outscores their first wrong answer (IOI: IO over S)."""
    rows = torch.arange(data.n)
    return float((logits[rows, data.answers[:, 0]] > logits[rows, data.wrong[:, 0]]).float().mean())


def metric_value(logits: torch.Tensor, data: TaskDataset) -> float:
    """The task's own metric, averaged over prompts: probability difference (sum of p over answers minus over
    wrong answers) or logit difference (mean answer logit minus mean wrong logit)."""

    def masked(values: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, reduce: str) -> torch.Tensor:
        picked = values.gather(1, ids.clamp(min=0)) * mask  # [n, k]
        return picked.sum(-1) if reduce == "sum" else picked.sum(-1) / mask.sum(-1)

    if data.metric == PROB_DIFF:
        probs = logits.softmax(-1)
        diff = masked(probs, data.answers, data.answers_mask, "sum") - masked(probs, data.wrong, data.wrong_mask, "sum")
    else:
        diff = masked(logits, data.answers, data.answers_mask, "mean") - masked(
            logits, data.wrong, data.wrong_mask, "mean"
        )
    return float(diff.mean())


@contextmanager
def attention_mean_ablated(model: Any, tokens: torch.Tensor) -> Iterator[None]:
    """Within the block, every layer's attention output is its per-position mean over ``tokens``.

    The means come from a first, clean pass over ``tokens`` [n, pos]; the model then runs on inputs of the
    same length. Hooks are removed on exit, whatever happens.
    """
    blocks = model.transformer.h
    means: dict[int, torch.Tensor] = {}
    handles = []

    def first(output: Any) -> torch.Tensor:
        return output[0] if isinstance(output, tuple) else output

    def recorder(layer: int) -> Callable[[Any, Any, Any], None]:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            means[layer] = first(output).mean(dim=0, keepdim=True).detach()  # [1, pos, d_model]

        return hook

    def replacer(layer: int) -> Callable[[Any, Any, Any], Any]:
        def hook(_module: Any, _inputs: Any, output: Any) -> Any:
            out = first(output)
            mean = means[layer].expand_as(out)
            return (mean,) + tuple(output[1:]) if isinstance(output, tuple) else mean

        return hook

    try:
        handles = [blocks[i].attn.register_forward_hook(recorder(i)) for i in range(len(blocks))]
        with torch.no_grad():
            model(input_ids=tokens)
        for h in handles:
            h.remove()
        handles = [blocks[i].attn.register_forward_hook(replacer(i)) for i in range(len(blocks))]
        yield
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class ContextCheck:
    """Accuracy with the model intact and with every attention head mean-ablated."""

    name: str
    normal: float
    ablated: float
    n: int


def context_sequences(tokenizer: Any, n: int, seed: int) -> TaskDataset:
    """Digit sequences of 4 members in steps of +1, +2 and -1, n of each, as one dataset (5 tokens each)."""
    parts = [
        build_dataset(SequenceTask(f"context{step:+d}", "", DIGITS, step=step), tokenizer, n=n, seed=seed)
        for step in CONTEXT_STEPS
    ]
    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(p, name) for p in parts])

    def rows(name: str) -> list[list[int]]:
        return [[int(i) for i in row if i >= 0] for row in cat(name).tolist()]

    spec = DatasetSpec(
        task="context-steps",
        corruption="random",
        size=3 * n,
        seed=seed,
        content_hash=content_hash(rows("clean"), rows("corrupted"), rows("answers"), rows("wrong")),
        seq_len=parts[0].seq_len,
    )
    return TaskDataset(
        task="context-steps",
        corruption="random",
        seed=seed,
        metric=parts[0].metric,
        prompts=tuple(p for part in parts for p in part.prompts),
        clean=cat("clean"),
        corrupted=cat("corrupted"),
        answers=cat("answers"),
        answers_mask=cat("answers_mask"),
        wrong=cat("wrong"),
        wrong_mask=cat("wrong_mask"),
        spec=spec,
    )


def context_checks(model: Any, tokenizer: Any, n: int = 200, seed: int = EVAL_SEED) -> list[ContextCheck]:
    """Steps +1/+2/-1 (top-1) and IOI (IO vs S), intact and with all attention mean-ablated."""
    checks = []
    seqs = context_sequences(tokenizer, n, seed)
    ioi = build_dataset(IOITask(), tokenizer, n=n, seed=seed)
    for name, data, score in (
        ("steps +1/+2/-1", seqs, top1_accuracy),
        ("ioi (IO vs S)", ioi, pair_accuracy),
    ):
        normal = score(final_logits(model, data.clean), data)
        with attention_mean_ablated(model, data.clean):
            ablated = score(final_logits(model, data.clean), data)
        checks.append(ContextCheck(name, normal, ablated, data.n))
    return checks


def task_accuracies(model: Any, tokenizer: Any, n: int = 200, seed: int = EVAL_SEED) -> dict[str, dict[str, Any]]:
    """Per built-in task: top-1 accuracy and the task's metric, intact and with every attention head
    mean-ablated (means over that task's own prompts, so the ablated model still knows the template)."""
    out: dict[str, dict[str, Any]] = {}
    for task in list_tasks():
        data = build_dataset(task, tokenizer, n=n, seed=seed)
        normal = final_logits(model, data.clean)
        with attention_mean_ablated(model, data.clean):
            ablated = final_logits(model, data.clean)
        out[task.name] = {
            "n": data.n,
            "accuracy": top1_accuracy(normal, data),
            "ablated_accuracy": top1_accuracy(ablated, data),
            "metric": data.metric,
            "metric_value": metric_value(normal, data),
            "ablated_metric_value": metric_value(ablated, data),
        }
    return out


def length_checks(model: Any, tokenizer: Any, n: int = 200, seed: int = EVAL_SEED) -> list[dict[str, Any]]:
    """Top-1 accuracy on bare digit lists of 2 to 6 members, with and without BOS: a model that learned the
    prompt's length from absolute positions fails on some of them (``1 2 3`` without BOS, say)."""
    rows = []
    for length in LIST_LENGTHS:
        data = build_dataset(SequenceTask(f"list{length}", "", DIGITS, length=length), tokenizer, n=n, seed=seed)
        for bos in (True, False):
            tokens = data.clean if bos else data.clean[:, 1:]
            rows.append({"members": length, "bos": bos, "n": data.n,
                         "accuracy": top1_accuracy(final_logits(model, tokens), data)})
    return rows


def evaluate(model_dir: Path | str, n: int = 200, seed: int = EVAL_SEED) -> dict[str, Any]:
    """The report ``circuits toy eval`` prints: per-task accuracy, lists by length, and the context checks."""
    model, tokenizer = load(model_dir)
    with torch.inference_mode():
        tasks = task_accuracies(model, tokenizer, n, seed)
        lengths = length_checks(model, tokenizer, n, seed)
        checks = context_checks(model, tokenizer, n, seed)
    return {
        "model_dir": str(model_dir),
        "seed": seed,
        "tasks": tasks,
        "lists": lengths,
        "context": [
            {"check": c.name, "accuracy": c.normal, "ablated_accuracy": c.ablated, "n": c.n} for c in checks
        ],
    }
