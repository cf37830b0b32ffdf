"""Covers: the DOT text of layered circuit diagrams (byte-stable, layer order, encodings) and drawing through Graphviz."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from pathlib import Path

import pytest

from catalog.errors import CatalogError
from catalog.records import CircuitRecord
from catalog.reference import load_reference
from catalog.render import render, to_dot
from tests.compare.builders import make_circuit

HAS_DOT = shutil.which("dot") is not None


def small() -> CircuitRecord:
    return make_circuit(
        "small",
        ["a0.1", "a3.0", "m3"],
        [("embed->a0.1.q", 1.0), ("embed->a0.1.k", 0.25), ("a0.1->a3.0.v", -2.0), ("a3.0->m3", 1 / 3),
         ("m3->logits", None)],
        dropped_nodes=["a5.5"],
        dropped_edges=[("a5.5->logits", 9.0)],
        roles={"a3.0": "mover"},
    )


def test_dot_text_is_exact_for_a_small_circuit() -> None:
    lines = to_dot([small()]).splitlines()
    assert lines[0] == "digraph circuit {"
    assert '  "rank:embed" -> "rank:0" -> "rank:3" -> "rank:logits" [style=invis];' in lines
    assert '  { rank=same; "rank:3"; "a3.0"; "m3"; }' in lines
    assert ('  "a3.0" [shape=box, style="rounded,filled", fillcolor="#8dd3c7", color="#333333", '
            'label="3.0\\nmover", tooltip="a3.0: small"];') in lines
    assert ('  "m3" [shape=hexagon, style="filled", fillcolor="#eeeeee", color="#333333", label="MLP 3", '
            'tooltip="m3: small"];') in lines
    # Width 0.6 + 4.4 |s| / 2 (|-2.0| is the largest). q and k from embed share a line, as wide as the larger.
    assert ('  "embed" -> "a0.1" [color="#2166ac", penwidth=2.80, xlabel="q,k", '
            'tooltip="embed->a0.1.q 1 (small); embed->a0.1.k 0.25 (small)"];') in lines
    assert '  "a0.1" -> "a3.0" [color="#b2182b", penwidth=5.00, xlabel="v", tooltip="a0.1->a3.0.v -2 (small)"];' in lines
    assert '  "a3.0" -> "m3" [color="#2166ac", penwidth=1.33, tooltip="a3.0->m3 0.3333 (small)"];' in lines
    assert '  "m3" -> "logits" [color="#555555", penwidth=1.00, tooltip="m3->logits (small)"];' in lines
    assert not any("a5.5" in line for line in lines)  # dropped nodes and edges are not drawn
    assert lines[-1] == "}"


def test_same_input_same_bytes_whatever_the_order() -> None:
    c = small()
    shuffled = dataclasses.replace(c, nodes=tuple(reversed(c.nodes)), edges=tuple(reversed(c.edges)))
    assert to_dot([c]) == to_dot([c]) == to_dot([shuffled])
    lan = [load_reference(f"{t}-lan2023") for t in ("digits", "numwords", "months")]
    assert to_dot(lan) == to_dot(list(lan))


def test_several_circuits_tell_shared_from_own_nodes() -> None:
    a = make_circuit("A", ["a0.1", "a5.5", "a9.1"], [("a0.1->a9.1.q", 1.0), ("a9.1->logits", 1.0)])
    b = make_circuit("B", ["a0.1", "a9.1"], [("a9.1->logits", 0.5)])
    c = make_circuit("C", ["a0.1", "a5.5", "m7"])
    text = to_dot([a, b, c], title="three")
    assert 'label="three"' in text
    assert '"a0.1" [shape=box, style="rounded,filled", fillcolor="#ffd966", color="#333333", label="0.1", ' in text
    assert 'penwidth=2.0];' in text  # shared by all: thick outline
    assert '"a5.5" [shape=box, style="rounded,filled,dashed", fillcolor="#dddddd", color="#333333", label="5.5\\nA+C"' in text
    assert '"m7" [shape=hexagon, style="filled", fillcolor="#fb9a99", color="#e31a1c", label="MLP 7"' in text
    assert '"a0.1" -> "a9.1" [color="#2166ac", penwidth=5.00, xlabel="q", style=dashed' in text  # only in A
    assert '"a9.1" -> "logits" [color="#2166ac", penwidth=5.00, tooltip=' in text  # in both edge-known circuits
    assert "C: only C" in text and "nodes only, edges unknown: C" in text


def test_nodes_only_circuits_draw_no_edges() -> None:
    text = to_dot([load_reference("digits-lan2023")])
    arrows = [line for line in text.splitlines() if "->" in line]
    assert arrows == ['  "rank:embed" -> "rank:0" -> "rank:1" -> "rank:2" -> "rank:3" -> "rank:4" -> "rank:5" '
                      '-> "rank:6" -> "rank:7" -> "rank:8" -> "rank:9" -> "rank:10" -> "rank:11" -> "rank:logits" '
                      '[style=invis];']
    assert 'label="9.1\\nsuccessor"' in text


def test_labels_are_escaped() -> None:
    odd = make_circuit('say "hi" <b>', ["a0.1"])
    text = to_dot([odd, make_circuit("other", ["a0.1"])])
    assert 'label="say \\"hi\\" <b> vs other"' in text
    assert "A: only say &quot;hi&quot; &lt;b&gt;" in text


def test_render_dot_needs_no_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    out = render([small()], tmp_path / "c.dot")
    assert out.read_text() == to_dot([small()])


def test_render_refuses_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"cannot draw to 'c.jpg': name a .pdf, .svg, .png or .dot file"):
        render([small()], tmp_path / "c.jpg")
    with pytest.raises(CatalogError, match="nothing to draw"):
        to_dot([])


def test_render_without_dot_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CatalogError, match="Graphviz's 'dot' program is not installed, so a .svg cannot be drawn"):
        render([small()], tmp_path / "c.svg")


def test_render_reports_a_format_graphviz_lacks_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'Format: "pdf" not recognized. Use one of: png svg\' >&2\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(fake.parent) + os.pathsep + os.environ.get("PATH", ""))
    with pytest.raises(CatalogError) as err:
        render([small()], tmp_path / "c.pdf")
    assert str(err.value) == 'Graphviz could not draw c.pdf: Format: "pdf" not recognized'
    assert list(tmp_path.glob("*c.pdf*")) == []


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_render_svg_with_graphviz(tmp_path: Path) -> None:
    out = render([load_reference("ioi-wang2022"), load_reference("greater-than-hanna2023")], tmp_path / "both.svg")
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "9.9" in svg and "MLP 9" in svg and "name mover" in svg
