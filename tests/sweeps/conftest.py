"""Fixtures for sweeps: a catalog URL on each backend (PostgreSQL when ``CIRCUITS_TEST_POSTGRES_URL`` names a
server), small specs on the toy model, and one in-process worker holding the toy model for the module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.catalog.conftest import db_url  # noqa: F401  (the catalog tests' fixture: an empty database on each backend)

# 2 tasks x 2 methods x 2 thresholds on the toy model: the grid, fast methods and 8 prompts a task.
GRID = """
name = "grid"
[defaults]
models = ["toy"]
n_prompts = 8
[[grid]]
tasks = ["digits", "months"]
[grid.methods.eap]
threshold = [0.05, 0.1]
[grid.methods.eap-ig]
threshold = [0.05, 0.1]
steps = 2
"""


@pytest.fixture
def grid_spec(tmp_path: Path) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    return path


@pytest.fixture(scope="module")
def toy_worker() -> Any:
    """One in-process worker, its toy model loaded once for the module (a load takes seconds here)."""
    from discovery.sweeps.worker import SweepWorker

    return SweepWorker()
