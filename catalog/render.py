"""Drawing circuits as layered Graphviz diagrams, one or several at once.

The layout reads like the papers' figures, bottom to top: embed on the lowest rank, then one rank per
layer (only layers the drawing uses, each labelled ``layer N`` on the left), logits on top. Graphviz's
``rank=same`` puts a layer's nodes side by side but does not order the ranks, so an invisible chain of
one anchor node per rank fixes the order.

Encodings, all explained in the legend:

* shape by kind: heads are rounded boxes labelled ``9.1``, MLPs hexagons labelled ``MLP 5``, embed and
  logits house shapes;
* one circuit: fill by role (a second label line names it); nodes without a role are plain grey;
* several circuits: gold fill for nodes every circuit keeps; a node in one circuit only takes that
  circuit's fill and outline colour; a node in some but not all is light grey with a dashed outline and a
  third line naming which (circuits are lettered A, B, C... in the legend). Roles stay on the second line;
* edges: width grows with |score| (relative to the largest drawn), blue for positive, red for negative,
  dark grey when unscored. A source's edges into one head's q, k and v are drawn as one line labelled
  with the inputs (``q,k,v``), its width and colour those of the input with the largest |score|. With
  several circuits, an edge in every circuit that knows its edges is solid, one in only some dashed;
* nodes-only circuits (``edges_known`` false) are drawn as nodes by layer with no edges at all: drawing
  implied edges would show connections no source claims.

Only kept nodes and edges are drawn. The DOT text is a pure function of the input: everything is emitted
in topological order with fixed float formats, so the same circuits give the same bytes.

``DrawOptions`` make a large circuit printable: which edges (``all``, ``shared`` by every circuit that knows its
edges, ``none``, or the ``top:N`` by |score|), a cluster per role class (``group="roles"``, as the IOI paper
draws its circuit), a band of layers, Graphviz's edge concentration (parallel edges merged), the page the
drawing must fit (A4 or US letter, portrait or landscape), and a fill by each node's frequency across a group
of circuits (a stability study's resamples: ``catalog.stats``), which replaces the role fill and says the
share on the node.
"""

from __future__ import annotations

import html
import math
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from catalog.errors import CatalogError
from catalog.records import CircuitLike, EdgeRecord
from discovery.files import atomic_path, write_text_atomic
from discovery.graph import Node, NodeKind, parse_edge, parse_node

FORMATS: tuple[str, ...] = ("pdf", "svg", "png", "dot")
DOT_TIMEOUT_S = 120

_SHAPES = {
    NodeKind.HEAD: ('box', 'rounded,filled'),
    NodeKind.MLP: ('hexagon', 'filled'),
    NodeKind.EMBED: ('invhouse', 'filled'),
    NodeKind.LOGITS: ('house', 'filled'),
}
_PLAIN_FILL = "#eeeeee"
_SHARED_FILL = "#ffd966"
_PARTIAL_FILL = "#dddddd"
_OUTLINE = "#333333"
_POSITIVE = "#2166ac"
_NEGATIVE = "#b2182b"
_UNSCORED = "#555555"
_MIN_WIDTH, _MAX_WIDTH = 0.6, 5.0
# ColorBrewer Set3 (fills for roles) and Paired (light fill, dark outline per circuit); they cycle past the end.
_ROLE_FILLS = ("#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462",
               "#b3de69", "#fccde5", "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f")
_CIRCUIT_COLOURS = (("#a6cee3", "#1f78b4"), ("#b2df8a", "#33a02c"), ("#fb9a99", "#e31a1c"),
                    ("#fdbf6f", "#ff7f00"), ("#cab2d6", "#6a3d9a"), ("#ffff99", "#b15928"))


EDGE_CHOICES = ("all", "shared", "none", "top:N")
PAGES: dict[str, tuple[float, float]] = {  # printable area in inches (the paper less ~1.5 cm margins)
    "a4": (7.1, 10.5), "a4-landscape": (10.5, 7.1), "letter": (7.3, 9.8), "letter-landscape": (9.8, 7.3),
}
# ColorBrewer Blues, five steps, for a node's frequency in a group: 0-20 %, 20-40 %, ... 80-100 %.
_FREQUENCY_FILLS = ("#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c")


@dataclass(frozen=True)
class DrawOptions:
    """What to draw of the circuits and how (see the module docstring). ``edges``: ``all``, ``shared``, ``none``
    or ``top:N``; ``layers``: the first and last layer drawn (embed and logits only when the band reaches them);
    ``frequency``: node key -> share of a group's circuits that keep it."""

    edges: str = "all"
    group: Optional[str] = None
    layers: Optional[tuple[int, int]] = None
    concentrate: bool = False
    page: Optional[str] = None
    frequency: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_edges_choice(self.edges)
        if self.group not in (None, "roles"):
            raise CatalogError(f"--group: only roles can group nodes, got {self.group!r}")
        if self.page is not None and self.page not in PAGES:
            raise CatalogError(f"--page: choose one of {', '.join(PAGES)}, got {self.page!r}")
        if self.layers is not None and not 0 <= self.layers[0] <= self.layers[1]:
            raise CatalogError(f"--layers: expected FIRST-LAST with 0 <= FIRST <= LAST, got {self.layers}")

    @property
    def top(self) -> Optional[int]:
        return int(self.edges.split(":", 1)[1]) if self.edges.startswith("top:") else None


def check_edges_choice(text: str) -> str:
    """``all``, ``shared``, ``none`` or ``top:N`` (N >= 1), else ``CatalogError`` saying so."""
    if text in ("all", "shared", "none"):
        return text
    head, _, count = text.partition(":")
    if head == "top" and count.isdigit() and int(count) >= 1:
        return text
    raise CatalogError(f"--edges: choose all, shared, none or top:N (N >= 1), got {text!r}")


def parse_layers(text: str) -> tuple[int, int]:
    """``3-7`` (or ``5`` for one layer) as (first, last)."""
    first, _, last = text.partition("-")
    try:
        band = (int(first), int(last or first))
    except ValueError:
        raise CatalogError(f"--layers: expected FIRST-LAST such as 3-7, got {text!r}") from None
    if not 0 <= band[0] <= band[1]:
        raise CatalogError(f"--layers: expected FIRST-LAST with 0 <= FIRST <= LAST, got {text!r}")
    return band


@dataclass
class _DrawnNode:
    node: Node
    members: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)


@dataclass
class _DrawnEdge:
    record: EdgeRecord
    members: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------
# Public


def to_dot(circuits: Sequence[CircuitLike], *, title: Optional[str] = None,
           options: DrawOptions = DrawOptions()) -> str:
    """The DOT text of a layered diagram of ``circuits`` (one or several)."""
    if not circuits:
        raise CatalogError("nothing to draw: give at least one circuit")
    nodes = _collect_nodes(circuits, options.layers)
    edge_circuits = [c.name for c in circuits if c.edges_known]
    edges = _select_edges(_collect_edges(circuits, nodes), edge_circuits, options)
    multi = len(circuits) > 1
    names = [c.name for c in circuits]
    roles = sorted({r for n in nodes.values() for r in n.roles})
    graph = (f"rankdir=BT, newrank=true, ranksep=0.5, nodesep=0.3, fontname=Helvetica, fontsize=14, labelloc=t, "
             f"label={_q(title if title is not None else _default_title(circuits))}")
    if options.concentrate:
        graph += ", concentrate=true"
    if options.page is not None:
        width, height = PAGES[options.page]
        graph += f", size=\"{width:g},{height:g}\", ratio=compress"
    lines = [
        "digraph circuit {",
        f"  graph [{graph}];",
        "  node [fontname=Helvetica, fontsize=11, penwidth=1.2];",
        "  edge [arrowsize=0.6, fontname=Helvetica, fontsize=8, fontcolor=\"#666666\"];",
    ]
    lines += _rank_lines(nodes)
    lines += [_node_line(d, names, roles, multi, options.frequency) for d in _sorted_nodes(nodes)]
    if options.group == "roles":
        lines += _role_clusters(nodes, roles)
    lines += _edge_lines(edges, edge_circuits, multi)
    lines += _legend_lines(circuits, roles, edges, multi, options)
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(circuits: Sequence[CircuitLike], path: Union[str, Path], *, title: Optional[str] = None,
           options: DrawOptions = DrawOptions()) -> Path:
    """Draw to ``path``; its suffix picks the format (.pdf, .svg, .png, or .dot for the text itself)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise CatalogError(f"cannot draw to {path.name!r}: name a .pdf, .svg, .png or .dot file")
    text = to_dot(circuits, title=title, options=options)
    if fmt == "dot":
        write_text_atomic(path, text)
        return path
    _run_dot(text, fmt, path)
    return path


def _run_dot(text: str, fmt: str, path: Path) -> None:
    """Run Graphviz into a temporary file first, so a failed drawing never leaves half a file behind."""
    exe = shutil.which("dot")
    if exe is None:
        raise CatalogError(
            f"Graphviz's 'dot' program is not installed, so a .{fmt} cannot be drawn: install graphviz "
            "(apt-get install graphviz, brew install graphviz) or write a .dot file"
        )
    with atomic_path(path) as tmp:
        try:
            proc = subprocess.run([exe, f"-T{fmt}", "-o", str(tmp)], input=text.encode("utf-8"), capture_output=True,
                                  timeout=DOT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise CatalogError(f"Graphviz took more than {DOT_TIMEOUT_S} s to draw {path.name}") from None
        if proc.returncode != 0 or not tmp.stat().st_size:
            reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            first = reason[0].split(". Use one of")[0] if reason else f"exit status {proc.returncode}"
            raise CatalogError(f"Graphviz could not draw {path.name}: {first}")


# ---------------------------------------------------------------------------------------------------------
# What is drawn


def _collect_nodes(circuits: Sequence[CircuitLike], layers: Optional[tuple[int, int]] = None
                   ) -> dict[str, _DrawnNode]:
    """Kept nodes, within the band of ``layers`` when given: embed then only if the band starts at layer 0, logits
    only if it reaches the last layer any of the circuits has."""
    drawn: dict[str, _DrawnNode] = {}
    last = max((n.layer for c in circuits for n in c.nodes if n.layer is not None), default=0)
    frames = ("embed", "logits") if layers is None else (
        *(("embed",) if layers[0] == 0 else ()), *(("logits",) if layers[1] >= last else ()))
    for frame in frames:
        drawn[frame] = _DrawnNode(parse_node(frame), members=[c.name for c in circuits])
    for c in circuits:
        for n in c.nodes:
            if not n.kept or n.kind in (NodeKind.EMBED.value, NodeKind.LOGITS.value):
                continue
            if layers is not None and not (n.layer is not None and layers[0] <= n.layer <= layers[1]):
                continue
            d = drawn.setdefault(n.key, _DrawnNode(parse_node(n.key)))
            d.members.append(c.name)
            if n.role and n.role not in d.roles:
                d.roles.append(n.role)
    return drawn


def _collect_edges(circuits: Sequence[CircuitLike], nodes: Mapping[str, _DrawnNode]) -> dict[str, _DrawnEdge]:
    """Kept edges between drawn nodes of circuits that know their edges; the score shown is the first circuit's
    that has one."""
    drawn: dict[str, _DrawnEdge] = {}
    for c in circuits:
        if not c.edges_known:
            continue
        for e in c.edges:
            if not e.kept or e.src not in nodes or e.dst not in nodes:
                continue
            d = drawn.setdefault(e.key, _DrawnEdge(e))
            d.members.append(c.name)
            if d.record.score is None and e.score is not None:
                d.record = e
    return drawn


def _select_edges(edges: dict[str, _DrawnEdge], edge_circuits: list[str], options: DrawOptions
                  ) -> dict[str, _DrawnEdge]:
    """The edges ``options.edges`` asks for: all, those every edge-known circuit keeps, none, or the top N by
    |score| (unscored last, ties in topological order)."""
    if options.edges == "none":
        return {}
    if options.edges == "shared":
        return {k: d for k, d in edges.items() if len(d.members) == len(edge_circuits)}
    top = options.top
    if top is None:
        return edges
    if edges and not any(_finite(d.record.score) for d in edges.values()):
        raise CatalogError(f"--edges {options.edges} ranks edges by |score|, and these circuits' edges are "
                           "unscored: draw all, shared or none")
    ranked = sorted(edges, key=lambda k: (-_magnitude(edges[k].record.score), parse_edge(k).order))
    return {k: edges[k] for k in ranked[:top]}


def _sorted_nodes(nodes: dict[str, _DrawnNode]) -> list[_DrawnNode]:
    return sorted(nodes.values(), key=lambda d: d.node.order)


def _rank_of(node: Node) -> str:
    if node.kind is NodeKind.EMBED:
        return "embed"
    if node.kind is NodeKind.LOGITS:
        return "logits"
    return str(node.layer)


# ---------------------------------------------------------------------------------------------------------
# DOT lines


def _rank_lines(nodes: dict[str, _DrawnNode]) -> list[str]:
    """One anchor per rank, chained invisibly so Graphviz keeps the layers in order."""
    ranks: dict[str, list[str]] = {}
    for d in _sorted_nodes(nodes):
        ranks.setdefault(_rank_of(d.node), []).append(d.node.key)
    lines = ["  // layer order: one anchor per rank, chained by invisible edges"]
    anchors = []
    for rank, keys in ranks.items():
        anchor = f"rank:{rank}"
        anchors.append(anchor)
        label = "" if rank in ("embed", "logits") else f"layer {rank}"
        lines.append(f"  {_q(anchor)} [shape=plaintext, label={_q(label)}, fontsize=10, fontcolor=\"#888888\"];")
        lines.append("  { rank=same; " + " ".join(f"{_q(k)};" for k in [anchor, *keys]) + " }")
    lines.append("  " + " -> ".join(_q(a) for a in anchors) + " [style=invis];")
    return lines


def _node_line(d: _DrawnNode, names: list[str], roles: list[str], multi: bool,
               frequency: Mapping[str, float]) -> str:
    shape, style = _SHAPES[d.node.kind]
    label = [d.node.label]
    if d.roles:
        label.append(" / ".join(d.roles))
    frame = d.node.kind in (NodeKind.EMBED, NodeKind.LOGITS)
    if frame:
        fill, outline = _PLAIN_FILL, _OUTLINE
    elif frequency:
        share = frequency.get(d.node.key, 0.0)
        fill, outline = _frequency_fill(share), _OUTLINE
        label.append(f"{share:.0%}")
    elif not multi:
        fill = _ROLE_FILLS[roles.index(d.roles[0]) % len(_ROLE_FILLS)] if d.roles else _PLAIN_FILL
        outline = _OUTLINE
    elif len(d.members) == len(names):
        fill, outline = _SHARED_FILL, _OUTLINE
    elif len(d.members) == 1:
        fill, outline = _circuit_colours(names.index(d.members[0]))
    else:
        fill, outline = _PARTIAL_FILL, _OUTLINE
        style += ",dashed"
        label.append("+".join(_letter(names.index(m)) for m in d.members))
    attrs = [
        f"shape={shape}",
        f"style={_q(style)}",
        f"fillcolor={_q(fill)}",
        f"color={_q(outline)}",
        f"label={_q(chr(10).join(label))}",
        f"tooltip={_q(d.node.key + ': ' + ', '.join(d.members))}",
    ]
    if frequency and not frame and frequency.get(d.node.key, 0.0) >= 0.6:
        attrs.append('fontcolor="#ffffff"')  # white on the two darkest blues
    if multi and not frame and not frequency and len(d.members) == len(names):
        attrs.append("penwidth=2.0")
    return f"  {_q(d.node.key)} [{', '.join(attrs)}];"


def _frequency_fill(share: float) -> str:
    return _FREQUENCY_FILLS[min(int(share * len(_FREQUENCY_FILLS)), len(_FREQUENCY_FILLS) - 1)]


def _role_clusters(nodes: dict[str, _DrawnNode], roles: list[str]) -> list[str]:
    """One dashed box per role class around the nodes whose first role it is (the IOI paper's figure)."""
    lines = ["  // role classes: a cluster per role"]
    for i, role in enumerate(roles):
        members = [d.node.key for d in _sorted_nodes(nodes) if d.roles and d.roles[0] == role]
        if not members:
            continue
        lines.append(f"  subgraph {_q(f'cluster_role_{i}')} {{ label={_q(role)}; style=\"rounded,dashed\"; "
                     f"color=\"#888888\"; fontsize=10; fontcolor=\"#444444\"; "
                     + " ".join(f"{_q(k)};" for k in members) + " }")
    return lines


def _edge_lines(edges: dict[str, _DrawnEdge], edge_circuits: list[str], multi: bool) -> list[str]:
    """One line per (source, destination): a head's q, k and v edges from one source share it."""
    if not edges:
        return []
    largest = max((_magnitude(e.record.score) for e in edges.values() if _finite(e.record.score)), default=0.0)
    bundles: dict[tuple[str, str], list[_DrawnEdge]] = {}
    for key in sorted(edges, key=lambda k: parse_edge(k).order):
        d = edges[key]
        bundles.setdefault((d.record.src, d.record.dst), []).append(d)
    ordered = sorted(bundles.items(), key=lambda kv: parse_edge(kv[1][0].record.key).order)
    lines = ["  // edges: width by |score|, blue positive, red negative, grey unscored; label: head inputs"]
    for (src, dst), bundle in ordered:
        lead = max(bundle, key=lambda d: _magnitude(d.record.score)).record
        attrs = [f"color={_q(_edge_colour(lead.score))}", f"penwidth={_width(lead.score, largest):.2f}"]
        inputs = [d.record.input for d in bundle if d.record.input]
        if inputs:
            attrs.append(f"xlabel={_q(','.join(inputs))}")
        if multi and any(len(d.members) < len(edge_circuits) for d in bundle):
            attrs.append("style=dashed")
        attrs.append(f"tooltip={_q('; '.join(_edge_tip(d) for d in bundle))}")
        lines.append(f"  {_q(src)} -> {_q(dst)} [{', '.join(attrs)}];")
    return lines


def _edge_tip(d: _DrawnEdge) -> str:
    score = "" if d.record.score is None else f" {d.record.score:.4g}"
    return f"{d.record.key}{score} ({', '.join(d.members)})"


def _legend_lines(circuits: Sequence[CircuitLike], roles: list[str], edges: dict[str, _DrawnEdge], multi: bool,
                  options: DrawOptions) -> list[str]:
    rows: list[tuple[str, str]] = []
    names = [c.name for c in circuits]
    if options.frequency:
        step = 100 // len(_FREQUENCY_FILLS)
        rows += [(fill, f"in {i * step}-{(i + 1) * step} % of the circuits") for i, fill in enumerate(_FREQUENCY_FILLS)]
    elif multi:
        rows.append((_SHARED_FILL, f"in all {len(names)} circuits"))
        rows += [(_circuit_colours(i)[0], f"{_letter(i)}: only {n}") for i, n in enumerate(names)]
        rows.append((_PARTIAL_FILL, "in some (letters say which)"))
    else:
        rows += [(_ROLE_FILLS[i % len(_ROLE_FILLS)], role) for i, role in enumerate(roles)]
    text = ["box: head (layer.head)   hexagon: MLP"]
    if edges:
        text.append("edge width: |score|   blue +, red -, grey unscored   label: head inputs")
        if multi:
            text.append("solid edge: in every circuit with edges   dashed: in some")
    if options.edges != "all":
        text.append({"none": "edges not drawn", "shared": "only edges every circuit keeps"}.get(
            options.edges, f"only the {options.top} edges with the largest |score|"))
    if options.layers is not None:
        text.append(f"layers {options.layers[0]}-{options.layers[1]} only")
    nodes_only = [c.name for c in circuits if not c.edges_known]
    if nodes_only:
        text.append("nodes only, edges unknown: " + ", ".join(nodes_only))
    cells = "".join(
        f'<TR><TD BGCOLOR="{colour}" FIXEDSIZE="TRUE" WIDTH="14" HEIGHT="10"></TD><TD ALIGN="LEFT">{_html(label)}</TD></TR>' for colour, label in rows
    )
    cells += "".join(f'<TR><TD></TD><TD ALIGN="LEFT">{_html(t)}</TD></TR>' for t in text)
    table = f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2">{cells}</TABLE>>'
    return [
        f"  legend [shape=plaintext, fontsize=9, label={table}];",
        '  { rank=same; "rank:logits"; legend; }',
    ]


# ---------------------------------------------------------------------------------------------------------
# Small helpers


def _default_title(circuits: Sequence[CircuitLike]) -> str:
    if len(circuits) == 1:
        c = circuits[0]
        return f"{c.name} ({c.model}" + (f", task {c.task})" if c.task else ")")
    return " vs ".join(c.name for c in circuits)


def _circuit_colours(index: int) -> tuple[str, str]:
    return _CIRCUIT_COLOURS[index % len(_CIRCUIT_COLOURS)]


def _letter(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else f"C{index + 1}"


def _finite(score: Optional[float]) -> bool:
    return score is not None and math.isfinite(score)


def _magnitude(score: Optional[float]) -> float:
    """|score|, with unscored and NaN below every real score."""
    return -1.0 if score is None or math.isnan(score) else abs(score)


def _edge_colour(score: Optional[float]) -> str:
    if score is None or math.isnan(score):
        return _UNSCORED
    return _NEGATIVE if score < 0 else _POSITIVE


def _width(score: Optional[float], largest: float) -> float:
    if score is None or math.isnan(score) or largest == 0.0:
        return 1.0
    if math.isinf(score):
        return _MAX_WIDTH
    return _MIN_WIDTH + (_MAX_WIDTH - _MIN_WIDTH) * abs(score) / largest


def _q(text: str) -> str:
    """A DOT double-quoted string; a newline becomes DOT's centred line break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _html(text: str) -> str:
    return html.escape(text, quote=True)

