"""EAP-IG's graph JSON (hannamw/EAP-IG ``Graph.to_json`` / ``from_json``), read and written.

This is the file MIB's circuit-localization track takes (Mueller et al. 2025, arXiv 2504.13151)::

    {"cfg":   {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": false, "d_model": 768},
     "nodes": {"input": {"in_graph": true}, "a9.h1": {"in_graph": true, "score": 0.4}, ..., "logits": {...}},
     "edges": {"input->a9.h1<q>": {"score": 0.12, "in_graph": true}, "a9.h1->logits": {...}, ...}}

Node names are ``input``, ``a{L}.h{H}``, ``m{L}``, ``logits``; an edge into a head names its input in
angle brackets. Older EAP-IG writes a node as a bare boolean (its ``in_graph``); both are read.

Reading: every edge in the file becomes an edge record (``kept`` = ``in_graph``), so a full 32,491-edge
MIB submission keeps all its scores. A NaN score means "not scored" in EAP-IG and is read as no score. A
node is kept when the file says so or when a kept edge touches it (files written without EAP-IG's
``prune`` can have a kept edge on a node marked out). Neuron-level graphs are refused: the catalog keeps
components, not neurons. The ``cfg`` is kept in ``metadata["eap_ig_cfg"]`` so a re-export writes it back.

Scores' sign. MIB's files hold EAP-IG scores of the logit difference taken as a loss (MIB
``run_attribution.py`` lines 85-86), so a score estimates loss(edge patched) - loss(model); imports keep them
so, recorded as ``score_sign: "loss"``. A circuit whose scores are metric changes (``score_sign: "metric"``:
this project's EAP, EAP-IG and path patching) is written with each score negated when its metric is one where
higher is better, so that MIB ranks it as EAP-IG's own files.

Writing: every edge the circuit has a record for (every scored edge of a discovered circuit), with ``in_graph``
= kept, and every node it lists (or an edge touches). An edge stored without a score is written with score 1.0
when kept and 0.0 when not, because EAP-IG needs a number and MIB cuts circuits by score: this keeps a
published circuit's edges on top of any cut. The config comes from ``metadata["eap_ig_cfg"]``, else the
model's known shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

from catalog.errors import InvalidCircuit
from catalog.formats.common import (
    assemble,
    declared_shape,
    expect_bool,
    expect_object,
    expect_score,
    known_config,
    model_config,
)
from catalog.records import CircuitLike, EdgeRecord, NewCircuit, NodeRecord
from discovery.graph import (
    ComponentGraph,
    Granularity,
    InvalidKey,
    ModelShape,
    eap_ig_edge_name,
    eap_ig_node_name,
    parse_edge,
    parse_node,
    with_logits_layer,
)
from discovery.names import METRIC_SPECS

FORMAT = "eap-ig"
_NEURON_FIELDS = ("neurons", "neurons_scores")


# ---------------------------------------------------------------------------------------------------------
# Reading


def read_eap_ig(data: Any, *, name: str, model: str, task: Optional[str] = None,
                shape: Optional[Mapping[str, int]] = None) -> NewCircuit:
    """``shape``: the named model's, when known (else GPT-2 sizes by name): the file's ``cfg`` must agree."""
    top = expect_object(data, "file")
    for key in ("cfg", "nodes", "edges"):
        if key not in top:
            raise InvalidCircuit(f"file: missing field {key!r} (an EAP-IG graph has cfg, nodes and edges)")
    cfg = expect_object(top["cfg"], "cfg")
    if cfg.get("parallel_attn_mlp", False) is not False:
        raise InvalidCircuit("cfg.parallel_attn_mlp: a parallel-attention model's graph (no head feeds its own "
                             "layer's MLP) is not GPT-2's, the one graph this catalog keeps")
    declared = declared_shape(cfg, "cfg", model, shape or known_config(model))
    graph = ComponentGraph(ModelShape(declared["n_layers"], declared["n_heads"]), Granularity.QKV)
    nodes = [_read_node(k, v, graph) for k, v in expect_object(top["nodes"], "nodes").items()]
    edges = [_read_edge(k, v, graph) for k, v in expect_object(top["edges"], "edges").items()]
    # Scores are kept as the file has them; MIB's are a loss's (run_attribution.py: logit difference, loss=True).
    metadata = {"imported_from": FORMAT, "eap_ig_cfg": dict(cfg), "model_shape": declared, "score_sign": "loss"}
    return assemble(
        name=name, model=model, task=task, nodes=nodes, edges=edges, edges_known=True, metadata=metadata
    )


def _read_node(key: str, value: Any, graph: ComponentGraph) -> NodeRecord:
    where = f"nodes[{key!r}]"
    if isinstance(value, bool):
        in_graph, score = value, None
    else:
        obj = expect_object(value, where)
        if any(f in obj for f in _NEURON_FIELDS):
            raise InvalidCircuit(f"{where}: neuron-level EAP-IG graphs are not supported (the catalog keeps components)")
        if "in_graph" not in obj:
            raise InvalidCircuit(f"{where}: missing field 'in_graph'")
        in_graph = expect_bool(obj["in_graph"], f"{where}.in_graph")
        score = _no_nan(expect_score(obj.get("score"), f"{where}.score"))
    try:
        node = graph.check_node(parse_node(key, graph.shape.n_layers))
    except InvalidKey as err:
        raise InvalidCircuit(f"{where}: {err}") from None
    return NodeRecord.from_key(node.key, score=score, kept=in_graph)


def _read_edge(key: str, value: Any, graph: ComponentGraph) -> EdgeRecord:
    where = f"edges[{key!r}]"
    obj = expect_object(value, where)
    for field in ("score", "in_graph"):
        if field not in obj:
            raise InvalidCircuit(f"{where}: missing field {field!r}")
    try:
        edge = parse_edge(key, graph.shape.n_layers)
        graph.check_node(edge.src)
        graph.check_node(edge.dst)
    except InvalidKey as err:
        raise InvalidCircuit(f"{where}: {err}") from None
    if not graph.contains(edge):
        raise InvalidCircuit(f"{where}: not an edge of a {graph.shape.n_layers}x{graph.shape.n_heads} model's graph")
    score = _no_nan(expect_score(obj["score"], f"{where}.score"))
    return EdgeRecord.from_edge(edge, score=score, kept=expect_bool(obj["in_graph"], f"{where}.in_graph"))


def _no_nan(score: Optional[float]) -> Optional[float]:
    return None if score is not None and math.isnan(score) else score


# ---------------------------------------------------------------------------------------------------------
# Writing


def write_eap_ig(circuit: CircuitLike) -> dict[str, Any]:
    if not circuit.edges_known:
        raise InvalidCircuit(
            f"circuit {circuit.name!r} is known only by its nodes: EAP-IG files are edge graphs (use --to native)"
        )
    cfg = _config(circuit)
    n_layers = cfg["n_layers"]
    nodes = {n.key: n for n in circuit.nodes}
    sign = loss_sign(circuit)
    edges_out: dict[str, dict[str, Any]] = {}
    for e in sorted(circuit.edges, key=lambda e: parse_edge(e.key).order):
        try:
            name = eap_ig_edge_name(parse_edge(e.key, n_layers))
        except InvalidKey as err:
            raise InvalidCircuit(str(err)) from None
        edges_out[name] = {"score": _edge_score(e, sign), "in_graph": e.kept}
    touched = {k for e in circuit.edges if e.kept for k in (e.src, e.dst)}
    keys = set(nodes) | {k for e in circuit.edges for k in (e.src, e.dst)} | {"embed", "logits"}
    nodes_out: dict[str, dict[str, Any]] = {}
    for key in sorted(keys, key=lambda k: parse_node(k).order):
        record = nodes.get(key)
        entry: dict[str, Any] = {"in_graph": key == "logits" or (record.kept if record else key in touched)}
        if record is not None and record.score is not None:
            entry["score"] = record.score
        nodes_out[eap_ig_node_name(with_logits_layer(parse_node(key), n_layers))] = entry
    return {"cfg": cfg, "nodes": nodes_out, "edges": edges_out}


def _edge_score(e: EdgeRecord, sign: float) -> float:
    if e.score is None:
        return 1.0 if e.kept else 0.0
    return sign * e.score


def loss_sign(circuit: CircuitLike) -> float:
    """-1 where a circuit's scores are changes of a metric for which higher is better (see the module docstring)."""
    if circuit.metadata.get("score_sign") != "metric":
        return 1.0
    metric = circuit.metadata.get("metric")
    spec = METRIC_SPECS.get(metric) if isinstance(metric, str) else None
    return -1.0 if spec is not None and spec.higher_is_better else 1.0


def _config(circuit: CircuitLike) -> dict[str, Any]:
    stored = circuit.metadata.get("eap_ig_cfg")
    if isinstance(stored, dict) and isinstance(stored.get("n_layers"), int) and isinstance(stored.get("n_heads"), int):
        return dict(stored)
    known = model_config(circuit.model, circuit.metadata)
    if not known or "d_model" not in known:
        raise InvalidCircuit(
            f"cannot write an EAP-IG config for model {circuit.model!r}: its n_layers, n_heads and d_model are "
            "unknown (store them in the circuit's metadata as model_shape)"
        )
    return {
        "n_layers": known["n_layers"],
        "n_heads": known["n_heads"],
        "parallel_attn_mlp": False,
        "d_model": known["d_model"],
    }
