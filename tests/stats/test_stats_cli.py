"""Covers: `circuits evaluate` keeping and reusing its measurements (on both backends), `evaluations`, `transfer`
(matrix rows and columns, reuse, --lan without GPT-2), `stability` on the toy model (group, reuse, report-only),
`overlap --null random`, `dissociation`, and figures written before anything is kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from catalog.api import Catalog
from cli.main import cli
from discovery.errors import OutputError
from tests.stats.builders import nodes_circuit

TOY = {"model_shape": {"n_layers": 4, "n_heads": 4, "d_model": 128}}
N = ["--n-prompts", "8"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def save(db: str, *circuits: Any) -> None:
    with Catalog(db) as catalog, catalog.session() as session:
        from catalog.queries import save_circuit

        for circuit in circuits:
            save_circuit(session, circuit)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'c.db'}"


@pytest.fixture
def two(sqlite_db: str) -> str:
    """A catalog with a digits circuit and a months circuit of the toy model (nodes only)."""
    save(sqlite_db, nodes_circuit("d", ["a0.1", "a0.2", "m0", "a1.1", "m2"], metadata=TOY),
         nodes_circuit("m", ["a0.1", "a0.3", "m0", "a2.0", "m3"], task="months", metadata=TOY))
    return sqlite_db


class NoLoad:
    """Stands in for the model loader: counts calls and refuses them, proving nothing was loaded."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise AssertionError("the model was loaded")


def test_evaluate_keeps_its_figures_and_reads_them_back(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    save(db_url, nodes_circuit("d", ["a0.1", "m0", "a1.1"], metadata=TOY))
    first = as_json(run("evaluate", "d", *N, "--random", "3", "--db", db_url, "--json"))
    assert first["measured"] == 2 and first["reused"] == 0 and first["circuits"][0]["reused"] is False
    row = first["circuits"][0]
    assert row["n_prompts"] == 8 and row["value_sem"] > 0 and row["value_std"] > 0
    loader = NoLoad()
    monkeypatch.setattr("discovery.models.load_model", loader)
    again = run("evaluate", "d", *N, "--random", "3", "--db", db_url, "--json")
    second = as_json(again)
    assert loader.calls == 0 and second["measured"] == 0 and second["reused"] == 2
    assert second["circuits"][0]["reused"] is True and "reused 2 of 2" in again.stderr
    for key in ("value", "kept_fraction", "faithfulness", "kl", "accuracy"):
        assert second["circuits"][0][key] == first["circuits"][0][key]
    assert second["circuits"][0]["random"] == first["circuits"][0]["random"]
    assert second["prompts"] == first["prompts"]
    kept = as_json(run("evaluations", "d", "--db", db_url, "--json"))
    assert sorted(e["settings"]["kind"] for e in kept) == ["circuit", "random"]
    assert all(e["model"] == "toy" and e["task"] == "digits" and len(e["eval_key"]) == 64 for e in kept)
    table = run("evaluations", "--db", db_url)
    assert table.exit_code == 0 and "beats" in table.stdout and "faithfulness" in table.stdout
    fresh = run("evaluate", "d", *N, "--random", "3", "--fresh", "--db", db_url)  # --fresh measures again
    assert fresh.exit_code == 1 and "the model was loaded" in fresh.stderr and loader.calls == 1
    other = run("evaluate", "d", "--n-prompts", "9", "--db", db_url)  # another question: measured, so loaded
    assert other.exit_code != 0 and loader.calls == 2


def test_transfer_matrix_rows_columns_and_reuse(two: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    as_json(run("evaluate", "d", *N, "--db", two, "--json"))  # one cell measured beforehand
    plot = tmp_path / "transfer.png"
    result = run("transfer", "d", "m", "--tasks", "digits,months", *N, "--plot", str(plot), "--db", two, "--json")
    report = as_json(result)
    assert report["measured"] == 3 and report["reused"] == 1 and plot.stat().st_size > 0
    assert report["tasks"] == ["digits", "months"] and report["home"] == {"d": "digits", "m": "months"}
    for measure in ("faithfulness", "kept_fraction"):
        assert list(report[measure]) == ["full model", "empty circuit", "d", "m"]
        assert report[measure]["full model"] == [1.0, 1.0]
    assert report["faithfulness"]["empty circuit"] == [0.0, 0.0]
    for task in ("digits", "months"):
        empty = report["empty"][task] / report["model"][task]
        assert report["kept_fraction"]["empty circuit"][report["tasks"].index(task)] == pytest.approx(empty)
        assert report["metrics"][task] == "logit-diff"
    assert report["cells"]["d"]["digits"]["reused"] is True and report["cells"]["m"]["digits"]["reused"] is False
    assert report["ablation"] == "patch" and report["level"] == "each circuit's own"
    monkeypatch.setattr("discovery.models.load_model", NoLoad())
    again = as_json(run("transfer", "d", "m", "--tasks", "digits,months", *N, "--db", two, "--json"))
    assert again["measured"] == 0 and again["faithfulness"] == report["faithfulness"]
    text = run("transfer", "d", "m", "--tasks", "digits,months", *N, "--db", two)
    assert "full model" in text.stdout and "0.000" in text.stdout and "*" in text.stdout


def test_lan_transfer_without_gpt2_fails_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    for args in (["transfer", "--lan"], ["transfer", "digits-lan2023", "numwords-lan2023", "months-lan2023",
                                         "--tasks", "digits,numwords,months", "--model", "gpt2"]):
        result = CliRunner().invoke(cli, [*args, "--db", f"sqlite:///{db}"])
        assert result.exit_code == 1 and "not in the local Hugging Face cache" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not db.exists()


def test_a_figure_that_cannot_be_written_keeps_nothing(two: str, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise OutputError("cannot write transfer.png: disk full")

    monkeypatch.setattr("catalog.figures.plot_transfer", fail)
    result = CliRunner().invoke(cli, ["transfer", "d", *N, "--plot", str(tmp_path / "t.png"), "--db", two])
    assert result.exit_code == 1 and "disk full" in result.stderr
    assert as_json(run("evaluations", "--db", two, "--json")) == []
    bad = CliRunner().invoke(cli, ["transfer", "d", "--plot", str(tmp_path / "t.txt"), "--db", two])
    assert bad.exit_code == 2 and ".png, .pdf or .svg" in bad.stderr
    missing = CliRunner().invoke(cli, ["evaluate", "d", "--curve", "--plot", str(tmp_path / "no" / "c.png"),
                                       "--db", two])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_overlap_null_and_its_corrections(two: str, tmp_path: Path) -> None:
    save(two, nodes_circuit("d2", ["a0.1", "a0.2", "m0", "a1.1", "m2"], metadata=TOY))
    plot = tmp_path / "overlap.pdf"
    report = as_json(run("overlap", "d", "m", "d2", "--null", "random", "--samples", "300", "--correction", "bh",
                         "--plot", str(plot), "--db", two, "--json"))
    tests = {(t["a"], t["b"]): t for t in report["significance"]}
    assert set(tests) == {("d", "m"), ("d", "d2"), ("m", "d2")} and plot.stat().st_size > 0
    same = tests[("d", "d2")]
    assert same["observed"] == 5 and same["jaccard"] == 1.0 and same["p_value"] < 0.05
    assert same["correction"] == "bh" and "Benjamini-Hochberg" in same["correction_name"]
    assert same["exact_p"] == pytest.approx(1 / (560 * 6), rel=1e-6)  # 3 of 16 heads alike: 1/C(16,3); 2 of 4 MLPs: 1/6
    text = run("overlap", "d", "m", "--null", "random", "--samples", "100", "--db", two)
    assert "Holm-Bonferroni" in text.stdout and "(k+1)/(n+1)" in text.stdout
    lone = CliRunner().invoke(cli, ["overlap", "d", "m", "--samples", "10", "--db", two])
    assert lone.exit_code == 2 and "go with --null random" in lone.stderr


def test_dissociation_lesions_the_full_model_on_both_tasks(two: str, monkeypatch: pytest.MonkeyPatch) -> None:
    report = as_json(run("dissociation", "d", "m", *N, "--hurt", "0.2", "--db", two, "--json"))
    [pair] = report["pairs"]
    assert (pair["a"], pair["b"], pair["task_a"], pair["task_b"]) == ("d", "m", "digits", "months")
    assert pair["on_a"]["shared"]["removed"] == ["a0.1", "m0"] == pair["on_b"]["shared"]["removed"]
    assert pair["on_a"]["only_a"]["removed"] == ["a0.2", "a1.1", "m2"]
    assert pair["on_b"]["only_b"]["removed"] == ["a0.3", "a2.0", "m3"]
    for side in ("on_a", "on_b"):
        for row in pair[side].values():
            assert row["damage"] == pytest.approx(1 - row["performance"])
    v = pair["verdict"]
    assert v["hurt"] == 0.2 and v["double_dissociation"] == (v["only_a_hurts_only_a"] and v["only_b_hurts_only_b"])
    monkeypatch.setattr("discovery.models.load_model", NoLoad())
    again = as_json(run("dissociation", "d", "m", *N, "--hurt", "0.2", "--db", two, "--json"))
    assert again["pairs"][0]["on_a"] == pair["on_a"]


def test_stability_runs_a_group_reuses_it_and_reports_it(sqlite_db: str, tmp_path: Path) -> None:
    args = ["stability", "--model", "toy", "--task", "digits", "--method", "eap", "--top-k", "12", *N,
            "--resamples", "3", "--db", sqlite_db]
    plot = tmp_path / "stability.png"
    report = as_json(run(*args, "--plot", str(plot), "--json"))
    group = "toy-digits-eap-stability-prompts"
    assert report["group"] == group and report["n"] == 3 and report["level"] == "edges" and plot.stat().st_size > 0
    assert [r["name"] for r in report["runs"]] == [f"{group}-00{i}" for i in (1, 2, 3)]
    assert [r["resample"] for r in report["runs"]] == [1, 2, 3] and len(report["jaccards"]) == 3
    assert report["bar"]["jaccard"] == 0.8 and report["verdict"] in ("unstable", "too-few-resamples")
    assert all(0 < f <= 1 for f in report["node_frequency"].values())
    runs = as_json(run("runs", "--db", sqlite_db, "--json"))
    assert [r["settings"]["resample"] for r in runs] == [1, 2, 3]
    assert len({r["dataset_hash"] for r in runs}) == 3  # three different resamples of the same 8 prompts
    more = run(*args[:-4], "--resamples", "4", "--db", sqlite_db, "--json")
    assert as_json(more)["n"] == 4 and "reused 3 of 4 runs" in more.stderr
    assert len(as_json(run("runs", "--db", sqlite_db, "--json"))) == 4
    stored = as_json(run("stability", "--group", group, "--db", sqlite_db, "--json"))
    assert stored["n"] == 4 and stored["jaccards"] == as_json(more)["jaccards"]
    text = run("stability", "--group", group, "--db", sqlite_db)
    assert "verdict: " in text.stdout and "Méloux" in text.stdout
    clash = CliRunner().invoke(cli, [*args[:-4], "--resamples", "2", "--seed", "1", "--db", sqlite_db])
    assert clash.exit_code == 1 and "other settings" in clash.stderr
    nothing = CliRunner().invoke(cli, ["stability", "--group", "none", "--db", sqlite_db])
    assert nothing.exit_code == 1 and "no circuit is in the group" in nothing.stderr


def test_evaluate_on_a_catalog_that_cannot_keep_still_reports(sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog.errors import BadDatabase

    save(sqlite_db, nodes_circuit("d", ["a0.1", "m0", "a1.1"], metadata=TOY))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise BadDatabase("attempt to write a readonly database")

    monkeypatch.setattr("catalog.queries.save_evaluation", refuse)
    result = run("evaluate", "d", *N, "--db", sqlite_db, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["circuits"][0]["value"] is not None
    assert "1 measurements were not kept in the catalog (attempt to write a readonly database)" in result.stderr
    assert as_json(run("evaluations", "--db", sqlite_db, "--json")) == []
