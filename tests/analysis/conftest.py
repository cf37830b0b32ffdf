"""Fixtures for the analysis tests: hand-built models (``builders``) and a tiny random GPT-2, made here, never downloaded."""

from __future__ import annotations

import pytest

from discovery.weights import GPT2Weights
from tests.analysis.builders import (
    MEMBERS,
    N_TOK,
    empty_weights,
    set_offset_head,
    set_ov,
    set_type_head,
)
from tests.helpers import make_model_folder


@pytest.fixture
def ov_weights() -> GPT2Weights:
    """Layer 1: head 0 maps token i to i+1 (successor), head 1 copies, head 2 suppresses the token it reads."""
    w = empty_weights(n_layers=2, n_heads=3)
    set_ov(w, 1, 0, {t: t + 1 for t in range(N_TOK - 1)})
    set_ov(w, 1, 1, {t: t for t in range(N_TOK)})
    set_ov(w, 1, 2, {t: t for t in range(N_TOK)}, sign=-1.0)
    return w


@pytest.fixture
def attention_weights() -> GPT2Weights:
    """Layer 0: head 0 a previous-token head, head 1 a type head (members), head 2 an n-2 head."""
    w = empty_weights(n_layers=1, n_heads=3)
    set_offset_head(w, 0, 0, 1)
    set_type_head(w, 0, 1, MEMBERS)
    set_offset_head(w, 0, 2, 2)
    return w


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory):
    from discovery.models import load_model

    return load_model(str(make_model_folder(tmp_path_factory.mktemp("tiny-gpt2"))))

