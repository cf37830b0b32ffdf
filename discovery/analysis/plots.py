"""Figures of the analyses, as PNG and PDF files: attention heatmaps, attention shares, the logit-lens table.

Drawn with matplotlib's object API on the Agg canvas (``matplotlib.figure.Figure``): no pyplot, so no global
figure state, no backend switch and nothing left open in a notebook that imports this. Only this module
imports matplotlib, and only when a function here is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from discovery.analysis.attention import CATEGORIES, AttentionResult
from discovery.analysis.logit_lens import LogitLensResult
from discovery.errors import OutputError
from discovery.files import atomic_path, describe, inside, safe_name

FORMATS = ("png", "pdf")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, folder: Path, stem: str, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``folder/stem.<format>`` for each format, each file whole or not at all and inside
    ``folder`` whatever ``stem`` holds (it comes from a circuit's name: ``discovery.files``); returns the paths."""
    try:
        folder.mkdir(exist_ok=True)  # the folder the user named; its parent must exist
    except OSError as err:
        raise OutputError(describe(err, folder / stem)) from None
    paths = []
    for fmt in formats:
        path = inside(folder, f"{safe_name(stem)}.{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, format=fmt)
        paths.append(path)
    return paths


def attention_figure(pattern: Sequence[Sequence[float]], labels: Sequence[str], title: str) -> Any:
    """Heatmap of one head's mean attention pattern (query rows, key columns) with token labels."""
    import numpy as np

    data = np.asarray(pattern, dtype=float)
    P = data.shape[0]
    ticks = list(labels) if len(labels) == P else [str(i) for i in range(P)]
    size = 2.5 + 0.35 * P
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(data, vmin=0.0, vmax=1.0, cmap="viridis", aspect="equal")
    ax.set_xticks(range(P), ticks, rotation=90, fontsize=8)
    ax.set_yticks(range(P), ticks, fontsize=8)
    ax.set_xlabel("key position (attended token)")
    ax.set_ylabel("query position")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="attention probability (mean over prompts)")
    return fig


def shares_figure(result: AttentionResult) -> Any:
    """Stacked bars: each head's share of last-position attention per category, regular vs irregular prompts."""
    import numpy as np

    keys = list(result.heads)
    fig = _figure(2.0 + 0.9 * len(keys), 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(keys))
    width = 0.38
    colours = ("#4d4d4d", "#1b9e77", "#d95f02", "#7570b3", "#bbbbbb")
    for offset, which, hatch in ((-width / 2, "shares", ""), (width / 2, "shares_irregular", "//")):
        bottom = np.zeros(len(keys))
        for cat, colour in zip(CATEGORIES, colours):
            values = np.array([result.heads[k][which][cat] for k in keys])
            ax.bar(x + offset, values, width, bottom=bottom, color=colour, hatch=hatch, edgecolor="white",
                   label=cat if which == "shares" else None)
            bottom += values
    ax.set_xticks(x, [f"{k}\n{result.heads[k]['kind']}" for k in keys], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("head and its kind\n(left bar: task prompts; right, hatched: irregular prompts with fillers)")
    ax.set_ylabel("share of attention from the last position")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def logit_lens_figure(result: LogitLensResult, title: str = "logit lens") -> Any:
    """Heatmap of the target's probability per layer (rows) and position (columns), each cell annotated with
    the first prompt's top token."""
    import numpy as np

    data = np.asarray(result.target_prob, dtype=float)
    R, P = data.shape
    fig = _figure(2.5 + 0.9 * P, 1.5 + 0.45 * R)
    ax = fig.add_subplot()
    image = ax.imshow(data, vmin=0.0, vmax=1.0, cmap="Blues", aspect="auto", origin="lower")
    for r in range(R):
        for p in range(P):
            ax.text(p, r, result.top_token[r][p], ha="center", va="center", fontsize=7,
                    color="white" if data[r, p] > 0.6 else "black")
    ax.set_xticks(range(P), [f"{pos}\n-> {t}" for pos, t in zip(result.positions, result.targets)], fontsize=7)
    ax.set_yticks(range(R), result.layers, fontsize=8)
    ax.set_xlabel("position: token -> its target (the next token; the answer at the last position)")
    ax.set_ylabel("residual stream read at")
    ax.set_title(f"{title} (cell: first prompt's top token)", fontsize=10)
    fig.colorbar(image, ax=ax, label=f"p(target), mean over {result.n_prompts} prompts")
    return fig


def write_plots(folder: Path, attention: Optional[AttentionResult] = None, lens: Optional[LogitLensResult] = None,
                prefix: str = "") -> list[Path]:
    """Every figure the results allow, as PNG and PDF in ``folder``; returns the files written."""
    folder = Path(folder)
    paths: list[Path] = []
    stem = f"{prefix}-" if prefix else ""
    if attention is not None and attention.heads:
        for key, pattern in attention.patterns.items():
            info = attention.heads[key]
            title = f"{prefix} {key}: {info['kind']}, mostly {info['dominant']}".strip()
            paths += save(attention_figure(pattern, attention.labels, title), folder, f"{stem}attention-{key}")
        paths += save(shares_figure(attention), folder, f"{stem}attention-shares")
    if lens is not None:
        paths += save(logit_lens_figure(lens, f"{prefix} logit lens".strip()), folder, f"{stem}logit-lens")
    return paths
