"""auto-circuit's edge names (UFO-101/auto-circuit), read into canonical keys.

auto-circuit names edges ``src->dest`` with sources ``Resid Start``, ``A{l}.{h}``, ``MLP {l}`` and
destinations ``A{l}.{h}.Q|K|V``, ``MLP {l}``, ``Resid End`` (e.g. ``A3.2->MLP 5``). It keeps scores as
tensors and circuits as pickles, so there is no one file to read; this reader accepts JSON of one of
three shapes, which a few lines of Python make from auto-circuit's ``PruneScores``:

1. ``{"scores": {"Resid Start->A0.1.Q": 0.52, ...}, "kept": ["Resid Start->A0.1.Q", ...]}`` -- scores
   and the circuit's edges. Either field may be left out; an edge in ``kept`` without a score gets no
   score, and a scored edge outside ``kept`` is recorded as scored but not in the circuit. When ``kept``
   is left out, every scored edge is kept.
2. ``{"Resid Start->A0.1.Q": 0.52, ...}`` -- scores alone: every listed edge is kept.
3. ``["Resid Start->A0.1.Q", "A3.2->MLP 5", ...]`` -- the kept edges alone, with no scores.

Scores are numbers, null, or "nan"/"inf"/"-inf". Names go through ``discovery.graph.parse_edge``.
"""

from __future__ import annotations

from typing import Any, Optional

from catalog.errors import InvalidCircuit
from catalog.formats.common import assemble, edge_from_key, expect_list, expect_object, expect_score, expect_str
from catalog.records import EdgeRecord, NewCircuit

FORMAT = "auto-circuit"


def read_auto_circuit(data: Any, *, name: str, model: str, task: Optional[str] = None) -> NewCircuit:
    scores, kept = _split(data)
    edges: dict[str, EdgeRecord] = {}
    for text, score in scores.items():
        _add(edges, edge_from_key(text, f"scores[{text!r}]", score=score, kept=kept is None or text in kept))
    for text in kept or ():
        if text not in scores:
            _add(edges, edge_from_key(text, f"kept[{text!r}]", kept=True))
    if not any(e.kept for e in edges.values()):
        raise InvalidCircuit("the file keeps no edges: nothing would be imported")
    return assemble(
        name=name,
        model=model,
        task=task,
        nodes=(),
        edges=edges.values(),
        edges_known=True,
        metadata={"imported_from": FORMAT},
    )


def _split(data: Any) -> tuple[dict[str, Optional[float]], Optional[set[str]]]:
    """(scores by edge name, kept edge names or None when every scored edge is kept)."""
    if isinstance(data, list):
        return {}, _kept(data, "file")
    obj = expect_object(data, "file")
    if set(obj) <= {"scores", "kept"} and obj:
        if "scores" in obj and not isinstance(obj["scores"], dict):
            raise InvalidCircuit("scores: expected an object mapping edge names to scores")
        scores = {k: expect_score(v, f"scores[{k!r}]") for k, v in obj.get("scores", {}).items()}
        return scores, _kept(obj["kept"], "kept") if "kept" in obj else None
    return {k: expect_score(v, f"file[{k!r}]") for k, v in obj.items()}, None


def _kept(value: Any, where: str) -> set[str]:
    names = [expect_str(v, f"{where}[{i}]") or "" for i, v in enumerate(expect_list(value, where))]
    seen: set[str] = set()
    for text in names:
        if text in seen:
            raise InvalidCircuit(f"{where}: edge {text!r} is listed twice")
        seen.add(text)
    return seen


def _add(edges: dict[str, EdgeRecord], edge: EdgeRecord) -> None:
    """Refuse two spellings of one edge (``A0.1->MLP 2`` and ``a0.1->m2``): which score would be right?"""
    if edge.key in edges:
        raise InvalidCircuit(f"edge {edge.key} is listed twice (under two spellings)")
    edges[edge.key] = edge
