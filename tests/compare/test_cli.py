"""Covers: the overlap, diff, render, export, import and reference commands end to end on a temporary SQLite catalog."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from catalog.interchange import export_circuit
from catalog.reference import list_references, load_reference
from catalog.render import to_dot
from cli.main import cli
from tests.compare.builders import make_circuit


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", db], catch_exceptions=False)


def rows(db: str) -> dict[str, int]:
    """Row counts of every table: what a refused command must leave as it was."""
    path = db.removeprefix("sqlite:///")
    if not Path(path).exists():
        return {}
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


@pytest.fixture
def seeded(db: str) -> str:
    assert run(db, "reference", "import").exit_code == 0
    return db


def native_file(write_json: Callable[[str, Any], Path], circuit: Any) -> Path:
    return write_json(f"{circuit.name}.json", export_circuit(circuit))


# ---------------------------------------------------------------------------------------------------------
# reference


def test_reference_list_table_and_json(db: str) -> None:
    assert run(db, "reference", "import", "ioi-wang2022").exit_code == 0
    result = run(db, "reference", "list")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:5] == [
        "name                    task          heads  MLPs  edges    imported  source",
        "----------------------  ------------  -----  ----  -------  --------  "
        "-----------------------------------------------------",
        "digits-lan2023          digits        14     11    unknown  no        Lan, Torr, Barez (2023)",
        "greater-than-hanna2023  greater-than  9      12    235      no        Hanna, Liu, Variengien (2023)",
        "ioi-wang2022            ioi           26     12    963      yes       "
        "Wang, Variengien, Conmy, Shlegeris, Steinhardt (2022)",
    ]
    listed = json.loads(run(db, "reference", "list", "--json").stdout)
    assert [r["name"] for r in listed][:3] == ["digits-lan2023", "greater-than-hanna2023", "ioi-wang2022"]
    assert listed[2]["edges_known"] is True and listed[2]["n_heads"] == 26 and listed[2]["imported"] is True


def test_reference_list_works_without_a_readable_catalog(tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    result = run(str(broken), "reference", "list", "--json")
    assert result.exit_code == 0
    assert {r["imported"] for r in json.loads(result.stdout)} == {None}
    assert result.stderr.startswith("note: cannot read the catalog (")


def test_reference_import_all_then_skip(db: str) -> None:
    first = run(db, "reference", "import")
    assert first.exit_code == 0
    assert first.stdout.splitlines() == [
        "imported digits-lan2023: 14 heads, 11 MLPs, edges unknown",
        "imported greater-than-hanna2023: 9 heads, 12 MLPs, 235 edges",
        "imported ioi-wang2022: 26 heads, 12 MLPs, 963 edges",
        "imported months-lan2023: 13 heads, 10 MLPs, edges unknown",
        "imported numwords-lan2023: 19 heads, 12 MLPs, edges unknown",
        "imported successor-gould2023: 1 head, 0 MLPs, edges unknown",
    ]
    before = rows(db)
    again = run(db, "reference", "import", "ioi-wang2022")
    assert again.exit_code == 0 and again.stdout == ""
    assert again.stderr == "skipped ioi-wang2022: already in the catalog\n"
    assert rows(db) == before


def test_reference_import_of_an_unknown_name_changes_nothing(seeded: str) -> None:
    before = rows(seeded)
    result = run(seeded, "reference", "import", "months-lan2023", "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no reference circuit 'nope' (known: digits-lan2023, ")
    assert rows(seeded) == before


# ---------------------------------------------------------------------------------------------------------
# overlap and diff


def test_overlap_table_of_the_lan_circuits(seeded: str) -> None:
    result = run(seeded, "overlap", "digits-lan2023", "numwords-lan2023", "months-lan2023", "--kind", "head")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:8] == [
        "compared heads of 3 circuits",
        "shared by all (8): a0.1 a4.4 a6.1 a6.6 a6.10 a7.11 a8.8 a9.1",
        "",
        "jaccard           digits-lan2023  numwords-lan2023  months-lan2023",
        "----------------  --------------  ----------------  --------------",
        "digits-lan2023    1.000 (14/14)   0.650 (13/20)     0.421 (8/19)",
        "numwords-lan2023  0.650 (13/20)   1.000 (19/19)     0.391 (9/23)",
        "months-lan2023    0.421 (8/19)    0.391 (9/23)      1.000 (13/13)",
    ]
    assert lines[9] == "key    digits-lan2023  numwords-lan2023  months-lan2023  in"
    assert lines[11] == "a0.1   x               x                 x               3"
    assert lines[12] == "a0.5                                     x               1"
    assert len(lines) == 11 + 24  # 24 distinct heads: 20 in digits or number words, 4 more in months


def test_overlap_json(seeded: str) -> None:
    result = run(seeded, "overlap", "ioi-wang2022", "greater-than-hanna2023", "--json")
    data = json.loads(result.stdout)
    assert {"circuits", "level", "shared", "jaccard", "membership"} <= set(data)
    # Both hold all twelve MLPs (ACDC's encodings): shared are the three heads both papers list, and m0-m11.
    assert data["shared"] == ["a0.1", "m0", "m1", "m2", "m3", "m4", "a5.5", "m5", "a6.9", "m6", "m7", "m8", "m9",
                              "m10", "m11"]
    assert data["level"] == "nodes" and data["membership"]["a0.1"] == ["ioi-wang2022", "greater-than-hanna2023"]
    assert data["jaccard"]["ioi-wang2022"]["greater-than-hanna2023"] == pytest.approx(15 / 44)
    heads = json.loads(run(seeded, "overlap", "ioi-wang2022", "greater-than-hanna2023", "--kind", "head",
                           "--json").stdout)
    assert heads["shared"] == ["a0.1", "a5.5", "a6.9"]
    edges = json.loads(run(seeded, "overlap", "ioi-wang2022", "greater-than-hanna2023", "--level", "edges", "--json").stdout)
    assert edges["shared"][:3] == ["embed->a0.1.q", "embed->a0.1.k", "embed->a0.1.v"] and len(edges["shared"]) == 92


def test_overlap_refusals(seeded: str) -> None:
    nodes_only = run(seeded, "overlap", "ioi-wang2022", "digits-lan2023", "--level", "edges")
    assert nodes_only.exit_code == 1
    assert nodes_only.stderr == (
        "Error: circuit 'digits-lan2023' is known only by its nodes, so it has no edges to compare: "
        "compare at node level (--level nodes)\n"
    )
    one = run(seeded, "overlap", "ioi-wang2022")
    assert one.exit_code == 2 and "give at least two circuits" in one.stderr
    missing = run(seeded, "overlap", "ioi-wang2022", "ioi-mine")
    assert missing.exit_code == 1 and "ioi-mine" in missing.stderr


def test_diff_table_and_json(db: str, write_json: Callable[[str, Any], Path]) -> None:
    a = make_circuit("A", ["a0.1", "a3.0"], [("a0.1->a3.0.k", 0.5), ("a3.0->logits", 2.0), ("embed->a0.1.q", 1.0)])
    b = make_circuit("B", ["a0.1", "a3.0"], [("a0.1->a3.0.k", 0.75), ("a3.0->logits", 2.0), ("a0.1->logits", None)])
    for c in (a, b):
        assert run(db, "import", str(native_file(write_json, c))).exit_code == 0
    result = run(db, "diff", "A", "B")
    assert result.stdout.splitlines() == [
        "A vs B at edges level: jaccard 0.500",
        "only in A (1): embed->a0.1.q",
        "only in B (1): a0.1->logits",
        "in both (2): a0.1->a3.0.k a3.0->logits",
        "",
        "key           A    B     change",
        "------------  ---  ----  ------",
        "a0.1->a3.0.k  0.5  0.75  0.25",
    ]
    data = json.loads(run(db, "diff", "A", "B", "--json").stdout)
    assert data["only_a"] == ["embed->a0.1.q"] and data["only_b"] == ["a0.1->logits"]
    assert data["shared"] == ["a0.1->a3.0.k", "a3.0->logits"]
    assert data["score_changes"] == [{"key": "a0.1->a3.0.k", "a": 0.5, "b": 0.75, "delta": 0.25}]
    nodes = json.loads(run(db, "diff", "A", "B", "--level", "nodes", "--json").stdout)
    assert nodes["level"] == "nodes" and nodes["shared"] == ["a0.1", "a3.0"]


# ---------------------------------------------------------------------------------------------------------
# export, import, render


def test_export_import_round_trip_native_and_eap_ig(seeded: str, tmp_path: Path) -> None:
    out = tmp_path / "ioi.json"
    assert run(seeded, "export", "ioi-wang2022", "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text())["circuit"]["name"] == "ioi-wang2022"
    copy = run(seeded, "import", str(out), "--name", "ioi-copy")
    assert copy.stdout == "imported ioi-copy: 26 heads, 12 MLPs, 963 edges\n"
    same = json.loads(run(seeded, "diff", "ioi-wang2022", "ioi-copy", "--json").stdout)
    assert same["only_a"] == same["only_b"] == [] and same["score_changes"] == [] and len(same["shared"]) == 963
    eap = tmp_path / "gt.json"
    assert run(seeded, "export", "greater-than-hanna2023", "-o", str(eap), "--to", "eap-ig").exit_code == 0
    back = run(seeded, "import", str(eap), "--from", "eap-ig", "--task", "greater-than")
    assert back.stdout == "imported gt: 9 heads, 12 MLPs, 235 edges\n"
    assert back.stderr == "note: eap-ig files do not name their model; assumed gpt2 (--model to change)\n"
    assert json.loads(run(seeded, "diff", "greater-than-hanna2023", "gt", "--json").stdout)["only_b"] == []


def test_stored_references_export_exactly_as_shipped(seeded: str, tmp_path: Path) -> None:
    """Saving and loading through the catalog loses nothing: roles, notes, attributes, metadata, edges."""
    for info in list_references():
        out = tmp_path / f"{info.name}.json"
        assert run(seeded, "export", info.name, "-o", str(out)).exit_code == 0
        assert json.loads(out.read_text()) == json.loads(json.dumps(export_circuit(load_reference(info.name))))


def test_import_other_tools_files(db: str, write_json: Callable[[str, Any], Path]) -> None:
    seq = write_json("numerals.json", {"heads": [[9, 1], [4, 4]], "mlps": [0, 9]})
    assert run(db, "import", str(seq), "--from", "seqcont", "--task", "digits").stdout == (
        "imported numerals: 2 heads, 2 MLPs, edges unknown\n")
    acdc = write_json("acdc.json", [["blocks.9.attn.hook_result[:, :, 1]", "blocks.11.hook_resid_post[:]", 0.5]])
    assert run(db, "import", str(acdc), "--from", "acdc", "--name", "a").stdout == "imported a: 1 head, 0 MLPs, 1 edge\n"
    ac = write_json("ac.json", {"scores": {"A9.1->Resid End": 0.5, "MLP 2->A9.1.K": 0.01}, "kept": ["A9.1->Resid End"]})
    assert run(db, "import", str(ac), "--from", "auto-circuit", "--name", "ac").stdout == (
        "imported ac: 1 head, 0 MLPs, 1 edge (1 more scored)\n")
    listed = json.loads(CliRunner().invoke(cli, ["list", "--json", "--db", db]).stdout)
    assert [c["name"] for c in listed] == ["a", "ac", "numerals"]


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", " is not JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ({"format": "circuit-catalog", "version": 1, "circuit": {"name": "x", "model": "gpt2", "colour": 1},
          "nodes": []}, ": circuit: unknown field 'colour' (known: citation, description, edges_known, metadata, "
                        "method, model, name, performance, source, task, threshold)"),
        ({"format": "circuit-catalog", "version": 1, "circuit": {"name": "x", "model": "gpt2"},
          "nodes": [{"key": "a0.1"}], "edges": [{"src": "a0.1", "dst": "m4"}]},
         ": edges[0]: kept edge a0.1->m4 points to node m4, which the circuit does not list"),
    ],
    ids=["not json", "unknown field", "absent node"],
)
def test_malformed_import_is_refused_and_changes_nothing(
    seeded: str, write_json: Callable[[str, Any], Path], content: Any, message: str
) -> None:
    before = rows(seeded)
    path = write_json("bad.json", content)
    result = run(seeded, "import", str(path))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path}{message}\n"
    assert rows(seeded) == before


def test_import_under_a_taken_name_changes_nothing(seeded: str, write_json: Callable[[str, Any], Path]) -> None:
    before = rows(seeded)
    result = run(seeded, "import", str(native_file(write_json, load_reference("ioi-wang2022"))))
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert rows(seeded) == before


def test_render_dot_matches_the_library(seeded: str, tmp_path: Path) -> None:
    out = tmp_path / "lan.dot"
    result = run(seeded, "render", "digits-lan2023", "months-lan2023", "-o", str(out))
    assert result.exit_code == 0 and result.stderr == f"drew digits-lan2023, months-lan2023 to {out}\n"
    expected = to_dot([load_reference("digits-lan2023"), load_reference("months-lan2023")])
    assert out.read_text() == expected
    bad = run(seeded, "render", "digits-lan2023", "-o", str(tmp_path / "x.gif"))
    assert bad.exit_code == 1 and "name a .pdf, .svg, .png or .dot file" in bad.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_render_svg(seeded: str, tmp_path: Path) -> None:
    out = tmp_path / "ioi.svg"
    assert run(seeded, "render", "ioi-wang2022", "-o", str(out)).exit_code == 0
    assert "<svg" in out.read_text()
