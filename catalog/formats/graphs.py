"""Circuits as graph files that graph tools open: GraphML (yEd, Cytoscape, Gephi, networkx), GEXF (Gephi) and
Cytoscape.js JSON (Cytoscape desktop's ``.cyjs``, Cytoscape.js ``elements``).

Each file holds the whole circuit, losslessly: ``circuits export C --to graphml`` then ``circuits import F --from
graphml`` gives back the same circuit (tested). The graph is ``catalog.graphs.to_networkx(circuit,
kept_only=False)``: every listed node and every stored edge, with ``kept`` saying which are in the circuit, so a
viewer can filter on it. What the formats cannot hold directly is encoded, the same way in all three:

* a missing value (None) is left out;
* maps (the circuit's ``performance`` and ``metadata``, a node's ``attributes``) are JSON text;
* each edge's id is its canonical key (``a0.1->a3.2.q``); ``input`` is ``q``/``k``/``v`` or absent;
* non-finite scores are GraphML/GEXF doubles (``NaN``, ``INF``) and, in JSON, the native format's strings
  (``"nan"``, ``"inf"``, ``"-inf"``);
* the circuit's own fields are GraphML graph data, a JSON object in GEXF's ``<meta><description>`` (GEXF has no
  graph attributes), and the Cytoscape file's top-level ``data``.

Nodes also carry ``kind``, ``layer`` and ``head`` (and, in Cytoscape, a layered ``position``) for viewers to
colour and place by; they follow from the key, and reading ignores them. Reading goes through the native
format's strict reader (``catalog.graphs.from_networkx``), so a hostile or malformed file is refused with the
reason; XML is parsed by expat, which refuses entity-expansion bombs, and files are size-capped as JSON ones.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import networkx as nx

from catalog.errors import InvalidCircuit
from catalog.formats.common import MAX_FILE_BYTES, load_json
from catalog.graphs import CIRCUIT_FIELDS, from_networkx, to_networkx
from catalog.records import CircuitLike, NewCircuit
from discovery.graph import edge_key
from discovery.jsonvalues import to_json

GRAPH_FORMATS = ("graphml", "gexf", "cytoscape")
_JSON_FIELDS = ("performance", "metadata", "attributes")  # maps, held as JSON text
_VIEWER_FIELDS = ("kind", "layer", "head", "label")  # for viewers only; follow from the key
_GEXF_NS = "http://www.gexf.net/1.2draft"
_CYTOSCAPE_VERSION = "1.0"


def write_graph_text(circuit: CircuitLike, fmt: str) -> str:
    """The circuit as the text of a ``fmt`` file; the same circuit always gives the same text."""
    g = _file_graph(circuit)
    if fmt == "graphml":
        buffer = io.BytesIO()
        nx.write_graphml(g, buffer, named_key_ids=True)
        return buffer.getvalue().decode("utf-8")
    if fmt == "gexf":
        return _gexf_text(g, {f: _decode(f, g.graph[f]) for f in CIRCUIT_FIELDS if f in g.graph})
    if fmt == "cytoscape":
        return json.dumps(_cytoscape(circuit), indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    raise InvalidCircuit(f"unknown graph format {fmt!r}: use one of {', '.join(GRAPH_FORMATS)}")


def read_graph_file(path: Union[str, Path], fmt: str) -> NewCircuit:
    """The circuit a ``fmt`` file holds; ``InvalidCircuit`` (starting with the file's name) if it cannot be read."""
    try:
        if fmt == "cytoscape":
            return _read_cytoscape(load_json(path))
        data = _read_bytes(path)
        if fmt == "graphml":
            return from_networkx(_memory_graph(_parse(nx.parse_graphml, data, "GraphML"), {}))
        if fmt == "gexf":
            return from_networkx(_memory_graph(_parse(_gexf_graph, data, "GEXF"), _gexf_fields(data)))
    except InvalidCircuit as err:
        message = str(err)
        raise InvalidCircuit(message if message.startswith(str(path)) else f"{path}: {message}") from None
    raise InvalidCircuit(f"unknown graph format {fmt!r}: use one of {', '.join(GRAPH_FORMATS)}")


# ---------------------------------------------------------------------------------------------------------
# The file graph: what GraphML and GEXF hold


def _file_graph(circuit: CircuitLike) -> nx.MultiDiGraph:
    memory = to_networkx(circuit, kept_only=False)
    g = nx.MultiDiGraph()
    g.graph.update({f: _encode(f, v) for f, v in memory.graph.items() if v is not None})
    for key, data in memory.nodes(data=True):
        g.add_node(key, **{f: _encode(f, v) for f, v in data.items() if v is not None})
    for src, dst, data in memory.edges(data=True):
        g.add_edge(src, dst, key=edge_key(src, dst, data["input"]),
                   **{f: v for f, v in data.items() if v is not None})
    return g


def _encode(field: str, value: Any) -> Any:
    if field not in _JSON_FIELDS:
        return value
    return json.dumps(to_json(value), sort_keys=True, ensure_ascii=False, allow_nan=False)  # "inf", not Infinity


def _memory_graph(g: nx.Graph, fields: Mapping[str, Any]) -> nx.MultiDiGraph:
    """A file graph decoded into ``to_networkx``'s form (maps parsed, viewer fields dropped, edges keyed by input)."""
    if not g.is_directed():
        raise InvalidCircuit("the graph is undirected: a circuit's edges have a direction")
    out = nx.MultiDiGraph()
    out.graph.update({f: _decode(f, v) for f, v in {**g.graph, **fields}.items() if f not in _READER_FIELDS})
    for key, data in g.nodes(data=True):
        out.add_node(str(key), **{f: _decode(f, v) for f, v in data.items() if f not in _VIEWER_FIELDS})
    for src, dst, data in g.edges(data=True):
        fields_ = {f: v for f, v in data.items() if f not in ("id", "networkx_key")}
        out.add_edge(str(src), str(dst), key=fields_.get("input") or "", **fields_)
    return out


# What networkx's readers add to a graph that is not the circuit's.
_READER_FIELDS = ("node_default", "edge_default", "mode", "name_gexf")


def _decode(field: str, value: Any) -> Any:
    if field in _JSON_FIELDS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise InvalidCircuit(f"{field}: expected JSON text, got {value[:40]!r}") from None
    return value


def _read_bytes(path: Union[str, Path]) -> bytes:
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidCircuit(f"the file is {size:,} bytes, more than the {MAX_FILE_BYTES:,} a circuit file may be")
        return Path(path).read_bytes()
    except OSError as err:
        raise InvalidCircuit(f"cannot read the file: {err.strerror or err}") from None


def _parse(parser: Any, data: bytes, what: str) -> nx.Graph:
    try:
        return parser(data)
    except InvalidCircuit:
        raise
    except Exception as err:  # networkx and expat raise many types for a bad file
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InvalidCircuit(f"not a {what} file networkx can read: {text}") from None


# ---------------------------------------------------------------------------------------------------------
# GEXF: the circuit's fields in <meta><description>


def _gexf_text(g: nx.MultiDiGraph, fields: Mapping[str, Any]) -> str:
    ET.register_namespace("", _GEXF_NS)
    ET.register_namespace("xsi", "http://www.w3.org/2001/XMLSchema-instance")
    root = ET.fromstring("\n".join(nx.generate_gexf(g)))
    meta = root.find(f"{{{_GEXF_NS}}}meta")
    assert meta is not None  # networkx always writes one
    meta.attrib.pop("lastmodifieddate", None)  # today's date would make two exports of one circuit differ
    for child in list(meta):
        meta.remove(child)
    ET.SubElement(meta, f"{{{_GEXF_NS}}}creator").text = "circuit-catalog"
    description = ET.SubElement(meta, f"{{{_GEXF_NS}}}description")
    description.text = json.dumps(dict(fields), sort_keys=True, ensure_ascii=False)
    ET.indent(root, space="  ")
    return "<?xml version='1.0' encoding='utf-8'?>\n" + ET.tostring(root, encoding="unicode") + "\n"


def _gexf_graph(data: bytes) -> nx.Graph:
    return nx.read_gexf(io.BytesIO(data))


def _gexf_fields(data: bytes) -> dict[str, Any]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise InvalidCircuit(f"not a GEXF file networkx can read: {err}") from None
    description = root.find(f"{{{_GEXF_NS}}}meta/{{{_GEXF_NS}}}description")
    if description is None or not (description.text or "").strip():
        raise InvalidCircuit("the GEXF file has no circuit fields in <meta><description> (was it written by "
                             "circuits export?)")
    try:
        fields = json.loads(description.text or "")
    except ValueError:
        raise InvalidCircuit("<meta><description> is not the circuit's fields as JSON") from None
    if not isinstance(fields, dict):
        raise InvalidCircuit("<meta><description> must be a JSON object of the circuit's fields")
    return {k: json.dumps(v) if k in _JSON_FIELDS else v for k, v in fields.items()}


# ---------------------------------------------------------------------------------------------------------
# Cytoscape.js JSON


def _cytoscape(circuit: CircuitLike) -> dict[str, Any]:
    memory = to_networkx(circuit, kept_only=False)
    top = 2 + max((d["layer"] for _, d in memory.nodes(data=True) if d.get("layer") is not None), default=0)
    nodes = []
    for key, data in memory.nodes(data=True):
        node = {"id": key, "name": key, **{f: to_json(v) for f, v in data.items() if v is not None}}
        nodes.append({"data": node, "position": _position(data, top)})
    edges = []
    for src, dst, data in memory.edges(data=True):
        edge = {"id": edge_key(src, dst, data["input"]), "source": src, "target": dst}
        edges.append({"data": {**edge, **{f: to_json(v) for f, v in data.items() if v is not None}}})
    fields = {f: to_json(v) for f, v in memory.graph.items() if v is not None}
    return {"format_version": _CYTOSCAPE_VERSION, "generated_by": "circuit-catalog", "data": fields,
            "elements": {"nodes": nodes, "edges": edges}}


def _position(data: Mapping[str, Any], top: int) -> dict[str, float]:
    """Layered: embed at the bottom, logits on top (row ``top``), a layer's heads side by side, its MLP right."""
    if data["kind"] == "embed":
        return {"x": 0.0, "y": 0.0}
    if data["kind"] == "logits":
        return {"x": 0.0, "y": -100.0 * top}
    x = 60.0 * (data["head"] if data["kind"] == "head" else _MLP_COLUMN)
    return {"x": x, "y": -100.0 * (int(data["layer"]) + 1)}


_MLP_COLUMN = 26  # right of the heads of any model this project draws (GPT-2 XL has 25)


def _read_cytoscape(data: Any) -> NewCircuit:
    if not isinstance(data, dict) or not isinstance(data.get("elements"), dict):
        raise InvalidCircuit("not a Cytoscape.js file: expected an object with 'elements'")
    elements = data["elements"]
    g = nx.MultiDiGraph()
    fields = data.get("data", {})
    if not isinstance(fields, dict):
        raise InvalidCircuit("data: expected an object of the circuit's fields")
    g.graph.update(fields)
    for i, item in enumerate(_items(elements, "nodes")):
        node = {f: v for f, v in item.items() if f not in ("id", "name", *_VIEWER_FIELDS)}
        g.add_node(_text(item.get("id"), f"elements.nodes[{i}].data.id"), **node)
    for i, item in enumerate(_items(elements, "edges")):
        where = f"elements.edges[{i}].data"
        edge = {f: v for f, v in item.items() if f not in ("id", "source", "target")}
        src, dst = _text(item.get("source"), f"{where}.source"), _text(item.get("target"), f"{where}.target")
        for end in (src, dst):
            if end not in g:
                raise InvalidCircuit(f"{where}: edge to {end!r}, which the file does not list as a node")
        g.add_edge(src, dst, key=edge.get("input") or "", **edge)
    return from_networkx(g)


def _items(elements: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    items = elements.get(kind, [])
    if not isinstance(items, list):
        raise InvalidCircuit(f"elements.{kind}: expected a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            raise InvalidCircuit(f"elements.{kind}[{i}]: expected an object with 'data'")
        out.append(item["data"])
    return out


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidCircuit(f"{where}: expected a node key, got {value!r}")
    return value
