#!/usr/bin/env bash
# Download into .whlac/ (ignored by git) the wheels auto-circuit needs on the GPU machine, which has no registry
# (Python 3.12, x86-64 manylinux; it already has torch, transformers, numpy, pandas, pyarrow, narwhals, einops,
# jaxtyping, tqdm, rich, lxml, xxhash, accelerate, ...: /work/.library/device/KINDS.md). benchmarks/gpu.sh installs
# them there with   pip install --no-index --no-deps --target .acsite .whlac/*.whl   (apart from the project's own
# .whl/ and .site/, since auto-circuit needs TransformerLens 2, the project TransformerLens 4).
#
# The list is the peer's notes' (/work/shared/peers/README.md), pinned to the versions its CPU environment here
# runs. Checked by running the peer on every algorithm here and mapping every module it imported to its
# distribution: each one is either in the GPU image or below. (auto-circuit's declared kaleido, tracr-pypi and
# word2word, and TransformerLens's wandb and transformers-stream-generator, are never imported by what we run.)
# Left out of the notes' list: vscode-tqdm (a fork of tqdm 4.66.2 that would shadow the image's tqdm for the peer):
# in the peer's CPU environment here pip's later tqdm replaced the fork's files, so the peer was only ever checked
# with the ordinary tqdm, which the image has.
# Run once here; rerunning skips what is already there. Add NAME==VERSION in EXTRA for anything else.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
grep -qx '/.whlac/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.whlac/' >> .git/info/exclude; }
mkdir -p .whlac
pkgs="auto-circuit==1.0.1 transformer-lens==2.18.0 ordered-set==4.1.0 fancy-einsum==0.0.3
beartype==0.23.1 better-abc==0.0.3 typeguard==4.6.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
plotly==7.1.0 blobfile==3.3.0 pycryptodomex==3.24.2 ${EXTRA:-}"
for p in $pkgs; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whlac "$p" 2>&1 | grep -v "^WARNING: Location" || true
done
n=$(ls .whlac/*.whl | wc -l)
echo "$n wheels in .whlac ($(du -sh .whlac | cut -f1))"
missing=0
for p in $pkgs; do
  name=$(echo "${p%%==*}" | tr 'A-Z-' 'a-z_')
  ls .whlac/ | tr 'A-Z' 'a-z' | grep -q "^${name}-" || { echo "MISSING: $p"; missing=1; }
done
exit $missing
