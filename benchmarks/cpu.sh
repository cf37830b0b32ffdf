#!/usr/bin/env bash
# `make bench`: circuit-catalog and auto-circuit side by side on this machine's CPU, about 15 minutes on two quiet
# cores (one torch thread each side, the sides one after the other; 875 s on 2026-11-29).
#   ours: tiny, mid (32 prompts) and the shipped toy model: acdc (tau 0.01), eap; on mid also acdc-kept at the
#         taus keeping ~1 %, 3 %, 10 % of the edges (KEPT);
#         gpt2-small shape (SMALL_PROMPTS = 4 prompts of 16 tokens): acdc (tau 0.01) and acdc-kept (KEPT_SMALL,
#         default 1 % and 3 %: about 2 and 9 minutes; KEPT_SMALL=0.01 leaves the 3 % row out)
#   peer: tiny and mid: acdc (tau 0.01), eap; its mid ACDC visits PEER_EDGES edges and is extrapolated
#         (PEER_EDGES=0 runs it whole: about 10 minutes on two busy cores);
#         gpt2-small shape (the same 4 prompts): acdc, visiting PEER_EDGES_SMALL edges, extrapolated (its whole
#         run would take hours here)
# acdc-kept's taus are read from benchmarks/results/taus.json (found by bench.py's search, which records its
# probes there); SEARCH=1 searches them again (and rewrites that file).
# Writes benchmarks/results/cpu.json (merged, with ratios; see compare.py) and prints the table.
# THREADS (default 1): torch threads on both sides. The machine is shared; one thread each gives numbers that
# two busy cores do not scramble (set THREADS=0 for torch's default).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
PEER_EDGES=${PEER_EDGES:-300}
PEER_EDGES_SMALL=${PEER_EDGES_SMALL:-200}
KEPT=${KEPT:-0.01,0.03,0.1}
KEPT_SMALL=${KEPT_SMALL:-0.01,0.03}
SMALL_PROMPTS=${SMALL_PROMPTS:-4}
OUT=${BENCH_OUT:-out/bench-cpu}
OURS_PY=${OURS_PY:-.venv/bin/python}
TAUS=benchmarks/results/taus.json
SEARCH_ARG=()
[ "${SEARCH:-0}" = 1 ] && SEARCH_ARG=(--search)
mkdir -p "$OUT"
bash benchmarks/setup-peer-venv.sh
T0=$(date +%s)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$OURS_PY" benchmarks/bench.py --device cpu --shapes tiny,toy --algos acdc,eap \
  --threads "$THREADS" --out "$OUT/ours-tiny.json"
"$OURS_PY" benchmarks/bench.py --device cpu --shapes mid --algos acdc,acdc-kept,eap --kept "$KEPT" \
  --tau-file "$TAUS" "${SEARCH_ARG[@]}" --threads "$THREADS" --out "$OUT/ours-mid.json"
"$OURS_PY" benchmarks/bench.py --device cpu --shapes gpt2-small --n-prompts "$SMALL_PROMPTS" \
  --algos acdc,acdc-kept --kept "$KEPT_SMALL" --tau-file "$TAUS" "${SEARCH_ARG[@]}" --threads "$THREADS" \
  --out "$OUT/ours-small.json"
.venv-autocircuit/bin/python benchmarks/peer_autocircuit.py --device cpu --shapes tiny,mid --algos eap,acdc \
  --acdc-max-edges "$PEER_EDGES" --max-edges-for mid --threads "$THREADS" --out "$OUT/peer.json" \
  2>"$OUT/peer.stderr"
.venv-autocircuit/bin/python benchmarks/peer_autocircuit.py --device cpu --shapes gpt2-small \
  --n-prompts "$SMALL_PROMPTS" --algos acdc --acdc-max-edges "$PEER_EDGES_SMALL" --threads "$THREADS" \
  --out "$OUT/peer-small.json" 2>>"$OUT/peer.stderr"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); $(( $(date +%s) - T0 )) s"
echo
"$OURS_PY" benchmarks/compare.py "$OUT/ours-tiny.json" "$OUT/ours-mid.json" "$OUT/ours-small.json" \
  "$OUT/peer.json" "$OUT/peer-small.json" --out benchmarks/results/cpu.json
