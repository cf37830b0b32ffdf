"""Faithfulness curves drawn with matplotlib's Agg canvas (no pyplot state, no display needed).

Imported only by ``plot_curves``'s callers: nothing core imports plotting, and matplotlib is imported inside
the function so that importing ``discovery.evaluation`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Union

from discovery.errors import SettingsError
from discovery.evaluation.curves import Curve
from discovery.files import atomic_path

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def plot_curves(curves: Mapping[str, Curve], path: Union[str, Path], *, title: Optional[str] = None) -> Path:
    """Draw several faithfulness curves on one log-x plot; the file type follows the suffix (.png, .pdf, .svg).

    The x axis is the share of edges kept (in %, log scale; a k of 0 cannot be drawn on it and is left out),
    the y axis the faithfulness f(k): solid the curve ranked by signed score (CPR's), dashed the one ranked by
    |score| (CMD's); each legend entry carries the run's CPR and CMD.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SettingsError(f"cannot draw to {path.name}: use a .png, .pdf or .svg file")
    if not curves:
        raise SettingsError("no curves to draw")
    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (name, curve) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        for which, style in (("signed", "-"), ("absolute", "--")):
            if which == "absolute" and curve.ranking == "absolute":
                continue  # the same curve twice
            points = [(100 * k, f) for k, f in zip(curve.ks, getattr(curve, which).faithfulness) if k > 0]
            label = (f"{name} (CPR {curve.cpr:.3f}, CMD {curve.cmd:.3f})" if which == "signed"
                     else f"{name}, ranked by |score| (CMD)")
            ax.plot([x for x, _ in points], [y for _, y in points], style, color=colour, marker="o", markersize=3,
                    label=label)
    ax.axhline(1.0, color="0.6", linestyle="--", linewidth=0.8)
    ax.axhline(0.0, color="0.6", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("edges kept (% of the graph's edges, log scale)")
    metric = next(iter(curves.values())).metric
    ax.set_ylabel(f"faithfulness f(k) ({metric})")
    ax.set_title(title or "Faithfulness over circuit size (MIB)")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # whole or not at all, and only in a folder that exists
        fig.savefig(tmp, format=fmt)
    return path
