"""The logit lens at every layer and every position: what the residual stream would predict if it stopped there.

Row ``embed`` reads the stream before layer 0; row ``after L{l}`` reads it after layer l (attention and MLP);
the last row is the model's own output. Each reading is the final LayerNorm (with its own scale, as
nostalgebraist's logit lens does) and the unembedding, applied to the stream at that layer.

Every position gets a column, not only the last: a position's target is the token that follows it in the
prompt, and at the last position the task's correct answers (rank: the best-ranked correct token;
probability: summed over the correct tokens). Per (layer, position) the table keeps, over prompts:

    accuracy      share of prompts whose top token is the target
    target_prob   mean probability of the target
    target_rank   median rank of the target (0 = top)
    top_token     the first prompt's top token (an example; prompts differ in their tokens)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from discovery.analysis.stream import as_engine, run_stream
from discovery.engine import PatchingEngine


@dataclass
class LogitLensResult:
    """Tables ``[layers][positions]``; ``layers`` and ``positions`` name the rows and columns."""

    layers: list[str]
    positions: list[str]
    targets: list[str]
    accuracy: list[list[float]]
    target_prob: list[list[float]]
    target_rank: list[list[float]]
    top_token: list[list[str]]
    n_prompts: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def lens_logits(engine: PatchingEngine, tokens: Tensor) -> Tensor:
    """``[L + 1, B, P, V]``: the unembedded residual stream at every layer (the last row is the model's logits).

    Holds every row at once: for small models and tests (``analyze_logit_lens`` goes one layer at a time)."""
    stream = run_stream(engine, tokens)
    with torch.no_grad():
        return torch.stack([engine.unembed(r).float() for r in stream.resid])


def target_ranks(logits: Tensor, targets: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Best rank and summed probability ``[...]`` of the masked ``targets`` ``[..., k]`` in ``logits`` ``[..., V]``.

    The best rank is the number of tokens above the best target's logit (0: a target is on top)."""
    picked = logits.gather(-1, targets.clamp(min=0))  # [..., k]
    best = picked.masked_fill(~mask, float("-inf")).max(-1, keepdim=True).values
    rank = (logits > best).sum(-1)
    probs = torch.softmax(logits, -1).gather(-1, targets.clamp(min=0))
    return rank, (probs * mask.to(probs.dtype)).sum(-1)


def analyze_logit_lens(model: Any, dataset: Any, tokenizer: Optional[Any] = None) -> LogitLensResult:
    """The logit-lens table of ``dataset``'s clean prompts (see the module docstring)."""
    engine = as_engine(model)
    tokens = dataset.clean.to(engine.w.device)
    stream = run_stream(engine, tokens)
    B, P = tokens.shape
    k = max(1, int(dataset.answers.shape[1]))
    targets = torch.full((B, P, k), -1, dtype=torch.long, device=tokens.device)
    targets[:, :-1, 0] = tokens[:, 1:]
    targets[:, -1] = dataset.answers.to(tokens.device)
    mask = targets >= 0
    rows: dict[str, list[Tensor]] = {"accuracy": [], "prob": [], "rank": [], "top": []}
    with torch.no_grad():
        for resid in stream.resid:  # one layer at a time: [B, P, V] logits each
            logits = engine.unembed(resid).float()
            rank, prob = target_ranks(logits, targets, mask)
            top = logits.argmax(-1)
            rows["accuracy"].append((top.unsqueeze(-1) == targets).any(-1).float().mean(0))
            rows["prob"].append(prob.mean(0))
            rows["rank"].append(rank.float().median(0).values)
            rows["top"].append(top[0])
    names = _names(tokenizer)
    return LogitLensResult(
        layers=["embed"] + [f"after L{layer}" for layer in range(len(stream.resid) - 1)],
        positions=[f"{p}:{names(int(t))}" for p, t in enumerate(tokens[0])],
        targets=[names(int(t)) for t in targets[0, :, 0]],
        accuracy=_table(torch.stack(rows["accuracy"])),
        target_prob=_table(torch.stack(rows["prob"])),
        target_rank=_table(torch.stack(rows["rank"])),
        top_token=[[names(int(t)) for t in row] for row in rows["top"]],
        n_prompts=B,
    )


def _names(tokenizer: Optional[Any]) -> Any:
    if tokenizer is None:
        return str
    return lambda i: tokenizer.convert_ids_to_tokens(i)


def _table(x: Tensor) -> list[list[float]]:
    return [[round(float(v), 4) for v in row] for row in x]
