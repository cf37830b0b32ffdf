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

Pairs, for the same shape, device and prompts: ACDC with ACDC at the same tau (``acdc``), and auto-circuit's ACDC
with each of our ``acdc-kept`` rows too (its ACDC costs one forward per edge whatever tau keeps; ours grows with the
edges kept); ``eap`` with ``eap``, ``eap-ig`` with ``eap-ig``, and auto-circuit's reference ``eap-slow`` with our
``eap``. A pair in the same dtype is always made; where we also ran another dtype (bfloat16 on the GPU, where
auto-circuit runs float32) that pair is made as well, with ``same_dtype: false``. Rows of other algorithms or shapes
(toy) are listed without a ratio. ACDC ratio rows also carry ``kept_fraction`` (ours), ``vs_ours_at_tau`` (our
seconds over our own ``acdc`` row's, at ``--tau``, which keeps no edge on random weights), ``per_test_vs_ours_at_tau``
(the same per edge tested: ``tested`` against ``ours_at_tau_tested``) and ``memory_ratio`` (our peak over the
peer's: ``rss_peak_gib`` on the CPU, ``gpu_peak_gib`` on CUDA; below 1: ours needs less).
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
    "acdc": ("acdc", "acdc-kept"),
    "eap": ("eap",),
    "eap-ig": ("eap-ig",),
    "eap-slow": ("eap",),
}
NOTES = {
    ("acdc", "acdc-kept"): "auto-circuit at tau 0.01 vs ours at a tau keeping edges",
    ("eap-slow", "eap"): "auto-circuit's reference (per-edge loop) EAP",
}
SHAPE_ORDER = {name: i for i, name in enumerate([*SHAPES, "toy"])}
ALGO_ORDER = {a: i for i, a in enumerate(
    ["acdc", "acdc-kept", "eap", "eap-slow", "eap-ig", "path-patching", "node-pruning"])}


def sort_key(r: dict[str, Any]) -> tuple:
    return (SHAPE_ORDER.get(r.get("shape"), 99), r.get("device", ""), r.get("n_prompts") or 0,
            ALGO_ORDER.get(r.get("algo"), 99), r.get("target_kept") or 0, r.get("tool") != OURS, r.get("dtype", ""))


def same_subject(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("shape", "device", "n_prompts", "seq_len"))


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ours = [r for r in rows if r.get("tool") == OURS and r.get("seconds")]
    out = []
    for p in rows:
        if p.get("tool") != PEER or not p.get("seconds"):
            continue
        for algo in PAIRS.get(p["algo"], ()):
            matches = [o for o in ours if o["algo"] == algo and same_subject(o, p)]
            if algo == p["algo"] == "acdc":
                matches = [o for o in matches if o.get("tau") == p.get("tau")]
            for o in matches:
                note = NOTES.get((p["algo"], algo), "")
                if p.get("extrapolated"):
                    note = "; ".join(filter(None, [note, f"auto-circuit extrapolated from {p.get('edges_visited')} edges"]))
                row = {
                    "tool": "ratio", "shape": o["shape"], "device": o["device"], "n_prompts": o.get("n_prompts"),
                    "device_name": o.get("device_name"), "algo": algo, "peer_algo": p["algo"],
                    "n_edges": o.get("n_edges"), "edges_kept": o.get("edges_kept"),
                    "kept_fraction": o.get("kept_fraction"), "target_kept": o.get("target_kept"), "tau": o.get("tau"),
                    "seconds": o["seconds"], "peer_seconds": p["seconds"],
                    "ratio": round(p["seconds"] / o["seconds"], 2),
                    "dtype": o.get("dtype"), "peer_dtype": p.get("dtype"),
                    "same_dtype": o.get("dtype") == p.get("dtype"),
                    "peer_extrapolated": bool(p.get("extrapolated")), "note": note,
                }
                memory = "gpu_peak_gib" if o["device"] == "cuda" else "rss_peak_gib"
                if o.get(memory) and p.get(memory):
                    row |= {"memory": memory, "peak_gib": o[memory], "peer_peak_gib": p[memory],
                            "memory_ratio": round(o[memory] / p[memory], 3)}
                if algo.startswith("acdc"):
                    zero = [z for z in ours if z["algo"] == "acdc" and same_subject(z, o) and z["dtype"] == o["dtype"]]
                    if zero:
                        row |= {"ours_at_tau": zero[0]["seconds"], "ours_tau": zero[0].get("tau"),
                                "vs_ours_at_tau": round(o["seconds"] / zero[0]["seconds"], 2)}
                        if o.get("tested") and zero[0].get("tested"):
                            per_test = (o["seconds"] / o["tested"]) / (zero[0]["seconds"] / zero[0]["tested"])
                            row |= {"tested": o["tested"], "ours_at_tau_tested": zero[0]["tested"],
                                    "per_test_vs_ours_at_tau": round(per_test, 2)}
                out.append(row)
    out.sort(key=lambda r: (sort_key(r), not r["same_dtype"]))
    return out


def ratio_table(rs: list[dict[str, Any]]) -> str:
    lines = ["| shape | device | prompts | algo (ours vs auto-circuit) | dtype (ours / peer) | kept | ours s | "
             "auto-circuit s | ratio | ours / ours at tau 0.01 (per edge tested) | peak memory ours / peer (GiB) | "
             "note |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        algo = r["algo"] if r["algo"] == r["peer_algo"] else f"{r['algo']} vs {r['peer_algo']}"
        kept = f"{r['kept_fraction']:.2%}" if r.get("kept_fraction") is not None else "-"
        own = f"{r['vs_ours_at_tau']:.3g}x" if r.get("vs_ours_at_tau") is not None else "-"
        if r.get("per_test_vs_ours_at_tau") is not None:
            own += f" ({r['per_test_vs_ours_at_tau']:.3g}x)"
        mem = f"{r['peak_gib']:.2f} / {r['peer_peak_gib']:.2f}" if r.get("memory_ratio") is not None else "-"
        lines.append(f"| {r['shape']} | {r['device']} | {fmt(r.get('n_prompts'))} | {algo} | "
                     f"{r['dtype']} / {r['peer_dtype']} | {kept} | {fmt(r['seconds'])} | {fmt(r['peer_seconds'])} | "
                     f"**{r['ratio']:.3g}x** | {own} | {mem} | {r['note']} |")
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
