"""Covers: discovery.metrics' KL (Conmy et al. 2023's metric) against its definition, computed in
float64 from the same logits: the value per copy and prompt, zero at the clean logits, and its gradient (which EAP
takes)."""

from __future__ import annotations

import pytest
import torch

from discovery.metrics import Metric


def _metric(clean: torch.Tensor) -> Metric:
    B = clean.shape[0]
    ids, mask = torch.zeros(B, 1, dtype=torch.long), torch.ones(B, 1, dtype=torch.bool)
    return Metric("kl", ids, mask, ids + 1, mask, clean_logits=clean)


def _written_out(clean: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(clean.double(), -1).unsqueeze(0)
    logq = torch.log_softmax(logits.double(), -1)
    return (logp.exp() * (logp - logq)).sum(-1)


@pytest.mark.parametrize("vocab", [7, 50_257])
def test_kl_is_the_written_out_definition(vocab: int) -> None:
    g = torch.Generator().manual_seed(vocab)
    clean = 3 * torch.randn(4, vocab, generator=g)
    near = clean + 1e-2 * torch.randn(3, 4, vocab, generator=g)  # small KLs: rounding matters most here
    far = 3 * torch.randn(2, 4, vocab, generator=g)
    metric = _metric(clean)
    for logits in (near, far):
        ours = metric.per_prompt(logits)
        assert ours.shape == logits.shape[:2]
        assert ours.double() == pytest.approx(_written_out(clean, logits), abs=2e-6, rel=1e-5)
    assert metric.per_prompt(clean.unsqueeze(0)).abs().max() < 2e-6


def test_kl_gradient_is_the_written_out_one() -> None:
    g = torch.Generator().manual_seed(1)
    clean, logits = torch.randn(2, 11, generator=g), torch.randn(1, 2, 11, generator=g)
    ours = logits.clone().requires_grad_(True)
    _metric(clean).value(ours).sum().backward()
    ref = logits.double().requires_grad_(True)
    _written_out(clean, ref).mean(-1).sum().backward()
    assert ours.grad is not None and ref.grad is not None
    assert torch.allclose(ours.grad.double(), ref.grad, atol=1e-6)
