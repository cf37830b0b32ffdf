"""The one vocabulary of circuit components: node and edge keys, their parsing, and the component graph.

Every module that names a component (catalog, discovery, CLI, renderers, importers) goes through this file,
as TransformerLens routes every hook through one naming scheme. Canonical keys:

    embed            token + position embeddings (the residual stream's start)
    a{l}.{h}         attention head h of layer l (its per-head output, ``hook_result``)
    a{l}.{h}.q|k|v   that head's query / key / value input (a destination only)
    m{l}             the MLP of layer l
    logits           the unembedding (the residual stream's end; a destination only)

An edge is ``src->dst`` with ``dst`` optionally carrying its input (``a3.0->a5.1.q``).

This module is a leaf: pure Python, no torch, no database, no side effects at import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Literal, Optional

InputName = Literal["q", "k", "v"]
QKV: tuple[InputName, InputName, InputName] = ("q", "k", "v")


class NodeKind(str, Enum):
    EMBED = "embed"
    HEAD = "head"
    MLP = "mlp"
    LOGITS = "logits"

    def __str__(self) -> str:  # "head", not "NodeKind.HEAD", wherever a kind is printed
        return self.value


class Granularity(str, Enum):
    """How finely the graph is cut: q/k/v inputs apart (ACDC, EAP), whole heads, or nodes alone."""

    QKV = "qkv"
    HEADS = "heads"
    NODES = "nodes"


class InvalidKey(ValueError):
    """A string that is not a canonical (or accepted paper-style) component key."""


@dataclass(frozen=True, order=False)
class Node:
    """One component. ``layer`` is -1 for embed and n_layers for logits, so layer order is topological order."""

    kind: NodeKind
    layer: int
    head: Optional[int] = None

    @property
    def key(self) -> str:
        if self.kind is NodeKind.EMBED:
            return "embed"
        if self.kind is NodeKind.LOGITS:
            return "logits"
        if self.kind is NodeKind.MLP:
            return f"m{self.layer}"
        return f"a{self.layer}.{self.head}"

    @property
    def label(self) -> str:
        """Paper-style display name: ``9.1`` for a head, ``MLP 5``, ``embed``, ``logits``."""
        if self.kind is NodeKind.HEAD:
            return f"{self.layer}.{self.head}"
        if self.kind is NodeKind.MLP:
            return f"MLP {self.layer}"
        return self.key

    @property
    def order(self) -> tuple[int, int, int]:
        """Sort key in topological order: embed, then per layer its heads then its MLP, then logits."""
        within = {NodeKind.EMBED: 0, NodeKind.HEAD: 0, NodeKind.MLP: 1, NodeKind.LOGITS: 0}[self.kind]
        return (self.layer, within, self.head if self.head is not None else 0)

    def __str__(self) -> str:
        return self.key

    def __lt__(self, other: "Node") -> bool:
        return self.order < other.order


EMBED = Node(NodeKind.EMBED, -1)


def edge_key(src: str, dst: str, input_: Optional[str] = None) -> str:
    """The one spelling of an edge from its nodes' keys: ``a0.1->a3.2.q``, ``m2->logits``."""
    return f"{src}->{dst}.{input_}" if input_ else f"{src}->{dst}"


def head(layer: int, head_index: int) -> Node:
    return Node(NodeKind.HEAD, layer, head_index)


def mlp(layer: int) -> Node:
    return Node(NodeKind.MLP, layer)


def logits(n_layers: int) -> Node:
    return Node(NodeKind.LOGITS, n_layers)


@dataclass(frozen=True)
class Edge:
    """A path from one component's output into another's input (``input`` names which of a head's inputs)."""

    src: Node
    dst: Node
    input: Optional[InputName] = None

    @property
    def dst_key(self) -> str:
        return f"{self.dst.key}.{self.input}" if self.input else self.dst.key

    @property
    def key(self) -> str:
        return edge_key(self.src.key, self.dst.key, self.input)

    @property
    def order(self) -> tuple[tuple[int, int, int], int, tuple[int, int, int]]:
        return (self.dst.order, QKV.index(self.input) if self.input else 0, self.src.order)

    def __str__(self) -> str:
        return self.key

    def __lt__(self, other: "Edge") -> bool:
        return self.order < other.order


# ---------------------------------------------------------------------------------------------------------
# Parsing: the one place that turns user or file text into nodes and edges.

_HEAD_RE = re.compile(r"^(?:a|A|attn|head|h)?\s*(\d+)\s*[.:_]\s*(?:h)?(\d+)$")
_MLP_RE = re.compile(r"^(?:m|M|mlp|MLP)\s*_?(\d+)$")
_EMBED_NAMES = {"embed", "input", "inputs", "emb", "resid_start", "resid start", "tokens"}
_LOGITS_NAMES = {"logits", "output", "resid_end", "resid end", "unembed"}


def parse_node(text: str, n_layers: Optional[int] = None) -> Node:
    """Parse a node key. Accepts the canonical ``a9.1``/``m5``/``embed``/``logits`` and the paper's ``9.1``.

    ``n_layers`` is needed only to place ``logits``; without it logits get layer 10**6 (still sorting last).
    """
    t = text.strip()
    low = t.lower()
    if low in _EMBED_NAMES:
        return EMBED
    if low in _LOGITS_NAMES:
        return logits(n_layers if n_layers is not None else 10**6)
    m = _HEAD_RE.match(t)
    if m:
        return head(int(m.group(1)), int(m.group(2)))
    m = _MLP_RE.match(t)
    if m:
        return mlp(int(m.group(1)))
    raise InvalidKey(
        f"not a component: {text!r} (expected a head like 9.1 or a9.1, an MLP like m5, embed or logits)"
    )


def parse_destination(text: str, n_layers: Optional[int] = None) -> tuple[Node, Optional[InputName]]:
    """Parse a destination key, which may name a head's input: ``a9.1.q`` -> (a9.1, 'q')."""
    t = text.strip()
    for name in QKV:
        for suffix in (f".{name}", f"<{name}>", f".{name.upper()}", f"<{name.upper()}>"):
            if t.endswith(suffix):
                node = parse_node(t[: -len(suffix)], n_layers)
                if node.kind is not NodeKind.HEAD:
                    raise InvalidKey(f"only attention heads have q/k/v inputs: {text!r}")
                return node, name
    return parse_node(t, n_layers), None


def parse_edge(text: str, n_layers: Optional[int] = None) -> Edge:
    """Parse ``src->dst`` (``a0.1->a3.2.q``); the arrow may be spaced."""
    parts = text.split("->")
    if len(parts) != 2:
        raise InvalidKey(f"not an edge: {text!r} (expected SRC->DST, e.g. a0.1->a3.2.q)")
    src = parse_node(parts[0], n_layers)
    dst, inp = parse_destination(parts[1], n_layers)
    edge = Edge(src, dst, inp)
    check_edge(edge)
    return edge


def check_edge(edge: Edge) -> None:
    """Reject edges that cannot exist in a transformer: from logits, into embed, or not flowing forward."""
    if edge.src.kind is NodeKind.LOGITS:
        raise InvalidKey(f"logits have no outgoing edges: {edge.key}")
    if edge.dst.kind is NodeKind.EMBED:
        raise InvalidKey(f"embed has no incoming edges: {edge.key}")
    if edge.input is not None and edge.dst.kind is not NodeKind.HEAD:
        raise InvalidKey(f"only attention heads have q/k/v inputs: {edge.key}")
    if not feeds(edge.src, edge.dst):
        raise InvalidKey(f"{edge.src.key} cannot feed {edge.dst.key}: edges flow forward through the layers")


def feeds(src: Node, dst: Node) -> bool:
    """Whether src's output is in the residual stream that dst reads (heads of a layer feed its MLP)."""
    if dst.kind is NodeKind.LOGITS:
        return src.kind is not NodeKind.LOGITS
    if dst.kind is NodeKind.HEAD:
        return src.layer < dst.layer
    if dst.kind is NodeKind.MLP:
        return src.layer < dst.layer or (src.layer == dst.layer and src.kind is NodeKind.HEAD)
    return False


def with_logits_layer(node: Node, n_layers: int) -> Node:
    """Re-place a parsed ``logits`` node once the model's depth is known."""
    return logits(n_layers) if node.kind is NodeKind.LOGITS else node


# ---------------------------------------------------------------------------------------------------------
# The component graph of a model shape.


@dataclass(frozen=True)
class ModelShape:
    n_layers: int
    n_heads: int

    def __post_init__(self) -> None:
        if self.n_layers < 1 or self.n_heads < 1:
            raise ValueError(f"a model needs at least one layer and one head, got {self}")


class ComponentGraph:
    """Nodes and edges of a transformer's residual graph at one granularity.

    Sources (components that write to the residual stream) and destinations (inputs that read it) are
    numbered densely in topological order; the discovery engine indexes its score and mask tensors with
    exactly these numbers, so a tensor row and a canonical key always agree.
    """

    def __init__(self, shape: ModelShape, granularity: Granularity | str = Granularity.QKV):
        self.shape = shape
        self.granularity = Granularity(granularity)
        L, H = shape.n_layers, shape.n_heads
        self.sources: tuple[Node, ...] = (EMBED,) + tuple(
            n for layer in range(L) for n in [*(head(layer, h) for h in range(H)), mlp(layer)]
        )
        self.source_index: dict[Node, int] = {n: i for i, n in enumerate(self.sources)}
        self.logits = logits(L)
        self.nodes: tuple[Node, ...] = self.sources + (self.logits,)
        self.destinations: tuple[tuple[Node, Optional[InputName]], ...] = tuple(self._destinations())
        self.dest_index = {d: i for i, d in enumerate(self.destinations)}

    def _destinations(self) -> Iterator[tuple[Node, Optional[InputName]]]:
        L, H = self.shape.n_layers, self.shape.n_heads
        for layer in range(L):
            for h in range(H):
                if self.granularity is Granularity.QKV:
                    for name in QKV:
                        yield head(layer, h), name
                else:
                    yield head(layer, h), None
            yield mlp(layer), None
        yield self.logits, None

    def upstream(self, dst: Node) -> tuple[Node, ...]:
        """The sources dst reads, in topological order."""
        return tuple(s for s in self.sources if feeds(s, dst))

    def n_upstream(self, dst: Node) -> int:
        """How many sources feed dst; they are exactly ``sources[:n_upstream(dst)]``."""
        if dst.kind is NodeKind.LOGITS:
            return len(self.sources)
        H = self.shape.n_heads
        if dst.kind is NodeKind.HEAD:
            return 1 + dst.layer * (H + 1)
        if dst.kind is NodeKind.MLP:
            return 1 + dst.layer * (H + 1) + H
        return 0

    @property
    def edges(self) -> tuple[Edge, ...]:
        """Every edge in topological order of destination (empty at node granularity)."""
        if self.granularity is Granularity.NODES:
            return ()
        return tuple(
            Edge(src, dst, inp) for dst, inp in self.destinations for src in self.sources[: self.n_upstream(dst)]
        )

    def n_edges(self) -> int:
        if self.granularity is Granularity.NODES:
            return 0
        return sum(self.n_upstream(dst) for dst, _ in self.destinations)

    def contains(self, edge: Edge) -> bool:
        in_range = all(self._in_shape(n) for n in (edge.src, edge.dst))
        return in_range and (edge.dst, edge.input) in self.dest_index and feeds(edge.src, edge.dst)

    def _in_shape(self, node: Node) -> bool:
        if node.kind is NodeKind.EMBED:
            return True
        if node.kind is NodeKind.LOGITS:
            return node.layer == self.shape.n_layers
        if not 0 <= node.layer < self.shape.n_layers:
            return False
        return node.kind is NodeKind.MLP or (node.head is not None and 0 <= node.head < self.shape.n_heads)

    def check_node(self, node: Node) -> Node:
        """Return node (logits re-placed at this depth) or raise if the model has no such component."""
        node = with_logits_layer(node, self.shape.n_layers)
        if not self._in_shape(node):
            raise InvalidKey(
                f"{node.key} is not in a model of {self.shape.n_layers} layers x {self.shape.n_heads} heads"
            )
        return node


# ---------------------------------------------------------------------------------------------------------
# Other tools' spellings, for exporters (parse_node / parse_edge read all of them back).


def eap_ig_node_name(node: Node) -> str:
    """EAP-IG's node name (hannamw/EAP-IG ``graph.py``): ``input``, ``a9.h1``, ``m5``, ``logits``."""
    if node.kind is NodeKind.EMBED:
        return "input"
    if node.kind is NodeKind.HEAD:
        return f"a{node.layer}.h{node.head}"
    return node.key


def eap_ig_edge_name(edge: Edge) -> str:
    """EAP-IG's edge name: ``a0.h1->m3``, ``input->a9.h1<q>``. EAP-IG needs q/k/v on every edge into a head."""
    if edge.dst.kind is NodeKind.HEAD and edge.input is None:
        raise InvalidKey(f"EAP-IG edges into a head name its q, k or v input: {edge.key} has none")
    suffix = f"<{edge.input}>" if edge.input else ""
    return f"{eap_ig_node_name(edge.src)}->{eap_ig_node_name(edge.dst)}{suffix}"
