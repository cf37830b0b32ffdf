#!/usr/bin/env bash
# `make bench`: circuit-catalog and auto-circuit side by side on this machine's CPU, a few minutes.
#   ours: tiny, mid and the shipped toy model; acdc (tau 0.01 and the realistic tau) and eap
#   peer: tiny and mid; acdc (tau 0.01) and eap; its mid ACDC visits PEER_EDGES edges and is extrapolated
#         (PEER_EDGES=0 runs it whole: about 10 minutes on two busy cores)
# Writes benchmarks/results/cpu.json (merged, with ratios; see compare.py) and prints the table.
# THREADS (default 1): torch threads on both sides. The machine is shared; one thread each gives numbers that
# two busy cores do not scramble (set THREADS=0 for torch's default).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
PEER_EDGES=${PEER_EDGES:-300}
OUT=${BENCH_OUT:-out/bench-cpu}
OURS_PY=${OURS_PY:-.venv/bin/python}
mkdir -p "$OUT"
bash benchmarks/setup-peer-venv.sh
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$OURS_PY" benchmarks/bench.py --device cpu --shapes tiny,mid,toy --algos acdc,eap \
  --threads "$THREADS" --out "$OUT/ours.json"
.venv-autocircuit/bin/python benchmarks/peer_autocircuit.py --device cpu --shapes tiny,mid --algos eap,acdc \
  --acdc-max-edges "$PEER_EDGES" --max-edges-for mid --threads "$THREADS" --out "$OUT/peer.json" 2>"$OUT/peer.stderr"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$OURS_PY" benchmarks/compare.py "$OUT/ours.json" "$OUT/peer.json" --out benchmarks/results/cpu.json
