"""Fixtures for method tests: the planted-circuit model, and the tiny random GPT-2 of ``tests/discovery``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .planted import Planted, planted_circuit


def _discovery_fixtures() -> ModuleType:
    """``tests/discovery/conftest.py`` as a plain module, for its model builder and synthetic dataset.

    Loaded by path: ``tests`` is not a package, so the module cannot be imported by name under every way of
    running pytest. Only its helper functions are used (its fixtures are not registered here).
    """
    name = "_circuit_catalog_discovery_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent.parent / "discovery" / "conftest.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return planted_circuit(tmp_path_factory.mktemp("planted-gpt2"))


@pytest.fixture(scope="session")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from discovery.models import load_model

    return load_model(str(_discovery_fixtures().make_model_folder(tmp_path_factory.mktemp("tiny-gpt2"))))


@pytest.fixture()
def random_dataset() -> Any:
    return _discovery_fixtures().synthetic_dataset()
