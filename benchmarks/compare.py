"""Merges circuit-catalog's rows (bench.py) and auto-circuit's (peer_autocircuit.py) into one table, with the ratio
auto-circuit seconds / circuit-catalog seconds (above 1: we are faster).

    python3 benchmarks/compare.py OURS.json PEER.json [...] --out benchmarks/results/cpu.json

The output file is one JSON list of objects:
  * every measured row, as its tool wrote it (``tool`` is ``circuit-catalog`` or ``auto-circuit``; at least
    ``shape``, ``device``, ``dtype``, ``algo``, ``n_edges``, ``seconds``; CPU rows carry ``load_avg``, the 1/5/15-min
    load average when the row was written; ``seconds`` is null for a skipped or unfinished row);
  * then one ratio row per comparable pair, ``tool: "ratio"``: ``shape``, ``device``, ``algo`` (ours),
    ``peer_algo``, ``n_edges``, ``seconds`` (ours), ``peer_seconds``, ``ratio`` = peer_seconds / seconds,
    ``dtype`` (ours) and ``peer_dtype``, ``same_dtype``, ``peer_extrapolated``, and ``note``.

Pairs, for the same shape and device: ACDC with ACDC at the same tau (``acdc``), and auto-circuit's ACDC with our
``acdc-realistic`` row too (its ACDC costs one forward per edge whatever tau keeps; ours grows with the edges kept);
``eap`` with ``eap``, ``eap-ig`` with ``eap-ig``, and auto-circuit's reference ``eap-slow`` with our ``eap``. A pair
in the same dtype is always made; where we also ran another dtype (bfloat16 on the GPU, where auto-circuit runs
float32) that pair is made as well, with ``same_dtype: false``. Rows of other algorithms or shapes (toy) are listed
without a ratio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHAPES, fmt, read_rows, table, write_rows

OURS, PEER = "circuit-catalog", "auto-circuit"
# peer algo -> our algos it is compared with
PAIRS: dict[str, tuple[str, ...]] = {
    "acdc": ("acdc", "acdc-realistic"),
    "eap": ("eap",),
    "eap-ig": ("eap-ig",),
    "eap-slow": ("eap",),
}
NOTES = {
    ("acdc", "acdc-realistic"): "auto-circuit at tau 0.01 vs ours at the realistic tau",
    ("eap-slow", "eap"): "auto-circuit's reference (per-edge loop) EAP",
}
SHAPE_ORDER = {name: i for i, name in enumerate([*SHAPES, "toy"])}
ALGO_ORDER = {a: i for i, a in enumerate(
    ["acdc", "acdc-realistic", "eap", "eap-slow", "eap-ig", "path-patching", "node-pruning"])}


def sort_key(r: dict[str, Any]) -> tuple:
    return (SHAPE_ORDER.get(r.get("shape"), 99), r.get("device", ""), ALGO_ORDER.get(r.get("algo"), 99),
            r.get("tool") != OURS, r.get("dtype", ""))


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ours = [r for r in rows if r.get("tool") == OURS and r.get("seconds")]
    out = []
    for p in rows:
        if p.get("tool") != PEER or not p.get("seconds"):
            continue
        for algo in PAIRS.get(p["algo"], ()):
            matches = [o for o in ours if (o["shape"], o["device"], o["algo"]) == (p["shape"], p["device"], algo)]
            if not matches:
                continue
            if algo == p["algo"] == "acdc":
                matches = [o for o in matches if o.get("tau") == p.get("tau")]
            for o in matches:
                note = NOTES.get((p["algo"], algo), "")
                if p.get("extrapolated"):
                    note = "; ".join(filter(None, [note, f"auto-circuit extrapolated from {p.get('edges_visited')} edges"]))
                out.append({
                    "tool": "ratio", "shape": o["shape"], "device": o["device"],
                    "device_name": o.get("device_name"), "algo": algo, "peer_algo": p["algo"],
                    "n_edges": o.get("n_edges"), "edges_kept": o.get("edges_kept"), "tau": o.get("tau"),
                    "seconds": o["seconds"], "peer_seconds": p["seconds"],
                    "ratio": round(p["seconds"] / o["seconds"], 2),
                    "dtype": o.get("dtype"), "peer_dtype": p.get("dtype"),
                    "same_dtype": o.get("dtype") == p.get("dtype"),
                    "peer_extrapolated": bool(p.get("extrapolated")), "note": note,
                })
    out.sort(key=lambda r: (sort_key(r), not r["same_dtype"]))
    return out


def ratio_table(rs: list[dict[str, Any]]) -> str:
    lines = ["| shape | device | algo (ours vs auto-circuit) | dtype (ours / peer) | ours s | auto-circuit s | "
             "ratio | note |", "|---|---|---|---|---|---|---|---|"]
    for r in rs:
        algo = r["algo"] if r["algo"] == r["peer_algo"] else f"{r['algo']} vs {r['peer_algo']}"
        lines.append(f"| {r['shape']} | {r['device']} | {algo} | {r['dtype']} / {r['peer_dtype']} | "
                     f"{fmt(r['seconds'])} | {fmt(r['peer_seconds'])} | **{r['ratio']:.3g}x** | {r['note']} |")
    return "\n".join(lines)


def merge(paths: list[Path], out: Optional[Path]) -> list[dict[str, Any]]:
    rows = [r for r in read_rows(paths) if r.get("tool") in (OURS, PEER)]
    rows.sort(key=sort_key)
    rs = ratios(rows)
    write_rows(out, rows + rs)
    return rows + rs


def render(all_rows: list[dict[str, Any]]) -> str:
    rows = [r for r in all_rows if r.get("tool") != "ratio"]
    rs = [r for r in all_rows if r.get("tool") == "ratio"]
    parts = ["Measured rows:", "", table(rows)]
    if rs:
        parts += ["", "auto-circuit / circuit-catalog (ratio > 1: circuit-catalog is faster):", "", ratio_table(rs)]
    loads = sorted({tuple(r["load_avg"]) for r in rows if r.get("load_avg")})
    if loads:
        parts += ["", f"CPU load average (1/5/15 min) when rows were written: from {list(loads[0])} "
                      f"to {list(loads[-1])}"]
    names = sorted({r["device_name"] for r in rows if r.get("device_name")})
    if names:
        parts += [f"device: {'; '.join(names)}"]
    return "\n".join(parts)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="JSON row files from bench.py and peer_autocircuit.py")
    ap.add_argument("--out", type=Path, help="merged JSON (e.g. benchmarks/results/cpu.json)")
    args = ap.parse_args(argv)
    merged = merge(args.inputs, args.out)
    print(render(merged))
    if args.out:
        print(f"\n(merged rows written to {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
