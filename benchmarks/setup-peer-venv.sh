#!/usr/bin/env bash
# Make the peer's own virtual environment, .venv-autocircuit (auto-circuit 1.0.1 needs TransformerLens < 3, so it
# can never share the project's .venv). Idempotent: a stamp file says it is done; delete the folder to redo it.
# Follows the install steps of the peer's notes: the CPU torch first, so pip never resolves a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${PEER_VENV:-.venv-autocircuit}
STAMP=$VENV/.installed-autocircuit-1.0.1
[ -f "$STAMP" ] && exit 0
echo "setting up $VENV (auto-circuit 1.0.1, TransformerLens 2.18) ..."
$PYTHON -m venv "$VENV"
LOG=$VENV/install.log
pip() { "$VENV/bin/python" -m pip install -q "$@" >>"$LOG" 2>&1 || { tail -30 "$LOG"; echo "pip install $* failed"; exit 1; }; }
pip torch==2.13.0
pip --no-deps auto-circuit==1.0.1
pip "transformer-lens==2.18.0" ordered-set blobfile plotly einops vscode-tqdm
pip "transformers==5.17.0" "huggingface-hub>=1.31,<2" "numpy>=2" "datasets==5.2.0" "pyarrow>=24" "pandas>=2.3"
"$VENV/bin/python" -c "import auto_circuit, transformer_lens, torch; print('peer venv ok: torch', torch.__version__)"
touch "$STAMP"
