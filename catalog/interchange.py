"""Circuit files in and out: the catalog's own JSON format, and readers and writers for other tools' files.

The native format (``--to native`` / ``--from native``), version 1::

    {
      "format": "circuit-catalog",            # required, exactly this
      "version": 1,                           # required; a newer version than this code reads is refused
      "circuit": {
        "name": "ioi-wang2022",               # required
        "model": "gpt2",                      # required
        "task": "ioi",                        # optional fields below default to null / {} / false
        "source": "published",                # discovered | published | imported (default imported)
        "edges_known": true,                  # false: the source lists nodes only (default: edges given)
        "citation": "...", "description": "...", "method": "acdc",
        "threshold": 0.05,
        "performance": {"logit_diff_recovered": 0.81},
        "metadata": {...}                     # any JSON: sources, notes, model_shape {n_layers, n_heads, d_model}
      },
      "nodes": [                              # required (may be empty)
        {"key": "a9.9", "score": 0.8, "kept": true, "role": "name mover",
         "role_score": null, "role_source": "paper", "role_note": null, "attributes": {}}
      ],
      "edges": [                              # optional
        {"src": "a8.6", "dst": "a9.9", "input": "q", "score": -0.3, "kept": true}
      ]
    }

Keys are the canonical ones of ``discovery.graph`` (``embed``, ``a{l}.{h}``, ``m{l}``, ``logits``; other
spellings such as ``9.9`` are read and stored canonically). Only ``key`` (nodes) and ``src``/``dst``
(edges) are required; ``kept`` defaults to true. Scores are numbers, null (not scored), or the strings
``"nan"``, ``"inf"``, ``"-inf"``, since JSON has no literal for them. A file is refused, with the reason,
for: an unknown or missing field, a wrong type, a key that is not a component or is outside the model's
shape (when known), a node or edge listed twice, an edge that cannot exist (from logits, backwards through
the layers, q/k/v on a non-head), an edge to a node the file does not list, a kept edge on a dropped node,
or edges on a circuit marked nodes-only. Exports carry every field in a fixed order, so exporting one
circuit twice gives identical files; database ids and timestamps are left out.

Other tools (each documented in its module under ``catalog/formats/``):

* ``eap-ig``: EAP-IG's graph JSON, read and written (the format MIB's circuit-localization track takes);
* ``auto-circuit``: edge names like ``A3.2->MLP 5`` with scores and/or a kept list;
* ``acdc``: edges between TransformerLens hooks, ``blocks.9.attn.hook_result[:, :, 1]``;
* ``seqcont``: Lan et al.'s ``{"heads": [[l, h]], "mlps": [l]}``, nodes only.

Graph tools (``catalog/formats/graphs.py``), read and written losslessly: ``graphml`` (yEd, Cytoscape, Gephi,
networkx), ``gexf`` (Gephi) and ``cytoscape`` (Cytoscape.js JSON, Cytoscape desktop's ``.cyjs``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Union

from catalog.errors import InvalidCircuit
from catalog.formats.acdc import read_acdc
from catalog.formats.auto_circuit import read_auto_circuit
from catalog.formats.common import load_json, validate
from catalog.formats.eap_ig import read_eap_ig, write_eap_ig
from catalog.formats.graphs import GRAPH_FORMATS, read_graph_file, write_graph_text
from catalog.formats.native import as_new_circuit, export_circuit, import_circuit
from catalog.formats.seqcont import read_seqcont
from catalog.records import CircuitLike, NewCircuit
from discovery.files import write_text_atomic

__all__ = [
    "READ_FORMATS",
    "WRITE_FORMATS",
    "DEFAULT_MODEL",
    "as_new_circuit",
    "export_circuit",
    "import_circuit",
    "read_circuit",
    "read_circuit_file",
    "write_circuit",
    "write_circuit_file",
]

ForeignReader = Callable[..., NewCircuit]

# Other tools' files do not say which model they are about; GPT-2 small is what the field publishes on.
DEFAULT_MODEL = "gpt2"

_FOREIGN_READERS: dict[str, ForeignReader] = {
    "eap-ig": read_eap_ig,
    "auto-circuit": read_auto_circuit,
    "acdc": read_acdc,
    "seqcont": read_seqcont,
}
_WRITERS: dict[str, Callable[[CircuitLike], dict[str, Any]]] = {"native": export_circuit, "eap-ig": write_eap_ig}

READ_FORMATS: tuple[str, ...] = ("native", *_FOREIGN_READERS, *GRAPH_FORMATS)
WRITE_FORMATS: tuple[str, ...] = (*_WRITERS, *GRAPH_FORMATS)


def read_circuit(
    data: Any,
    fmt: str = "native",
    *,
    name: Optional[str] = None,
    model: Optional[str] = None,
    task: Optional[str] = None,
    shape: Optional[Mapping[str, int]] = None,
) -> NewCircuit:
    """A checked circuit from parsed JSON in format ``fmt``.

    For the native format ``name``/``model``/``task`` override the file's; other formats carry none of
    them, so ``name`` is required and ``model`` defaults to ``DEFAULT_MODEL``. ``shape`` is the named model's
    (n_layers, n_heads, d_model) where the catalog knows it: a file must fit it (GPT-2's sizes are known by name).
    """
    if fmt == "native":
        circuit = import_circuit(data)
        if name is None and model is None and task is None:
            return circuit
        return validate(
            replace(circuit, name=name or circuit.name, model=model or circuit.model, task=task or circuit.task)
        )
    reader = _FOREIGN_READERS.get(fmt)
    if reader is None:
        raise InvalidCircuit(f"unknown format {fmt!r}: use one of {', '.join(READ_FORMATS)}")
    if not name:
        raise InvalidCircuit(f"a {fmt} file does not name its circuit: give a name")
    model = model or DEFAULT_MODEL
    if fmt == "eap-ig":
        return read_eap_ig(data, name=name, model=model, task=task, shape=shape)
    circuit = reader(data, name=name, model=model, task=task)
    if shape and "model_shape" not in circuit.metadata:  # check its nodes against the model's shape too
        circuit = validate(replace(circuit, metadata={**circuit.metadata, "model_shape": dict(shape)}))
    return circuit


def read_circuit_file(path: Union[str, Path], fmt: str = "native", **overrides: Any) -> NewCircuit:
    """Like ``read_circuit`` on a file; every message starts with the file's name. A graph file (GraphML, GEXF,
    Cytoscape) carries its circuit's fields as the native format does; ``overrides`` replace them."""
    if fmt in GRAPH_FORMATS:
        circuit = read_graph_file(path, fmt)
        given = {k: v for k, v in overrides.items() if k in ("name", "model", "task") and v}
        return validate(replace(circuit, **given)) if given else circuit
    try:
        return read_circuit(load_json(path), fmt, **overrides)
    except InvalidCircuit as err:
        message = str(err)
        raise InvalidCircuit(message if message.startswith(str(path)) else f"{path}: {message}") from None


def write_circuit(circuit: CircuitLike, fmt: str = "native") -> dict[str, Any]:
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise InvalidCircuit(f"unknown format {fmt!r}: use one of {', '.join(WRITE_FORMATS)}")
    return writer(circuit)


def write_circuit_file(circuit: CircuitLike, path: Union[str, Path], fmt: str = "native") -> None:
    """Fixed-order JSON with a trailing newline, so the same circuit always gives the same bytes; written whole or
    not at all (``discovery.files``).

    EAP-IG files may hold NaN scores as Python's ``NaN`` literal, which EAP-IG's own reader expects; the
    native format spells them as strings, so a non-finite number left there (in metadata) is refused.
    """
    if fmt in GRAPH_FORMATS:
        write_text_atomic(path, write_graph_text(circuit, fmt))
        return
    try:
        text = json.dumps(write_circuit(circuit, fmt), indent=2, ensure_ascii=False, allow_nan=fmt != "native")
    except ValueError as err:
        raise InvalidCircuit(f"cannot write circuit {circuit.name!r} as JSON: {err}") from None
    write_text_atomic(path, text + "\n")

