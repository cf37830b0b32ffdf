"""Fixtures for method tests: the planted-circuit model, and the tiny random GPT-2 of ``tests/discovery``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import make_model_folder, synthetic_dataset

from .planted import Planted, planted_circuit


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return planted_circuit(tmp_path_factory.mktemp("planted-gpt2"))


@pytest.fixture(scope="session")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from discovery.models import load_model

    return load_model(str(make_model_folder(tmp_path_factory.mktemp("tiny-gpt2"))))


@pytest.fixture
def random_dataset() -> Any:
    return synthetic_dataset()
