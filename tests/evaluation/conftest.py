"""Fixtures for evaluation and node-pruning tests: a tiny random engine built from plain tensors (no bridge, no files).

The engine's forward is checked against TransformerBridge in ``tests/discovery``; here only its masks matter, so
the weights are drawn directly, which keeps every fixture well under a second.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from discovery.engine import PatchingEngine
from discovery.patching import PatchSetup, prepare_from_engine
from discovery.weights import GPT2Weights
from tests.helpers import SyntheticDataset

VOCAB = 43


def synthetic_prompts(n: int, pos: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean prompts and corrupted ones that differ in every position but the first and last."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(3, VOCAB, (n, pos), generator=g)
    clean[:, 0] = 1
    corrupted = clean.clone()
    corrupted[:, 1:-1] = torch.randint(3, VOCAB, (n, pos - 2), generator=g)
    return clean, corrupted


def random_weights(n_layers: int = 3, n_heads: int = 4, d_model: int = 32, seed: int = 0) -> GPT2Weights:
    """Random GPT-2-shaped weights with sharp attention and non-trivial LayerNorms, so ablations matter."""
    g = torch.Generator().manual_seed(seed)
    L, H, d, e, f, V, n = n_layers, n_heads, d_model, d_model // n_heads, 4 * d_model, VOCAB, 16

    def r(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    return GPT2Weights(
        W_E=r(V, d), W_pos=r(n, d, scale=0.5),
        W_Q=r(L, H, d, e, scale=0.6), W_K=r(L, H, d, e, scale=0.6), W_V=r(L, H, d, e, scale=0.4),
        b_Q=r(L, H, e, scale=0.1), b_K=r(L, H, e, scale=0.1), b_V=r(L, H, e, scale=0.1),
        W_O=r(L, H, e, d, scale=0.4), b_O=r(L, d, scale=0.1),
        W_in=r(L, d, f, scale=0.3), b_in=r(L, f, scale=0.1), W_out=r(L, f, d, scale=0.2), b_out=r(L, d, scale=0.1),
        W_U=r(d, V), b_U=r(V, scale=0.1),
        ln1_w=1 + r(L, d, scale=0.2), ln1_b=r(L, d, scale=0.1), ln2_w=1 + r(L, d, scale=0.2), ln2_b=r(L, d, scale=0.1),
        lnf_w=1 + r(d, scale=0.2), lnf_b=r(d, scale=0.1),
    )


def make_setup(
    *, n_layers: int = 3, n_heads: int = 4, seed: int = 0, metric: str = "logit-diff", ablation: str = "mean",
    n_prompts: int = 10,
) -> PatchSetup:
    """A setup whose answers are the clean model's top tokens (so its logit difference is clearly positive)."""
    engine = PatchingEngine(random_weights(n_layers, n_heads, seed=seed))
    clean, corrupted = synthetic_prompts(n_prompts, seed=seed)
    with torch.no_grad():
        logits = engine.forward(clean).logits[0]  # [B, V]
    order = logits.argsort(-1, descending=True)
    ones = torch.ones(n_prompts, 1, dtype=torch.bool)
    data = SyntheticDataset(clean, corrupted, order[:, :1].clone(), ones, order[:, -1:].clone(), ones.clone(), metric)
    return prepare_from_engine(engine, data.clean, data.corrupted, data, metric=metric, ablation=ablation)


@pytest.fixture
def setup() -> PatchSetup:
    return make_setup()


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """These tensors are tiny: with a loaded 2-core machine, torch's thread pool costs 10x the work (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
