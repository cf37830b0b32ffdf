"""Covers: the native JSON format (round trip, byte-stable export, every refusal) and the readers and writer of other tools' files."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import InvalidCircuit
from catalog.interchange import (
    as_new_circuit,
    export_circuit,
    import_circuit,
    read_circuit,
    read_circuit_file,
    write_circuit,
    write_circuit_file,
)
from catalog.records import CircuitRecord, EdgeRecord, NodeRecord
from catalog.reference import list_references, load_reference
from tests.compare.builders import make_circuit


def rich_circuit() -> CircuitRecord:
    base = make_circuit(
        "rich",
        ["a0.1", "a3.0", "m2"],
        [("embed->a0.1.q", 1.5), ("a0.1->m2", -0.25), ("m2->a3.0.v", float("nan")), ("a3.0->logits", float("inf"))],
        dropped_nodes=["a1.1"],
        dropped_edges=[("a1.1->logits", 0.001), ("embed->m2", None)],
    )
    nodes = tuple(
        dataclasses.replace(n, role="mover", role_score=0.9, role_source="paper", role_note="n", attributes={"x": [1]})
        if n.key == "a3.0" else n
        for n in base.nodes
    )
    return dataclasses.replace(
        base, nodes=nodes, citation="Someone (2024)", method="eap-ig", threshold=0.2,
        performance={"kl_div": 0.125}, metadata={"seed": 3, "note": "hand-made"},
    )


# ---------------------------------------------------------------------------------------------------------
# Native format


def test_native_round_trip_gives_the_same_circuit() -> None:
    record = rich_circuit()
    data = json.loads(json.dumps(export_circuit(record)))  # through real JSON text
    back = import_circuit(data)
    expected = as_new_circuit(record)
    assert _comparable(back) == _comparable(expected)
    assert back.edges_known and back.threshold == 0.2 and back.metadata == {"seed": 3, "note": "hand-made"}


def _comparable(circuit: Any) -> Any:
    """nan != nan, so compare scores through their JSON spelling."""
    def score(x: Any) -> Any:
        return "nan" if isinstance(x, float) and math.isnan(x) else x
    nodes = [dataclasses.replace(n, score=score(n.score)) for n in circuit.nodes]
    edges = [dataclasses.replace(e, score=score(e.score)) for e in circuit.edges]
    return dataclasses.replace(circuit, nodes=tuple(nodes), edges=tuple(edges))


def test_export_spells_non_finite_scores_and_is_byte_stable(tmp_path: Path) -> None:
    record = rich_circuit()
    data = export_circuit(record)
    assert data["format"] == "circuit-catalog" and data["version"] == 1
    scores = {f"{e['src']}->{e['dst']}": e["score"] for e in data["edges"]}
    assert scores["m2->a3.0"] == "nan" and scores["a3.0->logits"] == "inf"
    write_circuit_file(record, tmp_path / "a.json")
    write_circuit_file(record, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


@pytest.mark.parametrize("name", [i.name for i in list_references()])
def test_reference_circuits_round_trip(name: str) -> None:
    circuit = load_reference(name)
    assert import_circuit(json.loads(json.dumps(export_circuit(circuit)))) == circuit


def test_native_reads_paper_spellings_and_overrides() -> None:
    data = _minimal()
    data["nodes"] = [{"key": "9.1"}, {"key": "embed"}, {"key": "logits"}]
    data["edges"] = [{"src": "9.1", "dst": "logits", "score": 2}]
    circuit = read_circuit(data, name="renamed", task="digits")
    assert [n.key for n in circuit.nodes] == ["a9.1", "embed", "logits"]
    assert circuit.edges == (EdgeRecord("a9.1", "logits", None, 2.0, True),)
    assert circuit.edges_known and (circuit.name, circuit.task, circuit.model) == ("renamed", "digits", "gpt2")


def _minimal() -> dict[str, Any]:
    return {
        "format": "circuit-catalog",
        "version": 1,
        "circuit": {"name": "c", "model": "gpt2", "edges_known": True},
        "nodes": [{"key": "embed"}, {"key": "a0.1"}, {"key": "a3.0"}, {"key": "logits"}],
        "edges": [{"src": "a0.1", "dst": "a3.0", "input": "k", "score": 0.5}, {"src": "a3.0", "dst": "logits"}],
    }


def _broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(_minimal())
    change(data)
    return data


BROKEN = [
    ("unknown top field", lambda d: d.update(extra=1), "file: unknown field 'extra'"),
    ("unknown node field", lambda d: d["nodes"][1].update(colour="red"), r"nodes\[1\]: unknown field 'colour'"),
    ("missing name", lambda d: d["circuit"].pop("name"), "circuit: missing field 'name'"),
    ("bad node key", lambda d: d["nodes"][1].update(key="x9"), r"nodes\[1\].key: not a component: 'x9'"),
    ("head outside gpt2", lambda d: d["nodes"][1].update(key="a12.0"), r"nodes\[1\]: a12.0 is not in a model of 12"),
    ("edge to absent node", lambda d: d["edges"].append({"src": "a0.1", "dst": "m5"}), "points to node m5"),
    ("duplicate edge", lambda d: d["edges"].append({"src": "a0.1", "dst": "a3.0.k"}), "edge a0.1->a3.0.k is listed twice"),
    ("duplicate node", lambda d: d["nodes"].append({"key": "0.1"}), "node a0.1 is listed twice"),
    ("kept is a string", lambda d: d["nodes"][1].update(kept="yes"), r"nodes\[1\].kept: expected true or false"),
    ("score is a list", lambda d: d["edges"][0].update(score=[1]), r"edges\[0\].score: expected a number"),
    ("bad input", lambda d: d["edges"][0].update(input="z"), r"edges\[0\].input: a head input is"),
    ("backwards edge", lambda d: d["edges"].append({"src": "a3.0", "dst": "a0.1", "input": "q"}), "cannot feed a0.1"),
    ("nodes-only with edges", lambda d: d["circuit"].update(edges_known=False), "marked nodes-only"),
    ("kept edge on dropped node", lambda d: d["nodes"][1].update(kept=False), "kept but its node a0.1 is not"),
    ("newer version", lambda d: d.update(version=2), "version 2 is newer than this catalog reads"),
    ("other format", lambda d: d.update(format="eap-ig"), "needs --from"),
    ("nodes not a list", lambda d: d.update(nodes={}), "nodes: expected a JSON list"),
    ("bad source", lambda d: d["circuit"].update(source="dreamt"), "source: 'dreamt' is not one of"),
]


@pytest.mark.parametrize("change,message", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_native_refuses_malformed_files_with_the_reason(change: Callable[..., None], message: str) -> None:
    with pytest.raises(InvalidCircuit, match=message):
        import_circuit(_broken(change))


def test_dropped_edges_may_name_nodes_the_circuit_does_not_list() -> None:
    """A run scores every candidate edge; only kept edges must join listed nodes."""
    data = _broken(lambda d: d["edges"].append({"src": "m7", "dst": "logits", "score": 0.01, "kept": False}))
    assert len(import_circuit(data).edges) == 3


def test_files_that_are_not_json_or_repeat_keys(write_json: Callable[[str, Any], Path]) -> None:
    with pytest.raises(InvalidCircuit, match=r"bad.json is not JSON: Expecting value at line 1 column 1"):
        read_circuit_file(write_json("bad.json", "nope"))
    twice = write_json("twice.json", '{"format": "circuit-catalog", "format": "x"}')
    with pytest.raises(InvalidCircuit, match="duplicate key 'format'"):
        read_circuit_file(twice)
    with pytest.raises(InvalidCircuit, match="cannot read"):
        read_circuit_file(write_json("x.json", "{}").parent / "missing.json")


# ---------------------------------------------------------------------------------------------------------
# EAP-IG


def test_eap_ig_export_then_import_gives_the_same_edges_and_scores() -> None:
    record = make_circuit(
        "scored", ["a0.1", "a3.0", "m2"],
        [("embed->a0.1.q", 1.5), ("a0.1->m2", -0.25), ("m2->a3.0.v", 0.5), ("a3.0->logits", 2.0)],
        dropped_edges=[("a1.1->logits", 0.001), ("embed->m5", -0.002)],
    )
    data = json.loads(json.dumps(write_circuit(record, "eap-ig")))
    assert data["cfg"] == {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": False, "d_model": 768}
    assert data["edges"]["input->a0.h1<q>"] == {"score": 1.5, "in_graph": True}
    assert data["edges"]["a1.h1->logits"] == {"score": 0.001, "in_graph": False}
    assert data["nodes"]["a0.h1"] == {"in_graph": True} and data["nodes"]["a1.h1"] == {"in_graph": False}
    back = read_circuit(data, "eap-ig", name="back")
    assert {(e.key, e.score, e.kept) for e in back.edges} == {(e.key, e.score, e.kept) for e in record.edges}
    assert {n.key for n in back.nodes if n.kept} == {n.key for n in record.nodes if n.kept}
    again = write_circuit(back, "eap-ig")
    assert again["edges"] == data["edges"]


def test_eap_ig_writes_unscored_edges_as_one_or_zero() -> None:
    ioi = load_reference("ioi-wang2022")
    data = write_circuit(ioi, "eap-ig")
    assert len(data["edges"]) == 963 and all(e == {"score": 1.0, "in_graph": True} for e in data["edges"].values())
    assert "a8.h6->a9.h9<q>" in data["edges"]
    with pytest.raises(InvalidCircuit, match="known only by its nodes"):
        write_circuit(load_reference("digits-lan2023"), "eap-ig")


def test_eap_ig_reads_its_files_old_and_new() -> None:
    data = {
        "cfg": {"n_layers": 2, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 8},
        "nodes": {"input": True, "a0.h1": {"in_graph": True, "score": 0.5}, "m1": {"in_graph": False, "score": float("nan")},
                  "logits": True},
        "edges": {"input->a0.h1<k>": {"score": 0.25, "in_graph": True}, "a0.h1->logits": {"score": -1.0, "in_graph": True},
                  "a0.h1->m1": {"score": 0.0, "in_graph": False}},
    }
    circuit = read_circuit(data, "eap-ig", name="tiny", model="toy")
    assert circuit.metadata["model_shape"] == {"n_layers": 2, "n_heads": 2, "d_model": 8}
    assert [(n.key, n.score, n.kept) for n in circuit.nodes] == [
        ("embed", None, True), ("a0.1", 0.5, True), ("m1", None, False), ("logits", None, True)]
    assert [e.key for e in circuit.edges] == ["embed->a0.1.k", "a0.1->m1", "a0.1->logits"]
    assert write_circuit(circuit, "eap-ig")["cfg"] == data["cfg"]


EAP_BROKEN = [
    ("no cfg", lambda d: d.pop("cfg"), "missing field 'cfg'"),
    ("edge outside shape", lambda d: d["edges"].update({"a5.h0->logits": {"score": 1, "in_graph": True}}),
     "a5.0 is not in a model of 2"),
    ("edge name", lambda d: d["edges"].update({"a0.h1=>m1": {"score": 1, "in_graph": True}}), "not an edge"),
    ("neurons", lambda d: d["nodes"].update({"m1": {"in_graph": True, "neurons": [True]}}), "neuron-level"),
    ("in_graph type", lambda d: d["edges"]["input->a0.h1<k>"].update(in_graph=1), r"in_graph: expected true or false"),
    ("missing score", lambda d: d["edges"]["input->a0.h1<k>"].pop("score"), "missing field 'score'"),
]


@pytest.mark.parametrize("change,message", [b[1:] for b in EAP_BROKEN], ids=[b[0] for b in EAP_BROKEN])
def test_eap_ig_refusals(change: Callable[..., None], message: str) -> None:
    data = {
        "cfg": {"n_layers": 2, "n_heads": 2, "d_model": 8},
        "nodes": {"input": {"in_graph": True}, "a0.h1": {"in_graph": True}},
        "edges": {"input->a0.h1<k>": {"score": 0.25, "in_graph": True}},
    }
    change(data)
    with pytest.raises(InvalidCircuit, match=message):
        read_circuit(data, "eap-ig", name="x", model="toy")


# ---------------------------------------------------------------------------------------------------------
# auto-circuit, ACDC, seqcont


def test_auto_circuit_scores_and_kept_list() -> None:
    data = {"scores": {"Resid Start->A0.1.Q": 0.5, "A0.1->MLP 2": -0.1, "MLP 2->Resid End": 0.3},
            "kept": ["Resid Start->A0.1.Q", "MLP 2->Resid End", "A0.1->MLP 2"]}
    circuit = read_circuit(data, "auto-circuit", name="ac")
    assert [(e.key, e.score, e.kept) for e in circuit.edges] == [
        ("embed->a0.1.q", 0.5, True), ("a0.1->m2", -0.1, True), ("m2->logits", 0.3, True)]
    partial = read_circuit({"scores": data["scores"], "kept": ["Resid Start->A0.1.Q", "A0.1->MLP 2"]},
                           "auto-circuit", name="ac")
    assert [e.kept for e in partial.edges] == [True, True, False]
    assert [n.key for n in partial.nodes if n.kept] == ["embed", "a0.1", "m2", "logits"]


def test_auto_circuit_bare_mapping_and_bare_list() -> None:
    scores_only = read_circuit({"A3.2->MLP 5": 1.0}, "auto-circuit", name="m")
    assert [(e.key, e.score, e.kept) for e in scores_only.edges] == [("a3.2->m5", 1.0, True)]
    listed = read_circuit(["A3.2->MLP 5", "MLP 5->Resid End"], "auto-circuit", name="l")
    assert [(e.key, e.score) for e in listed.edges] == [("a3.2->m5", None), ("m5->logits", None)]


@pytest.mark.parametrize(
    "data,message",
    [
        ({"A3.2->MLP 5": 1.0, "a3.2->m5": 2.0}, "listed twice"),
        (["A3.2->MLP 5", "A3.2->MLP 5"], "listed twice"),
        ({"A3.2->Nowhere": 1.0}, "not a component: 'Nowhere'"),
        ({"scores": {"A3.2->MLP 5": "high"}}, "expected a number"),
        ({"scores": {"A3.2->MLP 5": 1.0}, "kept": []}, "keeps no edges"),
        (42, "expected a JSON object"),
    ],
)
def test_auto_circuit_refusals(data: Any, message: str) -> None:
    with pytest.raises(InvalidCircuit, match=message):
        read_circuit(data, "auto-circuit", name="bad")


def test_acdc_pairs_skip_placeholder_edges() -> None:
    data = [
        ["blocks.0.hook_resid_pre[:]", "blocks.9.hook_q_input[:, :, 1]"],
        ["blocks.9.hook_q_input[:, :, 1]", "blocks.9.attn.hook_q[:, :, 1]"],
        ["blocks.9.attn.hook_q[:, :, 1]", "blocks.9.attn.hook_result[:, :, 1]"],
        ["blocks.9.attn.hook_result[:, :, 1]", "blocks.11.hook_resid_post[:]", 0.75],
        ["blocks.3.hook_mlp_out[:]", "blocks.9.hook_v_input[:, :, 1]"],
    ]
    circuit = read_circuit(data, "acdc", name="acdc")
    assert [(e.key, e.score) for e in circuit.edges] == [
        ("embed->a9.1.q", None), ("m3->a9.1.v", None), ("a9.1->logits", 0.75)]
    assert circuit.metadata["acdc_placeholder_edges_skipped"] == 2
    mapping = read_circuit({"blocks.9.attn.hook_result[:, :, 1]->blocks.11.hook_resid_post[:]": 0.5}, "acdc", name="m")
    assert [(e.key, e.score) for e in mapping.edges] == [("a9.1->logits", 0.5)]


@pytest.mark.parametrize(
    "data,message",
    [
        ([["blocks.9.attn.hook_result[:, :, 1]", "blocks.5.hook_resid_post[:]"]], "only the last layer's"),
        ([["blocks.9.attn.hook_result", "blocks.11.hook_resid_post[:]"]], "needs a head index"),
        ([["blocks.2.hook_q_input[:, :, 0]", "blocks.3.hook_mlp_in[:]"]], "is a head's input"),
        ([["blocks.9.attn.hook_result[:, :, 1]", "blocks.3.hook_mlp_in[:]"]], "cannot feed m3"),
        ([["blocks.9.attn.hook_foo[:, :, 1]", "blocks.11.hook_resid_post[:]"]], "not a hook name"),
        ([["hook_embed", "blocks.0.hook_mlp_in[:]", 1, 2]], r"expected \[src_hook, dst_hook\]"),
        ({"blocks.9.attn.hook_result[:, :, 1]": 1.0}, "src_hook->dst_hook"),
    ],
)
def test_acdc_refusals(data: Any, message: str) -> None:
    with pytest.raises(InvalidCircuit, match=message):
        read_circuit(data, "acdc", name="bad")


def test_seqcont_is_nodes_only() -> None:
    circuit = read_circuit({"heads": [[9, 1], [0, 1]], "mlps": [0, 11]}, "seqcont", name="lan", task="digits")
    assert [n.key for n in circuit.nodes] == ["embed", "a0.1", "m0", "a9.1", "m11", "logits"]
    assert not circuit.edges_known and circuit.edges == ()


@pytest.mark.parametrize(
    "data,message",
    [
        ({"heads": [[9, 1]], "neurons": []}, "unknown field 'neurons'"),
        ({"heads": [[9]]}, r"expected \[layer, head\]"),
        ({"heads": [["9", 1]]}, "expected an integer"),
        ({"mlps": [12]}, "m12 is not in a model of 12"),
        ({"heads": [[9, 1], [9, 1]]}, "listed twice"),
        ({}, "lists no heads and no MLPs"),
    ],
)
def test_seqcont_refusals(data: Any, message: str) -> None:
    with pytest.raises(InvalidCircuit, match=message):
        read_circuit(data, "seqcont", name="bad")


def test_foreign_files_need_a_name_and_known_format() -> None:
    with pytest.raises(InvalidCircuit, match="does not name its circuit"):
        read_circuit({"heads": [[9, 1]]}, "seqcont")
    with pytest.raises(InvalidCircuit, match="unknown format 'pickle'"):
        read_circuit({}, "pickle", name="x")


def test_node_records_keep_their_fields() -> None:
    n = NodeRecord.from_key("9.1", role="successor")
    data = _minimal()
    data["nodes"].append({"key": "9.1", "role": "successor", "kept": True})
    circuit = import_circuit(data)
    assert next(x for x in circuit.nodes if x.key == "a9.1") == n
