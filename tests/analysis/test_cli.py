"""Covers: `circuits role set/list` (who set a role and why; bad input is one line, exit 1, DB unchanged) and `circuits analyze` end to end on the shipped toy model (figures, roles, plots, show and holds)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from catalog import queries
from catalog.db import connect, session_scope
from catalog.records import NewCircuit, NodeRecord
from cli import analyze_cmds
from cli.main import cli as circuits

torch.set_num_threads(1)

NODES = ("embed", "a0.0", "a0.2", "m0", "logits")


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    engine = connect(url)
    with session_scope(engine) as s:
        queries.save_circuit(s, NewCircuit(name="toy-digits", model="toy", task="digits-list", source="discovered",
                                           nodes=tuple(NodeRecord.from_key(k) for k in NODES)))
    engine.dispose()
    return url


@pytest.fixture
def run_cli(db: str) -> Callable[..., Result]:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(circuits, [*args, "--db", db], catch_exceptions=False)

    return invoke


def _stored(db: str) -> dict:
    engine = connect(db)
    with session_scope(engine, read_only=True) as s:
        record = queries.get_circuit(s, "toy-digits")
    engine.dispose()
    return {"nodes": [n.__dict__ for n in record.nodes], "metadata": dict(record.metadata)}


def test_commands_have_help_with_an_example() -> None:
    for args in (["analyze"], ["role"], ["role", "set"], ["role", "list"]):
        result = CliRunner().invoke(circuits, [*args, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output and f"circuits {args[0]}" in result.output


def test_role_set_keeps_who_and_why_and_list_shows_it(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli("role", "set", "toy-digits", "0.2", "previous-token", "--note", "attends q-1", "--by", "ana")
    assert result.exit_code == 0 and result.stdout == "toy-digits a0.2: previous-token (set by user:ana)\n"
    monkeypatch.setattr(analyze_cmds.getpass, "getuser", lambda: "tester")
    run_cli("role", "set", "toy-digits", "m0", "lookup table", "--score", "0.7")
    listed = {r["node"]: r for r in json.loads(run_cli("role", "list", "toy-digits", "--json").stdout)}
    assert listed["a0.2"] | {} == {"node": "a0.2", "role": "previous-token", "score": None, "source": "user:ana",
                                   "note": "attends q-1", "analysis_role": None, "analysis_score": None}
    assert (listed["m0"]["role"], listed["m0"]["source"], listed["m0"]["score"]) == ("lookup table", "user:tester", 0.7)
    assert set(listed) == {"a0.0", "a0.2", "m0"}  # heads and MLPs only
    table = run_cli("role", "list", "toy-digits").stdout.splitlines()
    assert table[0].split() == ["node", "role", "score", "set", "by", "analysis", "says", "note"]
    assert table[3].split()[:3] == ["a0.2", "previous-token", "-"]


@pytest.mark.parametrize("args, message", [
    (["role", "set", "no-such", "0.2", "copy"], "Error: no circuit named 'no-such' in the catalog"),
    (["role", "set", "toy-digits", "3.3", "copy"], "Error: a3.3 is not a node of circuit 'toy-digits'"),
    (["role", "set", "toy-digits", "head nine", "copy"], "Error: not a component: 'head nine'"),
    (["role", "list", "no-such"], "Error: no circuit named 'no-such' in the catalog"),
    (["analyze", "no-such"], "Error: no circuit named 'no-such' in the catalog"),
])
def test_bad_input_is_one_line_exit_1_and_changes_nothing(db: str, run_cli, args: list[str], message: str) -> None:
    before = _stored(db)
    result = run_cli(*args)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert _stored(db) == before


def test_analyze_stores_figures_and_roles_and_writes_plots(db: str, run_cli, tmp_path: Path) -> None:
    run_cli("role", "set", "toy-digits", "0.2", "previous-token", "--by", "ana", "--note", "by eye")
    plots = tmp_path / "figs"
    result = run_cli("analyze", "toy-digits", "--n-prompts", "4", "--token-sets", "digits,months",
                     "--plots", str(plots), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["nodes"]) == {"embed", "a0.0", "a0.2", "m0"}
    assert out["token_sets"]["digits"]["n"] == 100 and out["token_sets"]["months"]["n"] == 12
    assert out["logit_lens"]["layers"][-1] == "after L3" and len(out["logit_lens"]["positions"]) == 5

    record = _stored(db)
    nodes = {n["key"]: n for n in record["nodes"]}
    a00 = nodes["a0.0"]["attributes"]
    assert {"attention", "ov", "dla", "roles"} <= set(a00)
    assert a00["attention"]["settings"]["task"] == "digits-list" and a00["attention"]["settings"]["n_prompts"] == 4
    assert a00["ov"]["settings"]["tokens"]["months"][0] == "January"
    assert sum(a00["attention"]["shares"].values()) == pytest.approx(1.0, abs=1e-3)
    assert nodes["a0.0"]["role_source"] == "analysis" and nodes["a0.0"]["role_note"]
    assert (nodes["a0.2"]["role"], nodes["a0.2"]["role_source"]) == ("previous-token", "user:ana")  # kept
    assert "role" in nodes["a0.2"]["attributes"]["roles"]  # the analysis' own label is kept beside it
    assert (nodes["m0"]["role"], nodes["m0"]["role_source"]) == ("boosting", "analysis")
    assert nodes["m0"]["role_score"] == pytest.approx(nodes["m0"]["attributes"]["dla"]["share"], abs=1e-4)
    analyses = record["metadata"]["analyses"]
    assert analyses["logit-lens"]["settings"]["model"] == "toy" and "heads_and_mlps" in analyses["dla"]

    files = sorted(p.name for p in plots.iterdir())
    assert "toy-digits-attention-a0.0.png" in files and "toy-digits-logit-lens.pdf" in files
    assert all((plots / f).stat().st_size > 1000 for f in files)

    shown = run_cli("show", "toy-digits").stdout
    assert "role score" in shown and "boosting" in shown
    holds = run_cli("holds", "m0").stdout.splitlines()
    assert holds[0].split()[:6] == ["circuit", "model", "task", "role", "role", "score"]
    assert holds[2].split()[:4] == ["toy-digits", "toy", "digits-list", "boosting"]


def test_analyze_needs_a_task_when_the_circuit_has_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = connect(url)
    with session_scope(engine) as s:
        queries.save_circuit(s, NewCircuit(name="taskless", model="toy", task=None, source="published",
                                           nodes=(NodeRecord.from_key("a0.1"),)))
    engine.dispose()
    result = CliRunner().invoke(circuits, ["analyze", "taskless", "--what", "dla", "--db", url])
    assert result.exit_code == 1 and "pass --task" in result.stderr
    bad = CliRunner().invoke(circuits, ["analyze", "taskless", "--what", "attention,vibes", "--db", url])
    assert bad.exit_code == 2 and "--what" in bad.stderr


def test_plots_leave_no_pyplot_state(tmp_path: Path) -> None:
    from discovery.analysis.logit_lens import LogitLensResult
    from discovery.analysis.plots import write_plots

    had_pyplot = "matplotlib.pyplot" in sys.modules
    before = sys.modules["matplotlib.pyplot"].get_fignums() if had_pyplot else None
    lens = LogitLensResult(layers=["embed", "after L0"], positions=["0:a", "1:b"], targets=["b", "c"],
                           accuracy=[[0, 0], [1, 0]], target_prob=[[0.1, 0.2], [0.9, 0.3]],
                           target_rank=[[3, 2], [0, 1]], top_token=[["x", "y"], ["b", "y"]], n_prompts=2)
    paths = write_plots(tmp_path, lens=lens)
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    if had_pyplot:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == before
    else:
        assert "matplotlib.pyplot" not in sys.modules
