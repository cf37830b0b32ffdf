"""Covers: the IOI and greater-than reference edges, edge by edge, against ACDC's published ground-truth rules."""

from __future__ import annotations

from typing import Optional

import pytest

from catalog.reference import load_reference

# ---------------------------------------------------------------------------------------------------------
# The published rules, written out as plain data (from the ACDC repository at commit bc99ace; checked by hand
# against auto-circuit's official circuits). Nothing below uses the loader's expansion of ``connections``.

N_LAYERS = 12
MLPS = [f"m{layer}" for layer in range(N_LAYERS)]

# acdc/ioi/utils.py:161-197: the 26 heads in seven classes.
IOI_CLASSES = {
    "name mover": ["9.9", "10.0", "9.6"],
    "backup name mover": ["10.10", "10.6", "10.2", "10.1", "11.2", "9.7", "9.0", "11.9"],
    "negative": ["10.7", "11.10"],
    "s2 inhibition": ["7.3", "7.9", "8.6", "8.10"],
    "induction": ["5.5", "5.8", "5.9", "6.9"],
    "duplicate token": ["0.1", "0.10", "3.0"],
    "previous token": ["2.2", "4.11"],
}
# acdc/ioi/utils.py:246-262: (sender class or INPUT, receiver class or OUTPUT, the receiver's inputs).
IOI_CONNECTIONS = [
    ("INPUT", "previous token", "qkv"),
    ("INPUT", "duplicate token", "qkv"),
    ("INPUT", "s2 inhibition", "q"),
    ("INPUT", "negative", "kv"),
    ("INPUT", "name mover", "kv"),
    ("INPUT", "backup name mover", "kv"),
    ("previous token", "induction", "kv"),
    ("induction", "s2 inhibition", "kv"),
    ("duplicate token", "s2 inhibition", "kv"),
    ("s2 inhibition", "negative", "q"),
    ("s2 inhibition", "name mover", "q"),
    ("s2 inhibition", "backup name mover", "q"),
    ("negative", "OUTPUT", ""),
    ("name mover", "OUTPUT", ""),
    ("backup name mover", "OUTPUT", ""),
]
# ACDC removes only the embed, head->head and head->logits edges of the circuit heads (acdc/ioi/utils.py:229-242)
# from the graph left after masking the other heads (subnetwork_probing/train.py:39-96): every edge into or out
# of an MLP stays, into all of q, k and v. embed->logits stays too.
IOI_MLP_INPUTS = "qkv"
IOI_EMBED_TO_LOGITS = True

# acdc/greaterthan/utils.py:221-229: the groups (None for an MLP).
GT_GROUPS: dict[str, list[tuple[int, Optional[int]]]] = {
    "0305": [(0, 3), (0, 5)],
    "01": [(0, 1)],
    "MEARLY": [(0, None), (1, None), (2, None), (3, None)],
    "AMID": [(5, 5), (6, 1), (6, 9), (7, 10), (8, 11), (9, 1)],
    "MLATE": [(8, None), (9, None), (10, None), (11, None)],
}
GT_FROM_EMBED = ["0305", "01", "MEARLY"]  # :265-271, into q, k and v of a head
GT_TO_LOGITS = ["AMID", "MLATE"]  # :273-278
GT_MLP_GROUPS_CONNECT_FORWARD = ["MEARLY", "MLATE"]  # :280-286
# :241-247, each expanded over every pair that can exist, into q, k and v of a head (:288-296).
GT_CONNECTED_PAIRS = [("01", "MEARLY"), ("01", "AMID"), ("0305", "AMID"), ("MEARLY", "AMID"), ("AMID", "MLATE")]
GT_CLEAN_QUERY_HEADS = "AMID"  # :309-320: MLPs 0..8 forward among themselves; every MLP below an AMID head into its q


# ---------------------------------------------------------------------------------------------------------
# Expanding the rules (own code: a head reads layers below it; an MLP reads its own layer's heads and below).


def head_key(layer: int, head: int) -> str:
    return f"a{layer}.{head}"


def layer_of(key: str) -> int:
    return int(key[1:].split(".")[0])


def head_reads(src: str, dst_head: str) -> bool:
    return src == "embed" or layer_of(src) < layer_of(dst_head)


def mlp_reads(src: str, dst_mlp: str) -> bool:
    if src == "embed":
        return True
    src_layer, dst_layer = layer_of(src), layer_of(dst_mlp)
    return src_layer < dst_layer or (src_layer == dst_layer and src.startswith("a"))


def into_head(srcs: list[str], heads: list[str], inputs: str) -> set[str]:
    return {f"{s}->{h}.{i}" for s in srcs for h in heads for i in inputs if head_reads(s, h)}


def into_mlp(srcs: list[str], mlps: list[str]) -> set[str]:
    return {f"{s}->{m}" for s in srcs for m in mlps if s != m and mlp_reads(s, m)}


def ioi_expected() -> set[str]:
    classes = {name: [f"a{h}" for h in heads] for name, heads in IOI_CLASSES.items()}
    all_heads = [h for heads in classes.values() for h in heads]
    edges: set[str] = set()
    for sender, receiver, inputs in IOI_CONNECTIONS:
        srcs = ["embed"] if sender == "INPUT" else classes[sender]
        if receiver == "OUTPUT":
            edges |= {f"{s}->logits" for s in srcs}
        else:
            edges |= into_head(srcs, classes[receiver], inputs)
    edges |= into_mlp(["embed", *MLPS, *all_heads], MLPS)
    edges |= into_head(MLPS, all_heads, IOI_MLP_INPUTS)
    edges |= {f"{m}->logits" for m in MLPS}
    if IOI_EMBED_TO_LOGITS:
        edges.add("embed->logits")
    return edges


def gt_keys(group: str) -> list[str]:
    return [f"m{layer}" if head is None else head_key(layer, head) for layer, head in GT_GROUPS[group]]


def gt_into(srcs: list[str], dsts: list[str], head_inputs: str = "qkv") -> set[str]:
    heads = [d for d in dsts if d.startswith("a")]
    mlps = [d for d in dsts if d.startswith("m")]
    return into_head(srcs, heads, head_inputs) | into_mlp(srcs, mlps)


def gt_expected() -> set[str]:
    edges: set[str] = set()
    for group in GT_FROM_EMBED:
        edges |= gt_into(["embed"], gt_keys(group))
    for group in GT_TO_LOGITS:
        edges |= {f"{k}->logits" for k in gt_keys(group)}
    for group in GT_MLP_GROUPS_CONNECT_FORWARD:
        edges |= gt_into(gt_keys(group), gt_keys(group))
    for sender, receiver in GT_CONNECTED_PAIRS:
        edges |= gt_into(gt_keys(sender), gt_keys(receiver))
    mid_heads = gt_keys(GT_CLEAN_QUERY_HEADS)
    last = max(layer_of(h) for h in mid_heads)  # 9: MLPs 0..8 sit below some mid head
    query_mlps = [f"m{layer}" for layer in range(last)]
    edges |= into_mlp(query_mlps, query_mlps)
    edges |= into_head(query_mlps, mid_heads, "q")
    return edges


def compare(name: str, expected: set[str]) -> None:
    got = [e.key for e in load_reference(name).edges]
    assert len(got) == len(set(got)), f"{name} lists an edge twice"
    missing, extra = sorted(expected - set(got)), sorted(set(got) - expected)
    assert not missing and not extra, f"{name}: missing {len(missing)} {missing[:20]}; extra {len(extra)} {extra[:20]}"


# ---------------------------------------------------------------------------------------------------------


def test_ioi_edges_are_acdc_ground_truth_edge_by_edge() -> None:
    compare("ioi-wang2022", ioi_expected())


def test_greater_than_edges_are_acdc_ground_truth_edge_by_edge() -> None:
    compare("greater-than-hanna2023", gt_expected())


def test_edge_counts_match_the_acdc_code() -> None:
    # Counted by running the ACDC functions (acdc/ioi/utils.py get_ioi_true_edges, acdc/greaterthan/utils.py
    # get_greaterthan_true_edges) on GPT-2 small's graph and translating hooks into this project's vocabulary.
    ioi = load_reference("ioi-wang2022")
    gt = load_reference("greater-than-hanna2023")
    assert len(ioi_expected()) == len(ioi.edges) == 963
    assert len(gt_expected()) == len(gt.edges) == 235
    ioi_keys = {e.key for e in ioi.edges}
    touch_mlp = {k for k in ioi_keys if any(part.startswith("m") for part in k.split("->"))}
    # 182 class-connection edges (45 from embed, 124 between heads, 13 into logits), 780 MLP edges, embed->logits.
    assert (len(ioi_keys - touch_mlp - {"embed->logits"}), len(touch_mlp)) == (182, 780)
    assert "embed->logits" in ioi_keys and "embed->logits" not in {e.key for e in gt.edges}
    # ACDC's in-component edges (q/k/v input -> q/k/v -> result; mlp_in -> mlp_out) are recorded, not expanded.
    assert ioi.metadata["acdc_edge_counts"]["residual"] == 963
    assert ioi.metadata["acdc_edge_counts"]["in_component"] == 168 == 26 * 6 + 12
    assert gt.metadata["acdc_edge_counts"]["residual"] == 235
    assert gt.metadata["acdc_edge_counts"]["in_component"] == 54 == 9 * 6
    assert not any(e.dst == e.src for e in [*ioi.edges, *gt.edges])


def test_ioi_mlps_connect_everything_in_the_circuit() -> None:
    ioi = load_reference("ioi-wang2022")
    assert {n.key for n in ioi.nodes if n.kind == "mlp"} == set(MLPS)
    edges = {e.key for e in ioi.edges}
    # Every MLP enters q, k and v of every circuit head above it, whatever the class connection's inputs.
    assert {"m0->a2.2.q", "m3->a5.5.q", "m4->a5.5.k", "m8->a9.9.k", "m10->a11.10.v"} <= edges
    assert "a2.2->a5.5.q" not in edges  # the head->head connection still enters k and v only
    # Heads feed their own layer's MLP and above; MLPs feed later MLPs and logits; nothing runs backwards.
    assert {"a9.9->m9", "a0.1->m0", "a11.10->m11", "m0->m11", "embed->m11", "m11->logits"} <= edges
    assert not {"m9->a9.9.q", "a9.9->m8", "m5->m5", "m5->m4", "a0.2->m0"} & edges
    mlp_nodes = [n for n in ioi.nodes if n.kind == "mlp"]
    assert all(n.role is None and n.attributes["group"] == "MLPs" for n in mlp_nodes)


def test_greater_than_clean_query_block() -> None:
    gt = load_reference("greater-than-hanna2023")
    assert {n.key for n in gt.nodes if n.kind == "mlp"} == set(MLPS)
    edges = {e.key for e in gt.edges}
    # MLPs 0..8 connect forward among themselves, but MLPs 4..7 reach the late MLPs only through m8.
    assert {"m0->m8", "m4->m5", "m7->m8", "m3->m4"} <= edges and not {"m4->m9", "m7->m9", "m8->m7"} & edges
    # Every MLP below a mid head enters its query; only the early MLPs also enter k and v.
    assert {"m4->a5.5.q", "m8->a9.1.q", "m7->a8.11.q", "m3->a5.5.k"} <= edges
    assert not {"m4->a5.5.k", "m4->a6.1.v", "m8->a9.1.k", "m8->a8.11.q", "m5->a5.5.q"} & edges
    # 0.3 and 0.5 feed only the mid heads; only the mid heads and late MLPs feed logits.
    assert not {"a0.3->m0", "a0.5->m3", "m3->logits", "a0.1->logits"} & edges


def test_evaluation_defaults_say_how_each_paper_evaluated() -> None:
    ioi = load_reference("ioi-wang2022").metadata["evaluation"]
    keys = ("ablation", "corruption", "level")
    assert {k: ioi[k] for k in keys} == {"ablation": "mean", "corruption": "abc", "level": "nodes"}
    assert "MLPs kept" in ioi["note"]
    gt = load_reference("greater-than-hanna2023").metadata["evaluation"]
    assert {k: gt[k] for k in keys} == {"ablation": "patch", "corruption": "01", "level": "edges"}
    assert "01" in gt["note"]


@pytest.mark.parametrize("name", ["ioi-wang2022", "greater-than-hanna2023"])
def test_edges_note_cites_the_code_lines(name: str) -> None:
    meta = load_reference(name).metadata
    utils = "acdc/ioi/utils.py:" if name == "ioi-wang2022" else "acdc/greaterthan/utils.py:"
    assert utils in meta["edges_note"] and "in-component" in meta["edges_note"]
    assert all("cites" in c for c in meta["connections"])


def test_successor_says_which_paper_each_number_comes_from() -> None:
    successor = load_reference("successor-gould2023")
    (head,) = [n for n in successor.nodes if n.kind == "head"]
    assert head.role_score == 0.874 == head.attributes["ov_successor_top5_accuracy"]["digits"]
    assert head.attributes["role_from"] == "gould2023" and head.attributes["role_score_from"] == "lan2023"
    assert "Lan et al." in (head.role_note or "") and "Gould et al." in (head.role_note or "")
    assert "Lan et al." in (successor.description or "")
