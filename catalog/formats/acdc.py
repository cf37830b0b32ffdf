"""ACDC's edges, named by TransformerLens hooks with an index (ArthurConmy/Automatic-Circuit-Discovery).

ACDC keys an edge by the receiving and sending hook, each with a ``TorchIndex`` that picks the head:
``blocks.9.attn.hook_result[:, :, 1]`` (head 9.1's output) into ``blocks.11.hook_resid_post[:]`` (the
logits). ACDC itself pickles its graph, so this reader accepts JSON of one of two shapes:

1. a list of ``[src_hook, dst_hook]`` or ``[src_hook, dst_hook, score]`` items -- the kept edges;
2. an object ``{"src_hook->dst_hook": score, ...}`` -- the kept edges with their scores (null for none).

Sources: ``blocks.0.hook_resid_pre`` (or ``hook_embed``) is embed, ``blocks.L.attn.hook_result[:, :, H]``
head L.H, ``blocks.L.hook_mlp_out`` MLP L. A graph made with ``use_pos_embed`` (ACDC's tracr runs;
``TLACDCCorrespondence.py`` lines 201-212) has two embedding sources, ``hook_embed`` (tokens) and
``hook_pos_embed`` (positions), where this catalog has one, ``embed``, their sum: the two edges from them into one
receiver become one ``embed`` edge, kept when either is (the embedding reaches the receiver), with the score of
larger magnitude; the pairs merged are listed in the metadata (``acdc_embed_edges_merged``). Destinations: ``blocks.L.hook_{q,k,v}_input[:, :, H]`` a head's
input, ``blocks.L.hook_mlp_in`` MLP L, the last layer's ``hook_resid_post`` the logits. ACDC's placeholder
edges inside one component (``hook_q_input -> attn.hook_q -> attn.hook_result``, ``hook_mlp_in ->
hook_mlp_out``) are not edges of the residual graph and are skipped. Hook knowledge lives in
``discovery.hooks``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional, cast

from catalog.errors import InvalidCircuit
from catalog.formats.common import assemble, expect_list, expect_object, expect_score, expect_str, model_shape
from catalog.records import EdgeRecord, NewCircuit
from discovery.graph import Edge, InputName, InvalidKey, NodeKind, check_edge
from discovery.hooks import parse_hook

FORMAT = "acdc"


def read_acdc(data: Any, *, name: str, model: str, task: Optional[str] = None) -> NewCircuit:
    shape = model_shape(model)
    n_layers = shape.n_layers if shape else None
    edges: dict[str, EdgeRecord] = {}
    embed_source: dict[str, str] = {}  # embed edge key -> the embedding hook it came from
    merged: list[str] = []
    skipped = 0
    for where, src, dst, score in _items(data):
        edge = _edge(src, dst, where, n_layers)
        if edge is None:
            skipped += 1
            continue
        hook = src.split("[")[0].strip()
        if edge.key in edges:
            if edge.src.kind is not NodeKind.EMBED or embed_source.get(edge.key) in (None, hook):
                raise InvalidCircuit(f"{where}: edge {edge.key} is listed twice")
            edges[edge.key] = _merged(edges[edge.key], score)
            merged.append(edge.key)
            continue
        if edge.src.kind is NodeKind.EMBED:
            embed_source[edge.key] = hook
        edges[edge.key] = EdgeRecord.from_edge(edge, score=score, kept=True)
    if not edges:
        raise InvalidCircuit("the file lists no edges between components: nothing would be imported")
    return assemble(
        name=name,
        model=model,
        task=task,
        nodes=(),
        edges=edges.values(),
        edges_known=True,
        metadata={"imported_from": FORMAT, "acdc_placeholder_edges_skipped": skipped,
                  "acdc_embed_edges_merged": merged, "score_sign": "loss"},
    )


def _merged(first: EdgeRecord, score: Optional[float]) -> EdgeRecord:
    """One embed edge from the token- and position-embedding edges into one receiver (see the module docstring)."""
    scores = [s for s in (first.score, score) if s is not None]
    best = max(scores, key=abs) if scores else None
    return EdgeRecord(first.src, first.dst, first.input, best, True)


def _items(data: Any) -> Iterator[tuple[str, str, str, Optional[float]]]:
    if isinstance(data, dict):
        for key, value in expect_object(data, "file").items():
            where = f"file[{key!r}]"
            src, arrow, dst = key.partition("->")
            if not arrow:
                raise InvalidCircuit(f"{where}: expected \"src_hook->dst_hook\"")
            yield where, src.strip(), dst.strip(), expect_score(value, where)
        return
    for i, item in enumerate(expect_list(data, "file")):
        where = f"file[{i}]"
        row = expect_list(item, where)
        if len(row) not in (2, 3):
            raise InvalidCircuit(f"{where}: expected [src_hook, dst_hook] or [src_hook, dst_hook, score]")
        score = expect_score(row[2], f"{where}[2]") if len(row) == 3 else None
        yield where, expect_str(row[0], f"{where}[0]") or "", expect_str(row[1], f"{where}[1]") or "", score


def _edge(src_text: str, dst_text: str, where: str, n_layers: Optional[int]) -> Optional[Edge]:
    """The residual edge between two hooks, or None for a placeholder edge inside one component."""
    try:
        src, src_input = parse_hook(src_text, n_layers)
        dst, dst_input = parse_hook(dst_text, n_layers)
    except InvalidKey as err:
        raise InvalidCircuit(f"{where}: {err}") from None
    if src == dst:
        return None
    if src_input is not None:
        raise InvalidCircuit(f"{where}: {src_text!r} is a head's input, so no edge can leave it")
    edge = Edge(src, dst, cast(Optional[InputName], dst_input))
    try:
        check_edge(edge)
    except InvalidKey as err:
        raise InvalidCircuit(f"{where}: {err}") from None
    return edge
