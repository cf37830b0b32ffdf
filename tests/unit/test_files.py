"""Covers: files the tool writes are whole or absent, readable as a plain ``open`` would leave them (not
``mkstemp``'s 0600), and never outside the folder named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from discovery.errors import OutputError
from discovery.files import atomic_path, inside, safe_name, write_text_atomic


def test_a_new_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_own(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.dot"
        write_text_atomic(new, "digraph {}")
        assert new.stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.dot"
        kept.write_text("old")
        kept.chmod(0o600)
        write_text_atomic(kept, "digraph {}")
        assert kept.stat().st_mode & 0o777 == 0o600 and kept.read_text() == "digraph {}"
    finally:
        os.umask(old)


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text("old")

    class Boom(Exception):
        pass

    def write_half() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise Boom

    with pytest.raises(Boom):
        write_half()
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.parametrize("name", ["../ESCAPED", "/etc/passwd", "a/b", "ünïcode", "..", ""])
def test_names_from_circuits_stay_inside_the_folder(tmp_path: Path, name: str) -> None:
    path = inside(tmp_path, safe_name(name) + "-logit-lens.pdf")
    assert path.parent == tmp_path.resolve()
    with pytest.raises(OutputError):
        inside(tmp_path, "../" + safe_name(name))
