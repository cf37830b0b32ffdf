"""Covers: importers and exporters on files other tools really wrote (MIB's EAP-IG graph of GPT-2 small IOI,
Lan et al.'s seqcont results; from ../shared/interop/peers), MIB's submission layout, shape agreement between a
file and the named model, ACDC graphs with split embeddings, and a refused import in one line."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog.errors import InvalidCircuit
from catalog.formats.mib import write_mib
from catalog.interchange import read_circuit, read_circuit_file, write_circuit
from catalog.reference import load_reference
from cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
_PLACES = [os.environ.get("CIRCUITS_PEER_FILES", ""), str(ROOT.parent / "shared" / "interop" / "peers"),
           "/work/shared/interop/peers"]
PEERS = next((Path(p) for p in _PLACES if p and Path(p).is_dir()), None)
needs_peers = pytest.mark.skipif(PEERS is None, reason="the peer files (shared/interop/peers) are not on this machine")
MIB_FILE = "MIB-circuit-track/circuits/ioi-eap-ig.json"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@needs_peers
def test_mibs_eap_ig_graph_imports_whole_and_exports_back_to_the_same_edges(tmp_path: Path) -> None:
    assert PEERS is not None
    original = json.loads((PEERS / MIB_FILE).read_text())
    circuit = read_circuit_file(PEERS / MIB_FILE, "eap-ig", name="mib-ioi", model="gpt2", task="ioi")
    assert len(circuit.edges) == 32_491 and sum(e.kept for e in circuit.edges) == 756
    assert circuit.metadata["score_sign"] == "loss" and circuit.metadata["model_shape"]["n_layers"] == 12
    again = write_circuit(circuit, "eap-ig")
    assert again["edges"] == original["edges"] and again["cfg"] == original["cfg"]
    # MIB's layout: one folder per task and model, one file of every edge's score
    [path] = write_mib(circuit, tmp_path / "submission")
    assert path == (tmp_path / "submission" / "ioi_gpt2" / "importances.json").resolve()
    assert json.loads(path.read_text())["edges"] == original["edges"]
    binary = write_mib(circuit, tmp_path / "binary", binary=True)
    assert [p.name for p in binary][:3] == ["edges_0.json", "edges_0.1.json", "edges_0.2.json"]
    kept = [sum(e["in_graph"] for e in json.loads(p.read_text())["edges"].values()) for p in binary]
    assert kept[0] == 0 and kept == sorted(kept) and kept[-1] <= 0.5 * 32_491
    assert kept[3] <= int(0.01 * 32_491)  # 1 %: the pruned top 324 by signed score


@needs_peers
def test_the_cli_imports_the_mib_file_and_refuses_it_for_the_toy_model(tmp_path: Path) -> None:
    assert PEERS is not None
    db = f"sqlite:///{tmp_path / 'c.db'}"
    ok = run("import", str(PEERS / MIB_FILE), "--from", "eap-ig", "--name", "mib-ioi", "--task", "ioi", "--db", db)
    assert ok.exit_code == 0 and ok.stdout.startswith("imported mib-ioi:")
    refused = run("import", str(PEERS / MIB_FILE), "--from", "eap-ig", "--name", "x", "--model", "gpt2-medium",
                  "--db", db)
    assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1  # no note before the error
    assert "n_layers=12, n_heads=12, d_model=768" in refused.stderr and "gpt2-medium" in refused.stderr


@needs_peers
@pytest.mark.parametrize("file,reference", [("numerals", "digits-lan2023"), ("numwords", "numwords-lan2023"),
                                            ("months", "months-lan2023")])
def test_seqcont_results_import_as_lan_et_als_circuits(file: str, reference: str) -> None:
    assert PEERS is not None
    path = PEERS / "seqcont_circuits" / "results" / f"{file}_circuit_thres_0.8.json"
    imported = read_circuit_file(path, "seqcont", name=file, model="gpt2")
    keys = {n.key for n in imported.nodes if n.kind in ("head", "mlp")}
    assert keys == {n.key for n in load_reference(reference).nodes if n.kind in ("head", "mlp")}
    assert not imported.edges_known


def _eap_ig(n_layers: int, n_heads: int, **cfg: object) -> dict:
    return {"cfg": {"n_layers": n_layers, "n_heads": n_heads, "d_model": 128, **cfg},
            "nodes": {"input": {"in_graph": True}, "logits": {"in_graph": True}},
            "edges": {"input->logits": {"score": 1.0, "in_graph": True}}}


@pytest.mark.parametrize("data,model,message", [
    (_eap_ig(4, 4), "gpt2", "n_layers=4, n_heads=4, d_model=128, but model 'gpt2' has n_layers=12"),
    (_eap_ig(12, 12, parallel_attn_mlp=True), "gpt2", "parallel-attention"),
    (_eap_ig(100_000, 1000), "my-model", "cfg.n_layers: expected a whole number from 1 to 256"),
    (_eap_ig(-1, 4), "my-model", "cfg.n_layers: expected a whole number from 1 to 256, got -1"),
    (_eap_ig(0, 4), "my-model", "got 0"),
    ({**_eap_ig(2, 2), "cfg": {"n_layers": True, "n_heads": 2}}, "my-model", "expected an integer, got true"),
])
def test_an_eap_ig_file_must_fit_the_model_it_is_imported_as(data: dict, model: str, message: str) -> None:
    with pytest.raises(InvalidCircuit, match=message.replace("(", r"\(")):
        read_circuit(data, "eap-ig", name="x", model=model)


def test_an_acdc_graph_with_split_embeddings_merges_them_into_embed() -> None:
    data = {
        "hook_embed[:]->blocks.1.hook_q_input[:, :, 0]": 0.5,
        "hook_pos_embed[:]->blocks.1.hook_q_input[:, :, 0]": -0.8,
        "hook_pos_embed[:]->blocks.1.hook_resid_post[:]": 0.1,
        "blocks.0.attn.hook_result[:, :, 1]->blocks.1.hook_resid_post[:]": 0.2,
    }
    circuit = read_circuit(data, "acdc", name="tracr", model="two-layer-tracr")
    edges = {e.key: e.score for e in circuit.edges}
    assert edges == {"embed->a1.0.q": -0.8, "embed->logits": 0.1, "a0.1->logits": 0.2}  # the larger |score|
    assert circuit.metadata["acdc_embed_edges_merged"] == ["embed->a1.0.q"]
    twice = [["hook_embed[:]", "blocks.1.hook_q_input[:, :, 0]", 0.5], ["hook_embed[:]", "blocks.1.hook_q_input[:, :, 0]"]]
    with pytest.raises(InvalidCircuit, match="listed twice"):  # one embedding hook twice is still refused
        read_circuit(twice, "acdc", name="t", model="two-layer-tracr")


def test_a_deeply_nested_or_huge_file_is_refused_in_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    result = run("import", str(deep), "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert result.exit_code == 1 and "nests JSON too deeply" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "c.db").exists()


def test_scores_leave_for_eap_ig_in_mibs_loss_sign() -> None:
    from catalog.records import EdgeRecord, NewCircuit, NodeRecord

    base = dict(name="c", model="gpt2", task="ioi", source="discovered", edges_known=True,
                nodes=tuple(NodeRecord.from_key(k) for k in ("embed", "logits")),
                edges=(EdgeRecord("embed", "logits", None, -2.0, True),))
    as_metric = NewCircuit(**base, metadata={"score_sign": "metric", "metric": "logit-diff"})
    as_loss = NewCircuit(**base, metadata={"score_sign": "loss", "metric": "kl"})
    assert write_circuit(as_metric, "eap-ig")["edges"]["input->logits"]["score"] == 2.0
    assert write_circuit(as_loss, "eap-ig")["edges"]["input->logits"]["score"] == -2.0
    assert not math.isnan(write_circuit(as_loss, "eap-ig")["edges"]["input->logits"]["score"])
