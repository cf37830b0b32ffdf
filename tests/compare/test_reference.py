"""Covers: the shipped published circuits — their data entry checked against the facts file's tables, and the loader."""

from __future__ import annotations

import pytest

from catalog.compare import overlap
from catalog.errors import NotFound
from catalog.reference import list_references, load_reference

NAMES = [
    "digits-lan2023",
    "greater-than-hanna2023",
    "ioi-wang2022",
    "months-lan2023",
    "numwords-lan2023",
    "successor-gould2023",
]


def heads(name: str) -> set[str]:
    return {n.key for n in load_reference(name).nodes if n.kind == "head"}


def mlps(name: str) -> set[str]:
    return {n.key for n in load_reference(name).nodes if n.kind == "mlp"}


def test_every_reference_loads_cites_and_says_whether_edges_are_known() -> None:
    infos = list_references()
    assert [i.name for i in infos] == NAMES
    for info in infos:
        circuit = load_reference(info.name)
        assert circuit.source == "published" and circuit.model == "gpt2"
        assert circuit.metadata["model_hub_id"] == "openai-community/gpt2"
        assert circuit.metadata["model_shape"]["n_layers"] == 12
        assert "arXiv:" in (circuit.citation or "")
        assert circuit.metadata["sources"] and circuit.metadata["node_list_from"]
        assert circuit.metadata["edges_note"]
        assert circuit.edges_known == info.edges_known == bool(circuit.edges)
        assert {n.key for n in circuit.nodes} >= {"embed", "logits"}


def test_unknown_reference_names_the_known_ones() -> None:
    with pytest.raises(NotFound, match="known: digits-lan2023"):
        load_reference("ioi")


def test_ioi_has_26_heads_in_seven_classes() -> None:
    ioi = load_reference("ioi-wang2022")
    roles: dict[str, set[str]] = {}
    for n in ioi.nodes:
        if n.role:
            roles.setdefault(n.role, set()).add(n.key)
    assert {r: len(k) for r, k in roles.items()} == {
        "name mover": 3, "backup name mover": 8, "negative name mover": 2, "S-inhibition": 4,
        "induction": 4, "duplicate token": 3, "previous token": 2,
    }
    assert roles["name mover"] == {"a9.9", "a10.0", "a9.6"}
    assert roles["S-inhibition"] == {"a7.3", "a7.9", "a8.6", "a8.10"}
    # ACDC's ground truth keeps every MLP on the paths between the heads (acdc/ioi/utils.py:205-289).
    assert len(heads("ioi-wang2022")) == 26 and mlps("ioi-wang2022") == {f"m{i}" for i in range(12)}


def test_ioi_edges_follow_the_class_connections() -> None:
    edges = {e.key for e in load_reference("ioi-wang2022").edges}
    # previous token -> induction enters k and v only; S-inhibition -> movers enters q only.
    assert {"a2.2->a5.5.k", "a2.2->a5.5.v", "a8.6->a9.9.q", "a8.10->a11.10.q", "a10.7->logits"} <= edges
    assert "a2.2->a5.5.q" not in edges and "a8.6->a9.9.k" not in edges
    # Hand count: 6 + 9 + 4 + 26 into heads from embed, 16 + 32 + 24 + 52 between heads, 13 into logits;
    # plus 780 edges into or out of an MLP and embed->logits (tests/compare/test_reference_edges.py).
    not_mlp = {e for e in edges if not any(part.startswith("m") for part in e.split("->"))}
    assert len(not_mlp - {"embed->logits"}) == 182 and "embed->logits" in edges
    assert len(edges) == 963


def test_greater_than_is_acdc_encoding_with_contested_heads_recorded() -> None:
    gt = load_reference("greater-than-hanna2023")
    assert heads("greater-than-hanna2023") == {"a0.1", "a0.3", "a0.5", "a5.5", "a6.1", "a6.9", "a7.10", "a8.11", "a9.1"}
    # MLPs 4-7 come with ACDC's clean-query block (acdc/greaterthan/utils.py:309-320).
    assert mlps("greater-than-hanna2023") == {f"m{i}" for i in range(12)}
    contested = {c["node"]: c["in_this_circuit"] for c in gt.metadata["contested"]}
    assert contested == {"a5.1": False, "a6.1": True, "a8.8": False}
    ids = {s["id"] for s in gt.metadata["sources"]}
    assert {"hanna2023", "conmy2023-acdc", "hanna2023-code"} <= ids
    edges = {e.key for e in gt.edges}
    assert "a9.1->m9" in edges and "a9.1->m8" not in edges  # a later layer cannot feed an earlier MLP
    assert {"m0->m1", "m2->m3", "m8->m11", "m9->logits"} <= edges
    assert len(edges) == 235


def test_ioi_and_greater_than_share_exactly_the_heads_both_papers_list() -> None:
    # By hand from the facts file: IOI's duplicate-token 0.1, induction 5.5 and 6.9 are also
    # greater-than heads (0.1 early attention; 5.5, 6.9 mid attention); no other head is in both.
    both = [load_reference("ioi-wang2022"), load_reference("greater-than-hanna2023")]
    result = overlap(both, kinds=("head",))
    assert result.shared == ("a0.1", "a5.5", "a6.9")
    assert result.counts["ioi-wang2022"]["greater-than-hanna2023"] == (3, 26 + 9 - 3)
    # Both edge sets (ACDC's) hold all 12 MLPs: IOI's every MLP, greater-than's MLPs 0-3, 4-7 (clean query), 8-11.
    nodes = overlap(both)
    mlp_keys = {f"m{i}" for i in range(12)}
    assert set(nodes.shared) == {"a0.1", "a5.5", "a6.9"} | mlp_keys
    assert nodes.counts["ioi-wang2022"]["greater-than-hanna2023"] == (15, 38 + 21 - 15)
    # Shared edges, by hand: IOI keeps every edge into and out of an MLP, so every greater-than MLP edge whose
    # other end is embed, an MLP, a shared head or logits is shared; of the head edges only embed->0.1 is.
    expected = {f"embed->a0.1.{i}" for i in "qkv"} | {f"embed->m{i}" for i in range(4)}
    expected |= {f"a0.1->m{i}" for i in range(4)}
    expected |= {f"m{i}->m{j}" for j in range(9) for i in range(j)}  # early MLPs and the clean-query block
    expected |= {f"m{i}->m{j}" for j in range(9, 12) for i in range(8, j)}  # late MLPs
    expected |= {f"m{i}->{h}.{x}" for i in range(4) for h in ("a5.5", "a6.9") for x in "qkv"}
    expected |= {"m4->a5.5.q", "m4->a6.9.q", "m5->a6.9.q"}
    expected |= {f"{h}->m{i}" for h in ("a5.5", "a6.9") for i in range(8, 12)} | {f"m{i}->logits" for i in range(8, 12)}
    edges = overlap(both, "edges")
    assert set(edges.shared) == expected and len(expected) == 3 + 4 + 4 + 42 + 27 + 8 + 4
    assert edges.counts["ioi-wang2022"]["greater-than-hanna2023"] == (92, 963 + 235 - 92)


def test_lan_circuits_share_the_published_heads_and_jaccards() -> None:
    digits, numwords, months = (load_reference(f"{t}-lan2023") for t in ("digits", "numwords", "months"))
    assert len(heads("digits-lan2023")) == 14
    assert len(heads("numwords-lan2023")) == 19
    assert len(heads("months-lan2023")) == 13
    result = overlap([digits, numwords, months], kinds=("head",))
    assert result.shared == ("a0.1", "a4.4", "a6.1", "a6.6", "a6.10", "a7.11", "a8.8", "a9.1")
    assert result.counts["digits-lan2023"]["numwords-lan2023"] == (13, 20)
    assert result.counts["digits-lan2023"]["months-lan2023"] == (8, 19)
    assert result.counts["numwords-lan2023"]["months-lan2023"] == (9, 23)
    assert result.jaccard["digits-lan2023"]["numwords-lan2023"] == pytest.approx(13 / 20)
    shared_mlps = overlap([digits, numwords, months], kinds=("mlp",)).shared
    assert shared_mlps == ("m0", "m1", "m2", "m3", "m4", "m6", "m7", "m8", "m9", "m10")


def test_lan_performance_and_successor_head() -> None:
    assert load_reference("digits-lan2023").performance == {"logit_diff_recovered": 0.81}
    assert load_reference("numwords-lan2023").performance == {"logit_diff_recovered": 0.811}
    assert load_reference("months-lan2023").performance == {}
    successor = load_reference("successor-gould2023")
    (head,) = [n for n in successor.nodes if n.kind == "head"]
    assert (head.key, head.role) == ("a9.1", "successor")
    assert not successor.edges_known
    assert "Lan et al." in successor.metadata["node_list_from"]
    assert "greater-than" in successor.metadata["node_list_from"]


def test_each_reference_is_evaluated_as_its_paper_did() -> None:
    from catalog.records import CircuitRecord

    def defaults(name: str) -> dict:
        new = load_reference(name)
        record = CircuitRecord(id=0, name=new.name, model=new.model, task=new.task, source=new.source,
                               nodes=new.nodes, edges=new.edges, edges_known=new.edges_known, metadata=new.metadata)
        return record.evaluation_defaults()

    assert defaults("ioi-wang2022") == {"level": "nodes", "ablation": "mean", "corruption": "abc", "from": "its paper"}
    assert defaults("greater-than-hanna2023") == {"level": "edges", "ablation": "patch", "corruption": "01",
                                                  "from": "its paper"}
    for name in ("digits-lan2023", "numwords-lan2023", "months-lan2023"):
        assert defaults(name) == {"level": "nodes", "ablation": "mean", "corruption": "random", "from": "its paper"}
    assert defaults("successor-gould2023")["from"] == "MIB's counterfactual patching"  # nothing to reproduce
