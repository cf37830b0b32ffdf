#!/usr/bin/env bash
# The GPU benchmark: ONE command for the GPU machine (no network there), run from the repository root:
#
#     bash benchmarks/gpu.sh                # there; carry .whl and .whlac (benchmarks/fetch-peer-wheels.sh fills it)
#     bash benchmarks/gpu.sh --dry-run      # here (or CPU=1): the same stages on the tiny shape, on the CPU,
#                                           # with the local venvs instead of the wheel installs, short deadlines
#
# Stages, most important first; each has an end time (a share of BUDGET seconds from the start, installs included),
# passed to it as --deadline (no row starts after it, and our methods stop at their next progress report) and
# enforced by `timeout` a little later. Rows are written to JSON after every row, so a cut stage keeps what it did.
#   1. ours,  gpt2-small, bfloat16: eap, acdc (tau 0.01: keeps nothing), acdc-kept (~1 % of the edges kept)
#   2. peer,  gpt2-small, float32:  acdc with --acdc-max-edges PEER_EDGES (extrapolated), eap, eap-slow
#   3. ours,  gpt2-small, float32:  eap, acdc, acdc-kept (~1 %; same dtype as the peer)
#   4. ours,  gpt2-small, bfloat16: eap-ig, path-patching, node-pruning
#   5. ours,  gpt2-medium, bfloat16: eap, acdc at the tau that keeps ~1 % on gpt2-small (incomplete rows say so,
#      never extrapolated)
# acdc-kept's tau comes from benchmarks/results/taus.json (found on the CPU, float32, the same 32 prompts; the
# bfloat16 row uses the float32 tau and says so, and what it kept): no search on the GPU.
# Then compare.py merges everything into $OUT/gpu.json (and benchmarks/results/gpu.json, which stays on the
# machine: copy $OUT/gpu.json back) and prints the merged table LAST.
# Files under $OUT (7): ours-bf16.json peer.json ours-f32.json ours-bf16-more.json ours-medium.json gpu.json log.txt
# Knobs (environment): BUDGET (seconds, default 420; dry run 40), STAGES (names to run, default all, e.g.
# STAGES="peer ours-f32" for a second try), PEER_EDGES (default 3000), KEPT (default 0.01).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=${CPU:-0}
[ "${1:-}" = "--dry-run" ] && DRY=1
T0=$(date +%s)

if [ "$DRY" = 1 ]; then
  BUDGET=${BUDGET:-40}   # so short that the last stage is cut by its deadline: that path runs too
  MIN_LEFT=2
  OUT=${OUT:-$ROOT/out/bench-gpu-dryrun}
  DEV=cpu; SMALL=tiny; MEDIUM=mid; PEER_EDGES=${PEER_EDGES:-40}; THREADS="--threads 1"
  OURS=("$ROOT/.venv/bin/python"); PEER=("$ROOT/.venv-autocircuit/bin/python")
  RESULTS=$OUT/gpu.json
  [ -x "${PEER[0]}" ] || bash benchmarks/setup-peer-venv.sh
else
  BUDGET=${BUDGET:-420}
  MIN_LEFT=10
  OUT=${OUT:-$ROOT/out/bench-gpu}
  DEV=cuda; SMALL=gpt2-small; MEDIUM=gpt2-medium; PEER_EDGES=${PEER_EDGES:-3000}; THREADS=""
  OURS=(env "PYTHONPATH=$ROOT/.site:$ROOT" python3); PEER=(env "PYTHONPATH=$ROOT/.acsite" python3)
  RESULTS=$ROOT/benchmarks/results/gpu.json
fi
mkdir -p "$OUT"
LOG=$OUT/log.txt
: > "$LOG"
export PYTHONUNBUFFERED=1
say() { echo "[gpu.sh $(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
left_until() { echo $(( T0 + $1 - $(date +%s) )); }  # seconds from now until $1 seconds after the start
end_at() { echo $(( BUDGET * $1 / 100 )); }           # a stage's end: a percentage of the budget

say "mode: $([ "$DRY" = 1 ] && echo "dry run (CPU, $SMALL)" || echo "GPU") budget ${BUDGET}s, out $OUT"
if [ "$DRY" != 1 ]; then
  { nvidia-smi -L; python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'; } 2>&1 | tee -a "$LOG"
  # Ours needs only torch on the GPU; .whl (the project's wheels, TransformerLens 4) is installed as the project
  # does, for anything it imports. The peer's wheels go apart, in .acsite: it needs TransformerLens 2.
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target .site .whl/*.whl >>"$LOG" 2>&1 \
    || say "WARNING: installing .whl into .site failed (see log.txt)"
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target .acsite .whlac/*.whl >>"$LOG" 2>&1 \
    || say "WARNING: installing .whlac into .acsite failed (see log.txt)"
  say "installed wheels"
fi

STAGES=${STAGES:-ours-bf16 peer ours-f32 ours-bf16-more ours-medium}
KEPT=${KEPT:-0.01}
TAUS=$ROOT/benchmarks/results/taus.json
# gpt2-medium's ACDC tau: the one that keeps KEPT on gpt2-small (float32, 32 prompts), else 1e-4
MEDIUM_TAU=$("${OURS[@]}" -c "import json,sys; t=json.load(open(sys.argv[1])); print(t.get(sys.argv[2], {}).get('tau', 1e-4))" \
  "$TAUS" "$SMALL/float32/32x16/kept=$KEPT" 2>/dev/null || echo 1e-4)

# stage NAME END_PERCENT COMMAND...: runs COMMAND with --deadline until the stage's end, killed 60 s after it.
stage() {
  local name=$1 end; end=$(end_at "$2"); shift 2
  case " $STAGES " in *" $name "*) ;; *) say "stage $name: not in STAGES"; return;; esac
  local left; left=$(left_until "$end")
  if [ "$left" -lt "$MIN_LEFT" ]; then say "stage $name: skipped (no time left)"; return; fi
  say "stage $name: up to ${left}s"
  timeout -k 10 $(( left + 60 )) "$@" --deadline "$left" 2>>"$LOG" | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || say "stage $name: exit status $rc (rows written so far are kept)"
}

KEPT_ARGS=(--kept "$KEPT" --tau-file "$TAUS" --tau-dtype-fallback float32 --search-probes 0)
[ "$DRY" = 1 ] && KEPT_ARGS=(--kept 0.05 --tau-file "$OUT/taus.json" --search-probes 4 --probe-seconds 5)
stage ours-bf16 30 "${OURS[@]}" benchmarks/bench.py --device $DEV --dtype bfloat16 --shapes $SMALL \
  --algos eap,acdc,acdc-kept "${KEPT_ARGS[@]}" --out "$OUT/ours-bf16.json" $THREADS
stage peer 55 "${PEER[@]}" benchmarks/peer_autocircuit.py --device $DEV --shapes $SMALL \
  --algos acdc,eap,eap-slow --acdc-max-edges "$PEER_EDGES" --out "$OUT/peer.json" $THREADS
stage ours-f32 78 "${OURS[@]}" benchmarks/bench.py --device $DEV --dtype float32 --shapes $SMALL \
  --algos eap,acdc,acdc-kept "${KEPT_ARGS[@]}" --out "$OUT/ours-f32.json" $THREADS
stage ours-bf16-more 85 "${OURS[@]}" benchmarks/bench.py --device $DEV --dtype bfloat16 --shapes $SMALL \
  --algos eap-ig,path-patching,node-pruning --out "$OUT/ours-bf16-more.json" $THREADS
stage ours-medium 97 "${OURS[@]}" benchmarks/bench.py --device $DEV --dtype bfloat16 --shapes $MEDIUM \
  --algos eap,acdc --tau "$MEDIUM_TAU" --out "$OUT/ours-medium.json" $THREADS

say "merging"
inputs=()
for f in ours-bf16 peer ours-f32 ours-bf16-more ours-medium; do
  [ -s "$OUT/$f.json" ] && inputs+=("$OUT/$f.json")
done
if [ ${#inputs[@]} = 0 ]; then say "no rows at all: see $LOG"; tail -40 "$LOG"; exit 1; fi
python_cmp=("${OURS[@]}")
"${python_cmp[@]}" benchmarks/compare.py "${inputs[@]}" --out "$RESULTS" > "$OUT/table.tmp" 2>>"$LOG"
[ "$RESULTS" = "$OUT/gpu.json" ] || cp "$RESULTS" "$OUT/gpu.json"
say "done in $(( $(date +%s) - T0 ))s; rows in $OUT/gpu.json"
echo
cat "$OUT/table.tmp" | tee -a "$LOG"
rm -f "$OUT/table.tmp"
