"""Covers: the graph commands end to end (paths, neighbors, stats, similar, contains), graph-file export and import
through the CLI, and render's options (edges, groups, layers, page, concentration)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from catalog import queries
from catalog.db import connect, session_scope
from catalog.interchange import export_circuit
from catalog.records import NewCircuit
from cli.main import cli
from tests.compare.builders import make_circuit


def canonical(circuit: object) -> tuple:
    """A circuit's content whatever order its nodes and edges were stored in."""
    data = export_circuit(circuit)  # type: ignore[arg-type]
    return data["circuit"], sorted(map(str, data["nodes"])), sorted(map(str, data["edges"]))


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", db])


def save(db: str, *circuits: object) -> None:
    engine = connect(db)
    with session_scope(engine) as s:
        for c in circuits:
            record = c
            queries.save_circuit(s, NewCircuit(
                name=record.name, model=record.model, task=record.task, source=record.source,  # type: ignore[attr-defined]
                nodes=record.nodes, edges=record.edges, edges_known=record.edges_known))  # type: ignore[attr-defined]
    engine.dispose()


@pytest.fixture
def graphs(db: str) -> str:
    diamond = make_circuit(
        "diamond", ["a0.0", "a0.1", "a1.0", "m1"],
        [("embed->a0.0.q", 1.0), ("embed->a0.0.v", 4.0), ("a0.0->a1.0.k", 2.0), ("a1.0->logits", -4.0),
         ("embed->a0.1.v", 4.0), ("a0.1->logits", 1.0), ("a0.1->m1", 0.5)],
        roles={"a1.0": "mover", "a0.0": "feeder"}, model="toy")
    half = make_circuit("half", ["a0.0", "a1.0"], [("embed->a0.0.v", 1.0), ("a0.0->a1.0.k", 1.0),
                                                  ("a1.0->logits", 1.0)], model="toy")
    save(db, diamond, half)
    return db


def test_paths_neighbors_and_stats_answer_in_tables_and_json(graphs: str) -> None:
    table = run(graphs, "paths", "diamond", "--top", "2")
    assert table.exit_code == 0, table.output
    assert "embed -> a0.0.v -> a1.0.k -> logits" in table.output and "0.5" in table.output
    paths = json.loads(run(graphs, "paths", "diamond", "--json").output)
    assert [p["strength"] for p in paths] == [0.5, 0.25]
    up = json.loads(run(graphs, "neighbors", "diamond", "logits", "--depth", "2", "--json").output)
    assert [(n["key"], n["distance"]) for n in up] == [("a0.1", 1), ("a1.0", 1), ("embed", 2), ("a0.0", 2)]
    down = run(graphs, "neighbors", "diamond", "0.0", "--down")
    assert "a1.0" in down.output and "mover" in down.output and "a0.0->a1.0.k 2" in down.output
    stats = json.loads(run(graphs, "stats", "diamond", "--json").output)
    assert (stats["depth"], stats["dangling"], stats["width"]) == (3, 1, 2)
    assert "depth 3, width 2, components 1, dangling edges 1" in run(graphs, "stats", "diamond").output


def test_similar_and_contains_across_the_catalog(graphs: str) -> None:
    similar = json.loads(run(graphs, "similar", "diamond", "--level", "edges", "--json").output)
    assert [(c["name"], c["shared"], c["jaccard"]) for c in similar["circuits"]] == [("half", 3, 3 / 7)]
    table = run(graphs, "similar", "half", "--weighted")
    assert "ranked by weighted Jaccard" in table.output and "diamond" in table.output
    found = json.loads(run(graphs, "contains", "--path", "a0.0,logits", "--edges", "a0.0->a1.0.k", "--json").output)
    assert found["circuits"] == ["diamond", "half"]
    assert json.loads(run(graphs, "contains", "--circuit", "half", "--json").output)["circuits"] == ["diamond"]
    assert json.loads(run(graphs, "contains", "--circuit", "diamond", "--json").output)["circuits"] == []
    assert "no circuit contains" in run(graphs, "contains", "--nodes", "m1", "--edges", "a0.0->m1").output
    # diamond and half share embed->a0.0.v, a0.0->a1.0.k, a1.0->logits: one path from embed to logits
    core = json.loads(run(graphs, "overlap", "diamond", "half", "--level", "edges", "--connected", "--json").output)
    assert core["connected"] == {"nodes": ["a0.0", "a1.0"],
                                 "edges": ["embed->a0.0.v", "a0.0->a1.0.k", "a1.0->logits"]}
    text = run(graphs, "overlap", "diamond", "half", "--connected").output
    assert "connected from embed to logits: 2 heads and MLPs, 3 edges" in text


@pytest.mark.parametrize("args", [
    ("paths", "diamond", "--from", "a7.7"),
    ("paths", "nobody"),
    ("neighbors", "diamond", "x.y"),
    ("similar", "diamond", "--level", "wires"),
    ("contains",),
    ("contains", "--edges", "a1.0->a0.0"),
    ("render", "diamond", "-o", "x.dot", "--edges", "top:0"),
    ("render", "diamond", "-o", "x.dot", "--layers", "5-2"),
])
def test_bad_graph_questions_get_one_line(graphs: str, args: tuple[str, ...]) -> None:
    result = run(graphs, *args)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in result.output


@pytest.mark.parametrize("fmt", ["graphml", "gexf", "cytoscape"])
def test_export_then_import_a_graph_file_gives_the_same_circuit(graphs: str, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"d.{fmt}"
    assert run(graphs, "export", "diamond", "--to", fmt, "-o", str(path)).exit_code == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    result = run(other, "import", str(path), "--from", fmt)
    assert result.exit_code == 0 and "imported diamond" in result.output
    assert "assumed" not in result.output  # the file names its model
    engine_a, engine_b = connect(graphs), connect(other)
    with session_scope(engine_a) as a, session_scope(engine_b) as b:
        assert canonical(queries.get_circuit(a, "diamond")) == canonical(queries.get_circuit(b, "diamond"))
    engine_a.dispose()
    engine_b.dispose()


def test_render_options_pick_edges_group_roles_and_fit_a_page(graphs: str, tmp_path: Path) -> None:
    def dot(*options: str) -> str:
        out = tmp_path / "d.dot"
        result = run(graphs, "render", "diamond", "-o", str(out), *options)
        assert result.exit_code == 0, result.output
        return out.read_text()

    def arrows(text: str) -> list[str]:
        return [line.split(" [")[0].strip() for line in text.splitlines() if "->" in line and "rank:" not in line]

    assert len(arrows(dot())) == 6  # embed's q and v into a0.0 share one line
    # |4| thrice: ties go in topological order
    assert arrows(dot("--edges", "top:2")) == ['"embed" -> "a0.0"', '"embed" -> "a0.1"']
    assert arrows(dot("--edges", "none")) == [] and "edges not drawn" in dot("--edges", "none")
    grouped = dot("--group", "roles")
    assert 'subgraph "cluster_role_1" { label="mover"' in grouped and '"a1.0"; }' in grouped
    band = dot("--layers", "1-1")
    assert '"a0.0" [' not in band and '"logits" [' in band and '"embed" [' not in band
    assert arrows(band) == ['"a1.0" -> "logits"']
    page = dot("--page", "a4", "--concentrate")
    assert 'size="7.1,10.5", ratio=compress' in page and "concentrate=true" in page
    shared = tmp_path / "s.dot"
    assert run(graphs, "render", "diamond", "half", "--edges", "shared", "-o", str(shared)).exit_code == 0
    assert arrows(shared.read_text()) == ['"embed" -> "a0.0"', '"a0.0" -> "a1.0"', '"a1.0" -> "logits"']


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_render_by_roles_draws_through_graphviz(graphs: str, tmp_path: Path) -> None:
    out = tmp_path / "d.svg"
    assert run(graphs, "render", "diamond", "--group", "roles", "--page", "a4", "-o", str(out)).exit_code == 0
    assert "cluster_role" in out.read_text()


def test_a_stability_group_is_drawn_as_one_with_node_frequency_as_fill(graphs: str, tmp_path: Path) -> None:
    engine = connect(graphs)
    with session_scope(engine) as s:
        for name in ("diamond", "half"):
            queries.set_group(s, name, "g")
    engine.dispose()
    out = tmp_path / "g.dot"
    result = run(graphs, "render", "--stability", "g", "--edges", "shared", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert 'label="g: how often each node is kept, over 2 circuits"' in text
    assert 'fillcolor="#08519c", color="#333333", label="0.0\\nfeeder\\n100%"' in text  # in both: darkest
    assert 'fillcolor="#6baed6", color="#333333", label="0.1\\n50%"' in text  # in one of two
    assert "in 80-100 % of the circuits" in text and "A: only" not in text
    assert any(line.split() == ["group", "g"] for line in run(graphs, "show", "half").output.splitlines())
    assert run(graphs, "render", "diamond", "--stability", "g", "-o", str(out)).exit_code == 2
    missing = run(graphs, "render", "--stability", "nope", "-o", str(out))
    assert missing.exit_code == 1 and "no circuit is in group 'nope'" in missing.output
