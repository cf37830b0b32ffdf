"""MIB's circuit-localization submission layout (Mueller et al. 2025, arXiv 2504.13151; hannamw/MIB-circuit-track).

MIB's README (lines 108-122) asks for one folder per task and model, named ``{task}_{model}`` (``ioi_gpt2``), holding
either (1) one file of importance scores for every edge, from which MIB cuts its circuits at each edge percentage
itself (``MIB_circuit_track/evaluation.py`` lines 31-43), or (2) binary circuits, one with at most each of
0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20 and 50 % of the edges. Both are EAP-IG graph JSON (``catalog.formats.eap_ig``),
with scores in MIB's loss sign.

``write_mib`` writes (1) as ``importances.json`` (the name MIB's ``run_attribution.py`` line 103 gives it) for a
circuit that carries a score for every edge of its model's graph, as MIB's evaluation ranks them all; with
``binary`` it writes (2) as ``edges_{percent}.json``, each the top edges by signed loss score (the ranking MIB's
CPR uses) cut by the one cut rule (``discovery.topology``). Folder names follow MIB's (``-`` for ``_`` in task names,
the model's short name) and stay inside the folder given.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Union

from catalog.errors import InvalidCircuit
from catalog.formats.common import model_config
from catalog.formats.eap_ig import loss_sign, write_eap_ig
from catalog.records import CircuitLike, NewCircuit
from discovery.files import inside, safe_name, write_text_atomic
from discovery.graph import ComponentGraph, ModelShape, parse_edge
from discovery.topology import cut, ranked

BINARY_PERCENTS = (0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)


def folder_name(circuit: CircuitLike) -> str:
    """``{task}_{model}`` as MIB names its folders: ``ioi_gpt2``, ``arc-easy_llama3``."""
    if not circuit.task:
        raise InvalidCircuit(f"circuit {circuit.name!r} names no task: MIB's folders are per task and model")
    model = circuit.model.rsplit("/", 1)[-1]
    return safe_name(f"{circuit.task.replace('_', '-')}_{model}")


def write_mib(circuit: CircuitLike, folder: Union[str, Path], *, binary: bool = False) -> list[Path]:
    """Write ``circuit`` into ``folder/{task}_{model}/`` (see the module docstring); returns the files written."""
    shape = model_config(circuit.model, circuit.metadata)
    if not shape:
        raise InvalidCircuit(f"the shape of model {circuit.model!r} is unknown, so its graph's edges cannot be counted")
    graph = ComponentGraph(ModelShape(shape["n_layers"], shape["n_heads"]))
    scored = {e.key: e.score for e in circuit.edges if e.score is not None and not math.isnan(e.score)}
    missing = graph.n_edges() - len(scored)
    if missing:
        raise InvalidCircuit(f"MIB ranks every edge of the graph: circuit {circuit.name!r} has scores for "
                             f"{len(scored)} of its {graph.n_edges()} edges")
    target = Path(folder) / folder_name(circuit)
    target.mkdir(parents=True, exist_ok=True)
    if not binary:
        return [_write(circuit, inside(target, "importances.json"))]
    sign = loss_sign(circuit)
    order = ranked([(parse_edge(k), sign * s) for k, s in scored.items()], graph.edges, "signed")
    paths = []
    for percent in BINARY_PERCENTS:
        kept = {e.key for e in cut(order, int(percent / 100 * graph.n_edges()))}
        edges = tuple(replace(e, kept=e.key in kept) for e in circuit.edges)
        touched = {"embed", "logits"} | {k for e in edges if e.kept for k in (e.src, e.dst)}
        nodes = tuple(replace(n, kept=n.key in touched) for n in circuit.nodes)
        cut_circuit = NewCircuit(name=circuit.name, model=circuit.model, task=circuit.task, source=circuit.source,
                                 nodes=nodes, edges=edges, edges_known=True, metadata=circuit.metadata)
        paths.append(_write(cut_circuit, inside(target, f"edges_{percent:g}.json")))
    return paths


def _write(circuit: CircuitLike, path: Path) -> Path:
    write_text_atomic(path, json.dumps(write_eap_ig(circuit), indent=1) + "\n")
    return path
