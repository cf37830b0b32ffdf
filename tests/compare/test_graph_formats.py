"""Covers: GraphML, GEXF and Cytoscape.js files (catalog.formats.graphs): lossless round trips, files other tools
can open, byte-stable exports, and refusals of malformed or hostile files."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import networkx as nx
import pytest

from catalog.errors import InvalidCircuit
from catalog.formats.graphs import GRAPH_FORMATS, read_graph_file, write_graph_text
from catalog.formats.native import export_circuit
from catalog.interchange import read_circuit_file, write_circuit_file
from catalog.reference import load_reference
from tests.compare.builders import make_circuit


def rich() -> object:
    c = make_circuit("rich <&> \"c\"", ["a0.0", "a0.1", "m1"],
                     [("embed->a0.0.q", 1.5), ("embed->a0.0.v", math.inf), ("a0.0->m1", -2.0), ("m1->logits", None),
                      ("a0.1->logits", math.nan)],
                     dropped_nodes=["a1.1"], dropped_edges=[("embed->logits", -math.inf)],
                     roles={"a0.0": "mover"}, scores={"a0.1": 0.25}, task=None)
    nodes = tuple(dataclasses.replace(n, attributes={"ov": {"copy": 0.5, "top": ["a", "b"]}}, role_source="paper",
                                      role_note="ünïcode note") if n.key == "a0.0" else n for n in c.nodes)
    return dataclasses.replace(c, nodes=nodes, citation="Me et al. 2026", method="eap", threshold=0.1,
                               performance={"kl": 0.5, "odd": math.inf}, metadata={"seeds": [1, 2], "note": None})


def canonical(circuit: object) -> tuple:
    data = export_circuit(circuit)  # type: ignore[arg-type]
    return data["circuit"], sorted(map(str, data["nodes"])), sorted(map(str, data["edges"]))


@pytest.mark.parametrize("fmt", GRAPH_FORMATS)
@pytest.mark.parametrize("make", [rich, lambda: load_reference("ioi-wang2022"), lambda: load_reference("digits-lan2023")],
                         ids=["rich", "ioi", "nodes-only"])
def test_a_circuit_survives_a_round_trip_whole(tmp_path: Path, fmt: str, make: object) -> None:
    circuit = make()  # type: ignore[operator]
    path = tmp_path / f"c.{fmt}"
    write_circuit_file(circuit, path, fmt)
    first = path.read_bytes()
    write_circuit_file(circuit, path, fmt)
    assert path.read_bytes() == first  # the same circuit, the same bytes
    assert canonical(read_circuit_file(path, fmt)) == canonical(circuit)


def test_graph_tools_read_the_files(tmp_path: Path) -> None:
    circuit = rich()
    (tmp_path / "c.graphml").write_text(write_graph_text(circuit, "graphml"))  # type: ignore[arg-type]
    g = nx.read_graphml(tmp_path / "c.graphml")
    assert g.is_directed() and g.is_multigraph()
    assert g.graph["name"] == 'rich <&> "c"' and json.loads(g.graph["performance"]) == {"kl": 0.5, "odd": "inf"}
    assert g.nodes["a0.0"]["role"] == "mover" and g.nodes["a0.0"]["layer"] == 0
    assert g.edges["embed", "a0.0", "embed->a0.0.q"]["score"] == 1.5
    (tmp_path / "c.gexf").write_text(write_graph_text(circuit, "gexf"))  # type: ignore[arg-type]
    assert sorted(nx.read_gexf(tmp_path / "c.gexf").nodes) == sorted(n.key for n in circuit.nodes)  # type: ignore[attr-defined]
    cy = json.loads(write_graph_text(circuit, "cytoscape"))  # type: ignore[arg-type]
    assert {e["data"]["id"] for e in cy["elements"]["edges"]} == {e.key for e in circuit.edges}  # type: ignore[attr-defined]
    heights = {n["data"]["id"]: n["position"]["y"] for n in cy["elements"]["nodes"]}
    assert heights["embed"] > heights["a0.0"] > heights["m1"] > heights["logits"]  # drawn bottom to top


def test_overrides_rename_an_imported_graph(tmp_path: Path) -> None:
    path = tmp_path / "c.graphml"
    write_circuit_file(load_reference("greater-than-hanna2023"), path, "graphml")
    again = read_circuit_file(path, "graphml", name="gt-copy", task="greater-than")
    assert (again.name, again.model, again.task) == ("gt-copy", "gpt2", "greater-than")


@pytest.mark.parametrize(("fmt", "text", "message"), [
    ("graphml", "<graphml><graph", "not a GraphML file"),
    ("graphml", '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
                '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;">]>'
                '<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault="directed">'
                '<node id="&d;"/></graph></graphml>', "not a GraphML file|graph does not say|name"),
    ("graphml", '<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault="undirected">'
                '<node id="embed"/></graph></graphml>', "undirected"),
    ("gexf", '<gexf xmlns="http://www.gexf.net/1.2draft" version="1.2"><graph defaultedgetype="directed">'
             '<nodes><node id="embed" label="embed"/></nodes></graph></gexf>', "no circuit fields"),
    ("cytoscape", '{"elements": {"nodes": [{"data": {"id": "a0.0"}}], "edges": [{"data": {"source": "a0.0", '
                  '"target": "a9.9"}}]}, "data": {"name": "x", "model": "gpt2"}}', "does not list as a node"),
    ("cytoscape", '{"elements": {"nodes": [{"data": {"id": "a0.0", "kept": "yes"}}]}, '
                  '"data": {"name": "x", "model": "gpt2"}}', "kept"),
    ("cytoscape", '[1, 2]', "not a Cytoscape.js file"),
])
def test_malformed_or_hostile_files_are_refused_with_the_reason(tmp_path: Path, fmt: str, text: str,
                                                                  message: str) -> None:
    path = tmp_path / f"bad.{fmt}"
    path.write_text(text)
    with pytest.raises(InvalidCircuit, match=message) as err:
        read_graph_file(path, fmt)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
