"""Task metrics on last-position logits, and the one definition of "performance kept".

Shapes: logits ``[C, B, V]`` (C mask copies of B prompts). Answers and wrong answers are token-id sets per
prompt (``[B, k]`` ids with a ``[B, k]`` mask), so greater-than's "any year above YY" and IOI's single name use
the same code.

What each metric means (its direction, and which share of the model's performance it is read with) is written
once, on its spec in ``discovery.names``; this module computes the values:

- ``logit-diff``: mean logit over the correct tokens minus mean logit over the wrong ones (Wang et al. 2022;
  Lan et al. use logit(correct) - logit(last member repeated)).
- ``prob-diff``: summed probability of the correct tokens minus that of the wrong ones (Hanna et al. 2023).
- ``kl``: KL(clean model || patched model) over the next-token distribution (Conmy et al. 2023).
- ``accuracy``: the top token is one of the correct tokens.
- ``kept_fraction`` = m(circuit) / m(model); ``faithfulness`` = (m(circuit) - m(empty)) / (m(model) - m(empty)),
  where "empty" patches every edge.
Every metric also has a *loss* (lower is better: the metric itself where lower is better, else its negation) so
that pruning methods compare "how much worse" the same way whatever the metric.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from discovery.errors import SettingsError
from discovery.names import METRIC_SPECS, METRICS, MetricSpec


def _gather_mean(values: Tensor, ids: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values[..., b, ids[b]]`` over the masked ids: ``[C, B, V] -> [C, B]``."""
    picked = values.gather(-1, ids.clamp(min=0).unsqueeze(0).expand(values.shape[0], *ids.shape))
    m = mask.to(values.dtype).unsqueeze(0)
    return (picked * m).sum(-1) / m.sum(-1).clamp(min=1)


def _gather_sum(values: Tensor, ids: Tensor, mask: Tensor) -> Tensor:
    picked = values.gather(-1, ids.clamp(min=0).unsqueeze(0).expand(values.shape[0], *ids.shape))
    return (picked * mask.to(values.dtype).unsqueeze(0)).sum(-1)


class Metric:
    """A task metric bound to one dataset's answers and to the clean model's distribution (for KL)."""

    def __init__(
        self,
        name: str,
        answers: Tensor,
        answers_mask: Tensor,
        wrong: Tensor,
        wrong_mask: Tensor,
        clean_logits: Optional[Tensor] = None,
    ):
        if name not in METRICS:
            raise SettingsError(f"unknown metric {name!r}: choose one of {', '.join(METRICS)}")
        if name == "kl" and clean_logits is None:
            raise SettingsError("the kl metric needs the clean model's logits")
        self.name = name
        self.spec: MetricSpec = METRIC_SPECS[name]
        self.answers, self.answers_mask = answers, answers_mask
        self.wrong, self.wrong_mask = wrong, wrong_mask
        self.clean_logprobs = None if clean_logits is None else torch.log_softmax(clean_logits.float(), -1)
        self._clean_probs = None if self.clean_logprobs is None else self.clean_logprobs.exp()

    def per_prompt(self, logits: Tensor) -> Tensor:
        """The metric for each copy and prompt: ``[C, B, V] -> [C, B]`` (float32)."""
        x = logits.float()
        if self.name == "logit-diff":
            return _gather_mean(x, self.answers, self.answers_mask) - _gather_mean(x, self.wrong, self.wrong_mask)
        if self.name == "prob-diff":
            p = torch.softmax(x, -1)
            return _gather_sum(p, self.answers, self.answers_mask) - _gather_sum(p, self.wrong, self.wrong_mask)
        if self.name == "kl":
            return self._kl(x)
        top = x.argmax(-1)  # accuracy
        hit = (self.answers.unsqueeze(0) == top.unsqueeze(-1)) & self.answers_mask.unsqueeze(0)
        return hit.any(-1).float()

    def _kl(self, x: Tensor) -> Tensor:
        """sum_v p (log p - log q) per copy and prompt, p the clean distribution and q = softmax(x): the differences
        written over log q (when no gradient is taken), then one reduction against p. The same elementwise
        arithmetic as ``(p * (log p - log q)).sum(-1)`` with two passes over the ``[C, B, V]`` logits fewer, which
        counts where ACDC evaluates ten thousand copies of GPT-2's 50,257 logits (``benchmarks/README.md``)."""
        assert self.clean_logprobs is not None and self._clean_probs is not None
        logq = torch.log_softmax(x, -1)
        if logq.requires_grad:
            diff = self.clean_logprobs - logq
        else:
            diff = torch.sub(self.clean_logprobs, logq, out=logq)
        return torch.einsum("cbv,bv->cb", diff, self._clean_probs)

    def value(self, logits: Tensor) -> Tensor:
        """Mean over prompts: ``[C, B, V] -> [C]``."""
        return self.per_prompt(logits).mean(-1)

    def loss(self, logits: Tensor) -> Tensor:
        """Lower is better, for every metric: ``[C]``."""
        v = self.value(logits)
        return -v if self.spec.higher_is_better else v


def kept_fraction(circuit: float, model: float) -> float:
    """m(circuit) / m(model): Lan et al.'s (2023) share of the model's performance."""
    return circuit / model if model != 0 else float("nan")


def faithfulness(circuit: float, model: float, empty: float) -> float:
    """(m(C) - m(empty)) / (m(model) - m(empty)): MIB's normalised faithfulness (arXiv 2504.13151)."""
    span = model - empty
    return (circuit - empty) / span if span != 0 else float("nan")
