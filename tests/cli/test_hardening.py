"""Covers: bad input as a hostile user gives it, at every command: one line on stderr, a non-zero exit, no
traceback, the catalog unchanged, nothing written outside the folder named; outputs whole or absent; work bounded
by what the input can mean; another program's database untouched; catalogs opened, not conjured; values both
backends keep; Ctrl-C and SIGTERM at any moment."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


@pytest.fixture
def catalog(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert run("reference", "import", "ioi-wang2022", "digits-lan2023", "--db", url).exit_code == 0
    return url


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings must be refused before any model is loaded: loading one fails the test."""
    import discovery.models

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded for a run that should have been refused")

    monkeypatch.setattr(discovery.models, "load_model", refuse)


# -- writing files --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["export", "ioi-wang2022", "-o", "{tmp}/missing/x.json"],
    ["render", "ioi-wang2022", "-o", "{tmp}/missing/x.dot"],
    ["tasks", "export", "ioi", "--model", "toy", "--n", "3", "-o", "{tmp}/missing/x.jsonl"],
])
def test_a_missing_folder_is_one_line(catalog: str, tmp_path: Path, command: list[str]) -> None:
    args = [a.format(tmp=tmp_path) for a in command] + (["--db", catalog] if command[0] != "tasks" else [])
    one_line_error(run(*args), "does not exist")
    assert not (tmp_path / "missing").exists()


def test_a_device_is_never_replaced_by_a_file(catalog: str) -> None:
    before = os.stat("/dev/full")
    one_line_error(run("export", "ioi-wang2022", "-o", "/dev/full", "--db", catalog), "not a regular file")
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


@pytest.mark.parametrize("command", [
    ["export", "ioi-wang2022", "-o", "{out}"],
    ["render", "ioi-wang2022", "-o", "{out}"],
    ["tasks", "export", "ioi", "--model", "toy", "--n", "3", "-o", "{out}"],
])
def test_a_full_disk_leaves_the_old_file_whole(catalog: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               command: list[str]) -> None:
    import discovery.files

    out = tmp_path / ("x.jsonl" if command[0] == "tasks" else "x.dot" if command[0] == "render" else "x.json")
    out.write_text("the previous contents\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(discovery.files.os, "fsync", full)
    args = [a.format(out=out) for a in command] + (["--db", catalog] if command[0] != "tasks" else [])
    one_line_error(run(*args), "No space left on device", str(out))
    assert out.read_text() == "the previous contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.db", out.name] + [
        p.name for p in tmp_path.iterdir() if p.name.startswith("c.db-")])  # no partial file left


# -- reading files --------------------------------------------------------------------------------------------


def test_a_prompts_file_that_is_not_utf8_is_one_line(tmp_path: Path, no_model_loads: None) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_bytes(b'{"clean": "caf\xe9", "corrupted": "x", "answer": " y", "wrong": " z"}\n')
    one_line_error(run("tasks", "show", f"file:{bad}", "--model", "toy"), "is not UTF-8")
    one_line_error(run("discover", "--task", f"file:{bad}", "--method", "acdc", "--db",
                       f"sqlite:///{tmp_path / 'c.db'}"), "is not UTF-8")
    assert not (tmp_path / "c.db").exists()


@pytest.mark.parametrize("shape,fragment", [
    ({"n_layers": 0, "n_heads": 4}, "from 1 to 256, got 0"),
    ({"n_layers": -3, "n_heads": 4}, "got -3"),
    ({"n_layers": 1_000_000_000, "n_heads": 4}, "from 1 to 256"),
    ({"n_layers": True, "n_heads": 4}, "expected an integer, got true"),
])
def test_a_native_file_declaring_an_impossible_shape_is_refused_at_once(tmp_path: Path, shape: dict,
                                                                         fragment: str) -> None:
    data = {"format": "circuit-catalog", "version": 1,
            "circuit": {"name": "c", "model": "mine", "metadata": {"model_shape": shape}},
            "nodes": [{"key": "a0.0"}]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    started = time.perf_counter()
    result = run("import", str(path), "--db", f"sqlite:///{tmp_path / 'c.db'}")
    one_line_error(result, fragment)
    assert time.perf_counter() - started < 5 and not (tmp_path / "c.db").exists()


def test_model_folders_that_do_not_load_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run("toy", "eval", "--model-dir", str(empty)), "no config.json")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((ROOT / "discovery/toy/model/config.json").read_text())
    import torch

    class Payload:
        def __reduce__(self) -> tuple:
            return (print, ("this must not run",))

    torch.save({"w": Payload()}, pickled / "pytorch_model.bin")
    result = run("toy", "eval", "--model-dir", str(pickled))
    one_line_error(result, "only safetensors")
    assert "this must not run" not in result.output


# -- settings and names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("args,fragment", [
    (["--method", "acdc", "--threshold", "-1"], "--threshold: must be a finite number >= 0, got -1"),
    (["--method", "eap", "--threshold", "nan"], "--threshold: must be a finite number >= 0, got nan"),
    (["--method", "eap", "--target", "5"], "--target"),
    (["--method", "acdc", "--top-k", "5"], "acdc does not take --top-k"),
    (["--method", "eap", "--top-k", "5", "--target", "0.5"], "not --top-k and --target together"),
    (["--method", "node-pruning", "--orders", "100000000"], "--orders: must be a finite number >= 0 and <= 1000"),
    (["--method", "acdc", "--n-prompts", "1000000000"], "gives 1 to 100000 prompts"),
    (["--method", "acdc", "--name", " spaced "], "may not start or end with spaces"),
    (["--method", "acdc", "--name", "a/b"], "may not hold /"),
    (["--method", "acdc", "--name", ".."], "may not hold /"),
    (["--method", "acdc", "--name", "x" * 201], "at most 200 characters"),
    (["--method", "acdc", "--model", "m" * 1000], "--model: a model's name (or folder) may have at most 200"),
    (["--method", "acdc", "--metric", "vibes"], "--metric: unknown metric"),
    (["--method", "acdc", "--seed", "-1"], "--seed"),
    (["--method", "acdc", "--device", "gpu"], "--device"),
])
def test_bad_settings_and_names_are_refused_before_anything(tmp_path: Path, no_model_loads: None, args: list[str],
                                                            fragment: str) -> None:
    db = tmp_path / "c.db"
    result = run("discover", "--task", "digits", *args, "--db", f"sqlite:///{db}")
    one_line_error(result, fragment)
    assert not db.exists()  # no run row, no catalog


def test_names_are_checked_at_every_entry(catalog: str, tmp_path: Path) -> None:
    exported = tmp_path / "ioi.json"
    assert run("export", "ioi-wang2022", "-o", str(exported), "--db", catalog).exit_code == 0
    before = digest(Path(catalog.removeprefix("sqlite:///")))
    for name in ("../escaped", "tab\there", "/abs", "x" * 201):
        one_line_error(run("import", str(exported), "--name", name, "--db", catalog))
    one_line_error(run("role", "set", "ioi-wang2022", "9.9", "r" * 100_000, "--db", catalog),
                   "a role may have at most 200 characters")
    one_line_error(run("role", "set", "ioi-wang2022", "9.9", "mover", "--score", "nan", "--db", catalog),
                   "finite number")
    one_line_error(run("show", "ioi-wang2022", "--threshold", "-1", "--db", catalog), "finite number >= 0")
    assert digest(Path(catalog.removeprefix("sqlite:///"))) == before


def test_a_name_never_becomes_a_path(tmp_path: Path) -> None:
    from catalog.db import connect

    url = f"sqlite:///{tmp_path / 'c.db'}"
    connect(url).dispose()
    with sqlite3.connect(tmp_path / "c.db") as conn:  # names an older version, or another tool, may have stored
        conn.execute("INSERT INTO model (name, versions, flags) VALUES ('toy', '{}', '{}')")
        for i, name in enumerate(["../ESCAPED", "/tmp/abs-name", "ünïcødé név"]):
            conn.execute("INSERT INTO circuit (name, model_id, source, edges_known, n_nodes, n_edges, performance, "
                         "metadata, created_at) VALUES (?, 1, 'imported', 0, 1, 0, '{}', '{}', '2026-01-01')",
                         (name,))
            conn.execute("INSERT INTO node (circuit_id, key, kind, layer, head, kept, attributes) "
                         "VALUES (?, 'a0.0', 'head', 0, 0, 1, '{}')", (i + 1,))
    plots = tmp_path / "plots"
    for name in ["../ESCAPED", "/tmp/abs-name", "ünïcødé név"]:
        result = run("analyze", name, "--task", "digits-list", "--n-prompts", "4", "--what", "attention",
                     "--plots", str(plots), "--db", url)
        assert result.exit_code == 0, result.output
    written = [p for p in tmp_path.rglob("*") if p.suffix in (".png", ".pdf")]
    assert written and all(p.parent == plots for p in written)
    assert not Path("/tmp/abs-name-attention-a0.0.png").exists() and not (tmp_path / "ESCAPED-attention-a0.0.png").exists()


# -- databases ------------------------------------------------------------------------------------------------


def test_another_programs_database_is_never_written(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
    before = digest(other)
    url = f"sqlite:///{other}"
    for args in (["list"], ["runs"], ["reference", "import"], ["db", "upgrade"], ["show", "x"]):
        one_line_error(run(*args, "--db", url), "not a circuit catalog", "users")
        assert digest(other) == before and not Path(f"{other}-wal").exists()
    assert run("db", "upgrade", "--alongside", "--db", url).exit_code == 0
    assert run("reference", "import", "ioi-wang2022", "--db", url).exit_code == 0
    assert json.loads(run("list", "--json", "--db", url).stdout)[0]["name"] == "ioi-wang2022"
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [("ada",)]


def test_a_catalog_is_opened_not_conjured(tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    for args in (["list"], ["holds", "9.1"], ["delete", "x"], ["role", "list", "x"], ["evaluate", "x"]):
        one_line_error(run(*args, "--db", str(typo)), "no catalog at", "circuits db upgrade")
        assert not typo.exists()
    for url in ("sqlite://", ":memory:", "sqlite:///:memory:"):
        one_line_error(run("reference", "import", "--db", url), "in-memory catalog vanishes")
    assert run("db", "upgrade", "--db", str(typo)).exit_code == 0 and typo.exists()


def test_reading_changes_nothing_in_the_file(catalog: str) -> None:
    path = Path(catalog.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:  # fold the WAL into the file, so any later write shows in it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = (digest(path), path.stat().st_mtime_ns)
    for args in (["list"], ["show", "ioi-wang2022"], ["holds", "9.1"], ["runs"], ["db", "current"],
                 ["overlap", "ioi-wang2022", "digits-lan2023"], ["reference", "list"]):
        assert run(*args, "--db", catalog).exit_code == 0
    assert (digest(path), path.stat().st_mtime_ns) == before


def test_a_wal_catalog_on_a_read_only_filesystem_is_still_read(catalog: str, tmp_path: Path) -> None:
    source = Path(catalog.removeprefix("sqlite:///")).parent
    mount = tmp_path / "ro"
    mount.mkdir()
    bound = subprocess.run(["mount", "--bind", str(source), str(mount)], capture_output=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here to make a read-only filesystem: {bound.stderr.decode().strip()}")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        result = run("list", "--json", "--db", str(mount / "c.db"))
        assert result.exit_code == 0, result.output
        assert {c["name"] for c in json.loads(result.stdout)} == {"ioi-wang2022", "digits-lan2023"}
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


# -- saying what happened only after it happened ---------------------------------------------------------------


def test_reference_import_reports_only_what_it_committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import catalog.queries as queries

    url = f"sqlite:///{tmp_path / 'c.db'}"
    saved: list[str] = []
    original = queries.save_circuit

    def fail_third(session: Any, new: Any, *args: Any) -> Any:
        saved.append(new.name)
        if len(saved) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(session, new, *args)

    monkeypatch.setattr(queries, "save_circuit", fail_third)
    result = run("reference", "import", "--db", url)
    one_line_error(result, "No space left on device")
    assert result.stdout == ""  # nothing was said to be imported
    monkeypatch.undo()
    assert json.loads(run("list", "--json", "--db", url).stdout) == []


def test_analyze_stores_nothing_when_a_plot_cannot_be_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert run("discover", "--task", "digits-list", "--method", "eap", "--top-k", "5", "--n-prompts", "8",
               "--name", "d", "--db", url).exit_code == 0
    before = json.loads(run("show", "d", "--json", "--db", url).stdout)
    unreachable = tmp_path / "missing" / "plots"  # the analyses run, then the plots cannot be written
    one_line_error(run("analyze", "d", "--n-prompts", "4", "--plots", str(unreachable), "--db", url), "missing")
    assert json.loads(run("show", "d", "--json", "--db", url).stdout) == before


# -- signals --------------------------------------------------------------------------------------------------


def _circuits(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    def default_sigint() -> None:  # a background job of a non-interactive shell starts with SIGINT ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=default_sigint, env={**os.environ, **(env or {})})


_SLOW_IMPORT = """
import os, pathlib, signal, time
os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of an import
time.sleep(0.3)
pathlib.Path(os.environ["MARKER"]).write_text("imported")
"""

_IMPORTER = """
import signal, sys, time
from cli import entry
signal.signal(signal.SIGINT, entry._on_sigint)
try:
    import slow_import
    time.sleep(10)
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted after the import")
"""


def test_ctrl_c_inside_an_import_waits_for_the_import(tmp_path: Path) -> None:
    # Raised inside an import, a KeyboardInterrupt can reach a native module's initialisation and abort the
    # process (pybind11::error_already_set, exit -6): the handler lets the import finish, then interrupts.
    (tmp_path / "slow_import.py").write_text(_SLOW_IMPORT)
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", _IMPORTER], cwd=ROOT, capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "MARKER": str(marker)})
    assert done.stdout.decode().strip() == "interrupted after the import", done.stderr
    assert marker.read_text() == "imported"


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_ctrl_c_at_start_up_is_one_line_and_130(tmp_path: Path, delay: float) -> None:
    proc = _circuits("discover", "--task", "digits", "--method", "acdc", "--db", f"sqlite:///{tmp_path / 'c.db'}")
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    # 130, or death by SIGINT, which a shell also reports as 130: twice in many runs on a loaded machine the
    # interpreter ended that way after printing the one line (not reproduced on demand; the line is what matters)
    assert proc.returncode in (130, -signal.SIGINT), err
    assert err.decode().strip().splitlines()[-1:] == ["interrupted"] and b"Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("sig,code,status", [(signal.SIGTERM, 143, "interrupted (SIGTERM)"),
                                             (signal.SIGINT, 130, "interrupted (Ctrl-C)")])
def test_a_signal_mid_run_records_it_interrupted(tmp_path: Path, sig: int, code: int, status: str) -> None:
    db = tmp_path / "c.db"
    proc = _circuits("discover", "--model", "toy", "--task", "ioi", "--method", "acdc", "--threshold", "0",
                     "--n-prompts", "256", "--db", f"sqlite:///{db}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait for the run row
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    if conn.execute("SELECT count(*) FROM run WHERE status = 'running'").fetchone()[0]:
                        break
            except sqlite3.Error:
                pass
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the run never started")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert b"Traceback" not in err and len(err.decode().strip().splitlines()) <= 2  # the progress bar, then one line
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, error FROM run").fetchall() == [("interrupted", status)]
        assert conn.execute("SELECT count(*) FROM circuit").fetchone()[0] == 0


@pytest.mark.parametrize("sig,code,line", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_an_error_after_a_signal_is_reported_as_the_signal(monkeypatch: pytest.MonkeyPatch, sig: int, code: int,
                                                           line: str) -> None:
    """A library interrupted mid-import can swallow the KeyboardInterrupt and fail later with another error (a
    RecursionError, seen once at start-up): the user pressed Ctrl-C, and is told so, not of an internal error."""
    import cli.entry
    import discovery.tasks

    def broken() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(discovery.tasks, "list_tasks", broken)
    monkeypatch.setattr(cli.entry, "_signalled", sig)
    result = run("tasks", "list")
    assert (result.exit_code, result.stderr) == (code, f"{line}\n")
    monkeypatch.setattr(cli.entry, "_signalled", 0)
    one_line_error(run("tasks", "list"), "internal error (RecursionError")  # without a signal: a bug, said so
