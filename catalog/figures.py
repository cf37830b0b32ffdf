"""Paper-ready figures of the statistics in ``catalog.stats``: the stability histogram with node frequencies, the
overlap matrix with its null intervals, and the transfer heatmap.

matplotlib's object API on an Agg canvas (no pyplot state, no display), imported inside each function so that the
catalog imports no plotting (``plots`` extra). The file type follows the suffix (.png, .pdf, .svg), and every file
is written whole or not at all (``discovery.files.atomic_path``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from catalog.errors import CatalogError
from catalog.stats import NullTest, Stability, TransferMatrix
from discovery.files import atomic_path
from discovery.graph import NodeKind, parse_node

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
_HEAD, _MLP = "#4477aa", "#ee6677"


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CatalogError("figures need matplotlib: pip install 'circuit-catalog[plots]'") from None
    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CatalogError(f"cannot draw to {path.name}: use a .png, .pdf or .svg file")
    return fmt


def _save(fig: Any, path: Union[str, Path]) -> Path:
    path = Path(path)
    fmt = _format(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)
    return path


def plot_stability(report: Stability, path: Union[str, Path], *, title: Optional[str] = None) -> Path:
    """Left: the histogram of pairwise Jaccard indices over the resamples, with their mean and Méloux et al.'s 0.8
    bar. Right: how often each head and MLP is kept, in model order (heads blue, MLPs red)."""
    _format(Path(path))
    fig = _figure(10.0, 4.0)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    bins = [i / 20 for i in range(21)]
    left.hist(report.jaccards, bins=bins, color="#777777", edgecolor="white", zorder=2)
    left.axvline(report.jaccard.mean, color="black", label=f"mean {report.jaccard.mean:.3f}")
    left.axvspan(report.jaccard.low, report.jaccard.high, color="#dddddd", zorder=0, label="95 % of pairs")
    left.axvline(report.bar, color="#cc3311", linestyle="--", label=f"stable bar {report.bar:g} (Méloux et al.)")
    left.set_xlim(0, 1)
    left.set_xlabel(f"Jaccard index of two resamples' {report.level}")
    left.set_ylabel("pairs of resamples")
    left.set_title(f"{report.n} resamples: {report.verdict}")
    left.legend(fontsize="small")
    keys = sorted(report.node_frequency, key=lambda k: parse_node(k).order)
    colours = [_HEAD if parse_node(k).kind is NodeKind.HEAD else _MLP for k in keys]
    right.bar(range(len(keys)), [report.node_frequency[k] for k in keys], color=colours)
    right.set_xticks(range(len(keys)))
    right.set_xticklabels(keys, rotation=90, fontsize="x-small")
    right.set_ylim(0, 1.02)
    right.set_ylabel("share of resamples keeping it")
    right.set_title("how often each head (blue) and MLP (red) is kept")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_overlap_matrix(names: Sequence[str], jaccard: dict[str, dict[str, float]], tests: Sequence[NullTest],
                        path: Union[str, Path], *, title: Optional[str] = None) -> Path:
    """The Jaccard matrix as a heatmap; each pair's cell also shows the 95 % interval of the Jaccard index of
    random circuits of the same sizes and the (corrected) p-value."""
    _format(Path(path))
    n = len(names)
    fig = _figure(1.6 + 1.5 * n, 1.2 + 1.2 * n)
    ax = fig.add_subplot()
    grid = [[jaccard[a][b] for b in names] for a in names]
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
    by_pair = {(t.a, t.b): t for t in tests} | {(t.b, t.a): t for t in tests}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            text = f"{grid[i][j]:.2f}"
            test = by_pair.get((a, b))
            if test is not None and i != j:
                p = test.adjusted_p if test.adjusted_p is not None else test.p_value
                text += f"\nnull [{test.jaccard_low:.2f}, {test.jaccard_high:.2f}]\np = {p:.3g}"
            ax.text(j, i, text, ha="center", va="center", fontsize="x-small",
                    color="white" if grid[i][j] < 0.6 else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize="small")
    ax.set_yticklabels(names, fontsize="small")
    fig.colorbar(image, ax=ax, label="Jaccard index")
    ax.set_title(title or "Overlap (Jaccard) with the 95 % interval of random circuits", fontsize="medium")
    if tests:
        what = "heads and MLPs" if tests[0].level == "nodes" else "connected edges"
        fig.text(0.01, 0.01, f"null: random {what} in each pair's numbers, {tests[0].samples} draws; "
                 f"p one-sided, (k+1)/(n+1), corrected: {tests[0].correction}", fontsize="xx-small")
    return _save(fig, path)


def plot_transfer(matrix: TransferMatrix, path: Union[str, Path], *, measure: str = "faithfulness",
                  title: Optional[str] = None) -> Path:
    """The transfer matrix as a heatmap (rows: the full model, the empty circuit, then each circuit; columns: the
    tasks), each cell annotated with ``measure``; a circuit's own task is outlined (dashed)."""
    _format(Path(path))
    rows = matrix.rows(measure)
    fig = _figure(2.0 + 1.4 * len(matrix.tasks), 1.2 + 0.5 * len(rows))
    ax = fig.add_subplot()
    grid = [[math.nan if v is None else float(v) for v in values] for _, values in rows]
    image = ax.imshow(grid, vmin=min(0.0, *_finite(grid)), vmax=max(1.0, *_finite(grid)), cmap="RdBu",
                      aspect="auto")
    for i, values in enumerate(grid):
        for j, v in enumerate(values):
            dark = not math.isnan(v) and (v > 0.85 or v < 0.15)  # the colour map's dark ends
            ax.text(j, i, "-" if math.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize="small",
                    color="white" if dark else "black")
    for i, (label, _) in enumerate(rows):
        home = matrix.home.get(label)
        if home in matrix.tasks:
            j = matrix.tasks.index(home)
            ax.add_patch(_outline(j, i))
    ax.set_xticks(range(len(matrix.tasks)))
    ax.set_xticklabels([f"{t}\n({matrix.metrics.get(t, '')})" for t in matrix.tasks], fontsize="small")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label for label, _ in rows], fontsize="small")
    ax.set_xlabel("evaluated on task")
    fig.colorbar(image, ax=ax, label=measure.replace("_", " "))
    ax.set_title(title or f"Transfer: each circuit's {measure.replace('_', ' ')} on each task", fontsize="medium")
    return _save(fig, path)


def _finite(grid: Sequence[Sequence[float]]) -> list[float]:
    return [v for row in grid for v in row if math.isfinite(v)] or [0.0]


def _outline(x: int, y: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.42, y - 0.4), 0.84, 0.8, fill=False, edgecolor="black", linewidth=1.5, linestyle="--")
