"""Covers: the `circuits tasks` and `circuits toy` commands: listings, JSON, export/show round trip, one-line errors, help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli


def run(*args: str) -> tuple[int, str]:
    """Exit code and stdout (stderr carries progress notes); on failure stdout and stderr together."""
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_tasks_list() -> None:
    code, out = run("tasks", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows][:3] == ["digits", "numwords", "months"]
    assert {r["name"]: r["metric"] for r in rows}["greater-than"] == "prob-diff"
    code, out = run("tasks", "list")
    assert code == 0 and "random, repeat-all, random-some, shuffled" in out


def test_show_export_and_show_file(tmp_path: Path) -> None:
    code, out = run("tasks", "show", "digits", "--model", "toy", "--n", "2", "--seed", "5", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["seq_len"] == 23 and len(shown["prompts"]) == 2  # Lan et al.'s template, no BOS
    assert shown["prompts"][0]["clean_tokens"][1:4] == ["done", "in", "1"] and shown["filter"] == "lan2023"
    code, out = run("tasks", "show", "digits-list", "--model", "toy", "--n", "2", "--json")
    assert code == 0 and json.loads(out)["prompts"][0]["clean_tokens"][0] == "<bos>"
    path = tmp_path / "d.jsonl"
    code, _ = run("tasks", "export", "digits", "--model", "toy", "--n", "2", "--seed", "5", "-o", str(path))
    assert code == 0 and len(path.read_text().splitlines()) == 2
    code, out = run("tasks", "show", f"file:{path}", "--model", "toy", "--n", "2", "--json")
    assert code == 0 and json.loads(out)["content_hash"] == shown["content_hash"]
    code, out = run("tasks", "show", "greater-than", "--model", "toy", "--n", "1")
    assert code == 0 and "corrupted: The" in out and "in all)" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["tasks", "show", "nope", "--model", "toy"], "unknown task 'nope'"),
        (["tasks", "show", "digits", "--model", "toy", "--corruption", "abc"], "no corruption 'abc'"),
        (["tasks", "show", "digits", "--model", "/nonexistent/folder"], "no model folder at /nonexistent/folder"),
        (["tasks", "show", "file:/nonexistent.jsonl", "--model", "toy"], "no prompts file"),
    ],
)
def test_errors_are_one_line(args: list[str], message: str) -> None:
    code, out = run(*args)
    assert code == 1 and message in out and len(out.strip().splitlines()) == 1, out


def test_toy_eval_json() -> None:
    code, out = run("toy", "eval", "--json", "--n", "40")
    assert code == 0, out
    report = json.loads(out)
    assert set(report["tasks"]) >= {"digits", "ioi", "greater-than"}
    assert [c["check"] for c in report["context"]] == ["steps +1/+2/-1", "ioi (IO vs S)"]


def test_model_folder_and_uncached_hub_name() -> None:
    from discovery.errors import ModelNotAvailable
    from discovery.tasks import load_tokenizer
    from discovery.toy import model_dir

    code, out = run("tasks", "show", "months-list", "--model", str(model_dir()), "--n", "1", "--json")
    assert code == 0 and json.loads(out)["seq_len"] == 5
    with pytest.raises(ModelNotAvailable, match="not in the local Hugging Face cache"):
        load_tokenizer("no-such-org/no-such-model")
