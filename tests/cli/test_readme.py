"""Covers: the README says what the code does: its methods table is the method registry's, and its notebook
example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from discovery.methods import METHODS

README = Path(__file__).resolve().parents[2] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_the_methods_table_is_the_registry() -> None:
    rows = [(re.search(r"\| `([a-z][a-z-]*)` \|", line), line) for line in _section("Discovery").splitlines()
            if line.startswith("| ")]
    table = {match.group(1): line for match, line in rows if match}  # the header's `--method` does not match
    assert sorted(table) == sorted(METHODS)
    for name, spec in METHODS.items():
        assert table[name].rstrip(" |").endswith(spec.reproduces), name


@pytest.mark.slow
def test_the_notebook_example_runs_as_written(tmp_path: Path) -> None:
    block = re.search(r"```python\n(.*?)```", _section("In a notebook"), re.S)
    assert block is not None
    root = README.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", block.group(1)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert 0.0 <= float(lines[0]) <= 1.0 and lines[1].startswith("Path(nodes=('embed'")
    assert (tmp_path / "notebook.db").exists()
