"""What both benchmark sides share: the model shapes, the random prompts, the JSON rows and the table.

Imported by ``bench.py`` (the project's venv) and by ``peer_autocircuit.py`` (auto-circuit's own venv), so it needs
nothing but the standard library and, for the prompts, torch.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

N_PROMPTS = 32
SEQ_LEN = 16


@dataclass(frozen=True)
class Shape:
    n_layers: int
    n_heads: int
    d_model: int
    d_mlp: int
    d_vocab: int
    n_ctx: int = 1024

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


SHAPES: dict[str, Shape] = {
    "tiny": Shape(2, 4, 128, 512, 200, n_ctx=64),
    "mid": Shape(4, 8, 256, 1024, 200, n_ctx=64),
    "gpt2-small": Shape(12, 12, 768, 3072, 50257),
    "gpt2-medium": Shape(24, 16, 1024, 4096, 50257),
}


def random_prompts(vocab: int, n_prompts: int = N_PROMPTS, seq_len: int = SEQ_LEN, seed: int = 0):
    """(clean, corrupted, answers, wrong) on the CPU: random clean prompts ``[n, seq]``; corrupted = clean with
    every token but the last redrawn; one random answer and one random wrong token per prompt ``[n, 1]``.
    Both sides draw exactly these, so they run on the same token ids."""
    import torch

    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, vocab, (n_prompts, seq_len), generator=g)
    corrupted = clean.clone()
    corrupted[:, : seq_len - 1] = torch.randint(0, vocab, (n_prompts, seq_len - 1), generator=g)
    answers = torch.randint(0, vocab, (n_prompts, 1), generator=g)
    wrong = torch.randint(0, vocab, (n_prompts, 1), generator=g)
    return clean, corrupted, answers, wrong


def load_average() -> Optional[list[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def reset_peak_rss() -> str:
    """Resets this process's peak resident set (Linux: ``5`` to ``/proc/self/clear_refs`` resets VmHWM); returns
    what ``peak_rss_gib`` will then measure: ``"row"`` or, where it cannot be reset, ``"process"``."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return "row"
    except OSError:
        return "process"


def peak_rss_gib() -> Optional[float]:
    """The peak resident set since ``reset_peak_rss`` (VmHWM), or the process's (``ru_maxrss``), in GiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**20, 3)
    except OSError:
        pass
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    except (ImportError, OSError):
        return None


def cpu_name() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def write_rows(path: Optional[Path], rows: list[dict[str, Any]]) -> None:
    """Rewrite ``path`` with ``rows`` (atomically: a killed run leaves the previous complete file)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    os.replace(tmp, path)


def read_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for p in paths:
        try:
            data = json.loads(Path(p).read_text())
        except (OSError, ValueError) as err:
            print(f"note: {p} unreadable ({err}); skipped")
            continue
        rows += data if isinstance(data, list) else [data]
    return rows


COLUMNS = ("tool", "shape", "device", "dtype", "n_prompts", "algo", "tau", "n_edges", "edges_kept", "kept_fraction",
           "seconds", "forwards", "wasted_copies", "rss_peak_gib", "gpu_peak_gib")


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def status(row: dict[str, Any]) -> str:
    if row.get("skipped"):
        return f"skipped: {row['skipped']}"
    if row.get("incomplete"):
        return "incomplete (deadline)"
    if row.get("failed"):
        return f"failed: {row['failed']}"
    if row.get("extrapolated"):
        return f"extrapolated from {row.get('edges_visited')} edges ({row.get('seconds_visited')} s)"
    return ""


def table(rows: list[dict[str, Any]], columns: Iterable[str] = COLUMNS) -> str:
    """A markdown table of ``rows``: the columns any row fills, then a note (skipped, extrapolated, ...)."""
    cols = [c for c in columns if any(r.get(c) is not None for r in rows)]
    notes = [status(r) for r in rows]
    if any(notes):
        cols.append("note")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r, note in zip(rows, notes):
        cells = [note if c == "note" else fmt(r.get(c)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
