"""Covers: every catalog command's exact output, one-line errors that leave the DB unchanged, help with examples."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

import catalog.db as db
from catalog import queries
from catalog.db import VERSION_TABLE, connect, head_revision, session_scope, to_url
from catalog.records import NewCircuit
from catalog.tables import Base
from cli.main import cli as circuits
from cli.main import load_command
from discovery.config import make_config
from discovery.results import ModelSpec

CATALOG_COMMANDS = ("db", "list", "show", "holds", "runs", "delete")


def _all_commands() -> Iterator[tuple[str, click.Command]]:
    for name in CATALOG_COMMANDS:
        command = load_command(name)
        yield name, command
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                yield f"{name} {sub.name}", sub


@pytest.fixture
def run_cli(sqlite_url: str) -> Callable[..., Result]:
    def invoke(*args: str, db: str | None = None) -> Result:
        return CliRunner().invoke(circuits, [*args, "--db", db or sqlite_url], catch_exceptions=False)

    return invoke


@pytest.fixture
def seeded(sqlite_url: str, make_circuit: Callable[..., NewCircuit]) -> str:
    engine = connect(sqlite_url)
    with session_scope(engine) as s:
        queries.save_circuit(s, make_circuit())
        queries.save_circuit(s, make_circuit("nodes-only", model="pythia-70m", task=None, edges=(),
                                             edges_known=False, citation=None, method=None, threshold=None,
                                             performance={}))
    engine.dispose()
    return sqlite_url


@pytest.mark.parametrize("name, command", list(_all_commands()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_help_with_an_example(name: str, command: click.Command) -> None:
    assert command.help and len(command.help.strip()) > 20
    result = CliRunner().invoke(circuits, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and f"circuits {name}" in result.output


def test_the_real_circuits_group_carries_the_catalog_commands() -> None:
    assert set(CATALOG_COMMANDS) <= set(circuits.list_commands(click.Context(circuits)))


def test_list_prints_a_table_and_json(seeded: str, run_cli: Callable[..., Result]) -> None:
    result = run_cli("list")
    assert result.exit_code == 0
    assert result.stdout == (
        "name        model       task  source     method         nodes  edges\n"
        "----------  ----------  ----  ---------  -------------  -----  -----\n"
        "nodes-only  pythia-70m  -     published  -              5      -\n"
        "tiny        gpt2        ioi   published  path patching  5      4\n"
    )
    listed = json.loads(run_cli("list", "--json").stdout)
    assert [c["name"] for c in listed] == ["nodes-only", "tiny"]
    assert listed[1]["n_edges"] == 4 and listed[0]["n_edges"] is None
    assert run_cli("list", "--model", "gpt2", "--task", "nope").stdout == "no circuits match\n"


def test_show_prints_the_kept_circuit(seeded: str, run_cli: Callable[..., Result]) -> None:
    result = run_cli("show", "tiny")
    assert result.exit_code == 0
    assert result.stdout == (
        "name         tiny\n"
        "model        gpt2\n"
        "task         ioi\n"
        "source       published\n"
        "method       path patching\n"
        "threshold    0.1\n"
        "citation     Wang et al. 2022\n"
        "nodes        5 kept\n"
        "edges        4 kept of 5 scored\n"
        "performance  logit_diff_recovered=0.87\n"
        "\n"
        "node    kind    score  role        role source\n"
        "------  ------  -----  ----------  -----------\n"
        "embed   embed   -      -           -\n"
        "a0.1    head    0.5    -           -\n"
        "a1.0    head    -1.25  name mover  paper\n"
        "m1      mlp     2      -           -\n"
        "logits  logits  -      -           -\n"
        "\n"
        "edge           score\n"
        "-------------  -----\n"
        "embed->a0.1.v  0.25\n"
        "a0.1->a1.0.q   -0.75\n"
        "a1.0->m1       1.5\n"
        "m1->logits     3\n"
    )


def test_show_json_has_the_documented_fields(seeded: str, run_cli: Callable[..., Result]) -> None:
    shown = json.loads(run_cli("show", "tiny", "--json").stdout)
    assert {"name", "model", "task", "source", "citation", "nodes", "edges"} <= set(shown)
    assert (shown["name"], shown["model"], shown["task"], shown["source"], shown["citation"]) == (
        "tiny", "gpt2", "ioi", "published", "Wang et al. 2022"
    )
    assert [{k: n[k] for k in ("key", "layer", "head", "kind", "score", "role")} for n in shown["nodes"]][2] == {
        "key": "a1.0", "layer": 1, "head": 0, "kind": "head", "score": -1.25, "role": "name mover"
    }
    assert shown["edges"] == [
        {"src": "embed", "dst": "a0.1", "input": "v", "score": 0.25},
        {"src": "a0.1", "dst": "a1.0", "input": "q", "score": -0.75},
        {"src": "a1.0", "dst": "m1", "input": None, "score": 1.5},
        {"src": "m1", "dst": "logits", "input": None, "score": 3.0},
    ]


def test_show_threshold_recuts_stored_scores(seeded: str, run_cli: Callable[..., Result]) -> None:
    shown = json.loads(run_cli("show", "tiny", "--threshold", "0.2", "--json").stdout)
    assert [(e["src"], e["dst"]) for e in shown["edges"]] == [("embed", "a0.1"), ("a0.1", "a1.0"), ("a1.0", "m1"),
                                                              ("m1", "logits")]
    assert [n["key"] for n in shown["nodes"]] == ["embed", "a0.1", "a1.0", "m1", "logits"]
    assert shown["threshold"] == 0.2
    # The one cut rule: at 1, a1.0->m1 and m1->logits pass, but a1.0 then receives nothing, so both dangle.
    assert json.loads(run_cli("show", "tiny", "--threshold", "1", "--json").stdout)["edges"] == []
    refused = run_cli("show", "tiny", "--threshold", "-1")
    assert refused.exit_code != 0 and len(refused.stderr.strip().splitlines()) == 1
    text_lines = run_cli("show", "tiny", "--threshold", "0.001").stdout.splitlines()
    assert "threshold    0.001 (re-cut from stored scores)" in text_lines
    assert "edges        5 kept of 5 scored" in text_lines
    help_text = " ".join(CliRunner().invoke(circuits, ["show", "--help"]).output.split())
    assert "This thresholds the scores already stored; it does not re-run discovery." in help_text


def test_show_threshold_on_a_nodes_only_circuit_is_a_clear_error(seeded: str, run_cli: Callable[..., Result]) -> None:
    result = run_cli("show", "nodes-only", "--threshold", "0.5")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        "Error: circuit 'nodes-only' lists nodes only (no edge scores), so it cannot be re-cut at another "
        "threshold\n"
    )


def test_holds_lists_circuits_with_the_node_and_its_role(seeded: str, run_cli: Callable[..., Result]) -> None:
    assert run_cli("holds", "1.0").stdout == (
        "circuit     model       task  role        role source  score\n"
        "----------  ----------  ----  ----------  -----------  -----\n"
        "nodes-only  pythia-70m  -     name mover  paper        -1.25\n"
        "tiny        gpt2        ioi   name mover  paper        -1.25\n"
    )
    assert run_cli("holds", "9.1").stdout == "no circuit holds 9.1\n"
    assert json.loads(run_cli("holds", "a1.0", "--json").stdout)[1]["circuit"] == "tiny"
    bad = run_cli("holds", "head nine")
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: not a component: 'head nine'")


def test_runs_lists_status_and_error(sqlite_url: str, run_cli: Callable[..., Result]) -> None:
    missing = run_cli("runs")  # a read command never conjures a catalog
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: no catalog at")
    assert "circuits db upgrade" in missing.stderr and not Path(sqlite_url.removeprefix("sqlite:///")).exists()
    engine = connect(sqlite_url)
    assert run_cli("runs").stdout == "no runs in the catalog\n"
    spec = ModelSpec(name="toy", source="local/toy", n_layers=2, n_heads=2, d_model=8)
    with session_scope(engine) as s:
        run = queries.start_run(s, make_config("toy", "digits", "acdc"), spec)
        failed = queries.finish_run(s, run.id, "failed", "RuntimeError: out of memory\ntraceback...")
    engine.dispose()
    started, finished = (t.strftime("%Y-%m-%d %H:%M:%S") for t in (failed.started_at, failed.finished_at))
    assert run_cli("runs").stdout == (
        "id  method  model  task    status  started              finished             circuits  error\n"
        "--  ------  -----  ------  ------  -------------------  -------------------  --------  "
        "---------------------------\n"
        f"1   acdc    toy    digits  failed  {started}  {finished}  -         RuntimeError: out of memory\n"
    )
    listed = json.loads(run_cli("runs", "--json").stdout)
    assert (listed[0]["status"], listed[0]["error"]) == ("failed", "RuntimeError: out of memory\ntraceback...")
    assert run_cli("runs", "--status", "running").stdout == "no running runs\n"


def test_delete_removes_and_then_reports_unknown(seeded: str, run_cli: Callable[..., Result]) -> None:
    assert run_cli("delete", "tiny").stdout == "deleted circuit tiny\n"
    again = run_cli("delete", "tiny")
    assert again.exit_code == 1
    assert again.stderr == "Error: no circuit named 'tiny' in the catalog (see `circuits list`)\n"
    assert [c["name"] for c in json.loads(run_cli("list", "--json").stdout)] == ["nodes-only"]


def test_db_upgrade_and_current(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    head = head_revision()
    assert run_cli("db", "current", db=url).stdout == (
        f"database  {url}\nrevision  -\nhead      {head}\nstatus    empty\n"
    )
    assert run_cli("db", "upgrade", db=url).stdout == f"upgraded {url}: (empty) -> {head}\n"
    assert run_cli("db", "upgrade", db=url).stdout == f"{url} is already at {head} (head)\n"
    assert json.loads(run_cli("db", "current", "--json", db=url).stdout) == {
        "database": url, "revision": head, "head": head, "status": "current"
    }


def _one_line_failure(result: Result) -> str:
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    return result.stderr


def test_unknown_circuit_is_one_line(seeded: str, run_cli: Callable[..., Result]) -> None:
    err = _one_line_failure(run_cli("show", "nope"))
    assert err == "Error: no circuit named 'nope' in the catalog (see `circuits list`)\n"


@pytest.mark.parametrize("url", ["mysql+nodriver://x/y", "sqlite:", "postgresql+psycopg://postgres@127.0.0.1:1/x"])
def test_bad_urls_are_one_line(url: str, run_cli: Callable[..., Result]) -> None:
    for args in (["list"], ["show", "tiny"], ["db", "current"], ["db", "upgrade"], ["delete", "tiny"]):
        _one_line_failure(run_cli(*args, db=url))


def test_a_file_that_is_not_a_database_is_one_line_and_unchanged(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"definitely not sqlite" * 50)
    for args in (["list"], ["delete", "x"], ["db", "upgrade"], ["db", "current"]):
        err = _one_line_failure(run_cli(*args, db=str(path)))
        assert "file is not a database" in err
    assert path.read_bytes() == b"definitely not sqlite" * 50


def test_a_too_new_schema_is_one_line_and_unchanged(
    seeded: str, run_cli: Callable[..., Result], fingerprint: Callable[[str], Any]
) -> None:
    raw = create_engine(to_url(seeded))
    with raw.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099_future'"))
    raw.dispose()
    before = fingerprint(seeded)
    for args in (["list"], ["delete", "tiny"], ["db", "upgrade"]):
        err = _one_line_failure(run_cli(*args))
        assert "0099_future" in err and "the code is older than the database" in err
    assert fingerprint(seeded) == before
    current = run_cli("db", "current")
    assert current.exit_code == 0 and current.stdout.endswith("status    newer\n")


def test_an_older_schema_is_one_line_unchanged_and_upgradable(
    seeded: str,
    run_cli: Callable[..., Result],
    fingerprint: Callable[[str], Any],
    newer_code: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = head_revision()
    monkeypatch.setattr(db, "MIGRATIONS_DIR", str(newer_code))  # the code moved on to 0002_test_extra
    before = fingerprint(seeded)
    for args in (["list"], ["show", "tiny"], ["delete", "tiny"]):
        err = _one_line_failure(run_cli(*args))
        assert err == (
            f"Error: the catalog at {seeded} has schema {old}, older than this code's 0002_test_extra: "
            f"run `circuits db upgrade --db {seeded}`\n"
        )
    assert fingerprint(seeded) == before
    upgraded = run_cli("db", "upgrade")
    assert upgraded.stdout == f"upgraded {seeded}: {old} -> 0002_test_extra\n"
    assert run_cli("show", "tiny", "--json").exit_code == 0


def test_an_unversioned_schema_is_one_line_and_unchanged(
    tmp_path: Path, run_cli: Callable[..., Result], fingerprint: Callable[[str], Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    raw = create_engine(to_url(url))
    Base.metadata.create_all(raw)  # catalog tables with no recorded version: older than versioning
    raw.dispose()
    before = fingerprint(url)
    for args in (["list"], ["show", "tiny"], ["delete", "tiny"], ["db", "upgrade"]):
        err = _one_line_failure(run_cli(*args, db=url))
        assert "no catalog schema version" in err
    assert fingerprint(url) == before
