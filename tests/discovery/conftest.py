"""Fixtures for discovery tests: a tiny random GPT-2 (see ``tests/helpers.py``), loaded through the model loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SyntheticDataset, make_model_folder, synthetic_dataset


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_model(tiny_folder: Path):
    from discovery.models import load_model

    return load_model(str(tiny_folder))


@pytest.fixture
def dataset() -> SyntheticDataset:
    return synthetic_dataset()
