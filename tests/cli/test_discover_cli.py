"""Covers: `circuits models`, `discover`, `evaluate` and `demo` end to end on the shipped toy model, via CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from discovery.errors import SettingsError


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'c.db'}"


def run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def discover(db: str, *args: str) -> object:
    return run("discover", "--model", "toy", "--n-prompts", "8", "--db", db, *args)


def runs(db: str) -> list[dict]:
    return json.loads(run("runs", "--db", db, "--json").stdout)


def test_models_commands() -> None:
    assert Path(run("models", "path", "toy").stdout.strip(), "config.json").is_file()
    rows = json.loads(run("models", "list", "--json").stdout)
    assert any(r["name"] == "toy" and r["available"] for r in rows)


@pytest.mark.parametrize("method,extra", [
    ("acdc", ["--threshold", "0.05"]),
    ("node-pruning", ["--thresholds", "0.7,0.8"]),
    ("eap", ["--top-k", "12"]),
    ("eap-ig", ["--target", "0.5", "--ig-steps", "2"]),
    ("path-patching", ["--threshold", "0.1"]),
])
def test_every_method_discovers_and_saves_a_circuit(db: str, method: str, extra: list[str]) -> None:
    result = discover(db, "--task", "digits", "--method", method, "--name", "c", "--json", *extra)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["name"] == "c" and summary["method"] == method and summary["nodes"]
    shown = json.loads(run("show", "c", "--db", db, "--json").stdout)
    assert shown["model"] == "toy" and shown["task"] == "digits"
    [record] = runs(db)
    assert record["status"] == "succeeded" and record["settings"]["n_prompts"] == 8


def test_the_same_command_and_seed_give_the_same_circuit(db: str) -> None:
    for name in ("first", "second"):
        assert discover(db, "--task", "months", "--method", "acdc", "--seed", "3", "--name", name).exit_code == 0
    first, second = (json.loads(run("show", n, "--db", db, "--json").stdout) for n in ("first", "second"))
    assert first["edges"] == second["edges"] and first["nodes"] == second["nodes"]


@pytest.mark.parametrize("failure", [SettingsError("no such setting"), RuntimeError("CUDA out of memory")])
def test_a_run_that_fails_halfway_is_recorded_with_its_error(db: str, monkeypatch: pytest.MonkeyPatch,
                                                              failure: Exception) -> None:
    import discovery.methods.acdc

    def crash(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(discovery.methods.acdc, "acdc", crash)
    result = CliRunner().invoke(cli, ["discover", "--model", "toy", "--task", "digits", "--method", "acdc",
                                      "--n-prompts", "8", "--db", db])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and str(failure) in result.stderr
    [record] = runs(db)
    assert record["status"] == "failed" and str(failure) in record["error"]
    assert json.loads(run("list", "--db", db, "--json").stdout) == []


def test_eap_without_a_selection_keeps_80_percent(db: str) -> None:
    result = discover(db, "--task", "digits", "--method", "eap", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["performance"]["kept_fraction"] >= 0.8


def test_an_interrupted_run_is_recorded(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import discovery.run

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(discovery.run, "discover", interrupt)
    result = CliRunner().invoke(cli, ["discover", "--model", "toy", "--task", "digits", "--method", "acdc",
                                      "--db", db])
    assert result.exit_code == 130
    [record] = runs(db)
    assert record["status"] == "interrupted"


@pytest.mark.parametrize("args,message", [
    (["--task", "no-such-task", "--method", "acdc"], "unknown task"),
    (["--task", "digits", "--method", "acdc", "--model", "gpt2"], "not in the local Hugging Face cache"),
    (["--task", "digits", "--method", "acdc", "--corruption", "nonsense"], "corruption"),
])
def test_bad_input_is_one_line_and_records_no_run(db: str, args: list[str], message: str,
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    result = CliRunner().invoke(cli, ["discover", "--n-prompts", "8", "--db", db, *args])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not Path(db.removeprefix("sqlite:///")).exists()  # refused before anything: not even a catalog made


def test_a_taken_name_is_refused_before_any_work(db: str) -> None:
    assert discover(db, "--task", "digits", "--method", "acdc", "--name", "x").exit_code == 0
    again = discover(db, "--task", "digits", "--method", "acdc", "--name", "x")
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert len(runs(db)) == 1


def test_evaluate_reports_faithfulness_random_baselines_and_the_curve(db: str, tmp_path: Path) -> None:
    assert discover(db, "--task", "digits", "--method", "acdc", "--name", "d").exit_code == 0
    assert discover(db, "--task", "months", "--method", "acdc", "--name", "m").exit_code == 0
    plot = tmp_path / "curve.png"
    result = run("evaluate", "d", "--n-prompts", "8", "--random", "3", "--ablate-shared-with", "m", "--curve",
                 "--plot", str(plot), "--db", db, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    [row] = report["circuits"]
    assert row["name"] == "d" and row["level"] == "edges" and 0 <= row["accuracy"] <= 1
    assert row["random"]["n"] == 3 and "lost" in row["ablate_shared_with"]
    curve = report["curves"]["d"]
    for ranking in ("signed", "absolute"):
        assert curve[ranking]["faithfulness"][-1] == pytest.approx(1.0, abs=1e-4)
    assert curve["ranking"] == "mib" and "cpr" in curve and "MIB's rules" in curve["rule"]
    assert report["ablation"] == "patch" and report["defaults_from"] == "its run"
    assert plot.stat().st_size > 0


def test_evaluate_refuses_a_circuit_of_another_model_in_one_line(db: str) -> None:
    run("reference", "import", "ioi-wang2022", "--db", db)
    result = CliRunner().invoke(cli, ["evaluate", "ioi-wang2022", "--model", "toy", "--task", "ioi", "--n-prompts",
                                      "8", "--db", db])
    assert result.exit_code == 1 and "does not fit this model" in result.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end(db: str, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run("demo", "--n-prompts", "8", "--out", str(out), "--db", db)
    assert result.exit_code == 0, result.output
    assert "which heads and MLPs do the toy model's tasks share?" in result.stdout
    names = {c["name"] for c in json.loads(run("list", "--db", db, "--json").stdout)}
    assert {"toy-digits-acdc", "toy-ioi-acdc", "ioi-wang2022", "digits-lan2023"} <= names
    assert len(list(out.iterdir())) == 9
    again = run("demo", "--n-prompts", "8", "--out", str(out), "--db", db)
    assert again.exit_code == 0 and "already in the catalog" in again.stdout


def test_ablation_at_chosen_positions_is_recorded(db: str) -> None:
    result = discover(db, "--task", "digits", "--method", "acdc", "--positions=-1", "--name", "p")
    assert result.exit_code == 0, result.output
    [record] = runs(db)
    assert record["settings"]["positions"] == [-1]
    bad = CliRunner().invoke(cli, ["discover", "--task", "digits", "--method", "acdc", "--positions", "x",
                                   "--db", db])
    assert bad.exit_code == 1 and "--positions: expected a whole number" in bad.stderr
    assert len(runs(db)) == 1  # refused before any run was recorded


def test_a_discovered_circuit_exports_to_eap_ig_and_back(db: str, tmp_path: Path) -> None:
    assert discover(db, "--task", "digits", "--method", "acdc", "--name", "d").exit_code == 0
    out = tmp_path / "d.json"
    assert run("export", "d", "--to", "eap-ig", "-o", str(out), "--db", db).exit_code == 0
    data = json.loads(out.read_text())
    assert data["cfg"]["n_layers"] == 4 and len(data["edges"]) == 479
    native = tmp_path / "d-native.json"
    assert run("export", "d", "-o", str(native), "--db", db).exit_code == 0
    assert len(json.loads(native.read_text())["edges"]) == 479  # every scored edge, kept or not
    back = run("import", str(out), "--from", "eap-ig", "--name", "d2", "--model", "toy", "--db", db)
    assert back.exit_code == 0, back.output
    first, second = (json.loads(run("show", n, "--db", db, "--json").stdout) for n in ("d", "d2"))
    assert [(e["src"], e["dst"], e["input"]) for e in first["edges"]] == \
        [(e["src"], e["dst"], e["input"]) for e in second["edges"]]
