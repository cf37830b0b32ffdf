"""Fixtures for comparing, drawing and moving circuits: a fresh SQLite catalog per test and JSON files to import."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def db(tmp_path: Path) -> str:
    """The URL of an empty SQLite catalog, created on first use by the CLI."""
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[str, Any], Path]:
    def write(name: str, data: Any) -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
        return path

    return write
