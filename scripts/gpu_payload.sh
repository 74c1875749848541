#!/usr/bin/env bash
# The payload that scripts/gpu_runs.sh unpacks on a GPU machine without network, in parts small enough
# to carry one per call (the `device` tool carries at most 64 MiB of ignored files a call):
#
#   scripts/gpu_payload.sh [DATA] [DEST]     # defaults: ../shared/data, .carry (ignored by git)
#
# DEST gets payload.tar.part0, part1, ... (55 MiB each) and SHA256SUMS: the official CIFAR-100 files
# (DATA/cifar-100-python, md5-verified here first), the FID Inception weights with their provenance
# (written by `python -m effcifar fid-weights` if this machine has none) and pytorch-fid's wheel at the
# pinned version. On the GPU machine, one call per part, back to back (ignored files stay while warm):
#   carry [".carry/payload.tar.partN", ".carry/SHA256SUMS"]: mkdir -p /tmp/parts && cp .carry/* /tmp/parts/
# then: EFFCIFAR_GIT_COMMIT=<commit> OUT=$OUT DEADLINE=<s> LANES="..." bash scripts/gpu_runs.sh /tmp/parts
set -euo pipefail
data=${1:-../shared/data}
dest=${2:-.carry}
py=${PYTHON:-.venv/bin/python}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

"$py" -c "from effcifar.data import ensure_cifar100; ensure_cifar100('$data', verify=True, download=False)"
mkdir -p "$stage/hub/checkpoints" "$dest"
cp -r "$data/cifar-100-python" "$stage/"
weights=$("$py" -c "from effcifar.fid import weights_path; print(weights_path())")
[ -f "$weights" ] || "$py" -m effcifar fid-weights
cp "$weights" "$weights.provenance.json" "$stage/hub/checkpoints/"
version=$(sed -n 's/^pytorch-fid==//p' requirements-lock.txt)
"$py" -m pip download -q --no-deps --only-binary=:all: -d "$stage" "pytorch-fid==$version"

rm -f "$dest"/payload.tar.part* "$dest/SHA256SUMS"
(cd "$stage" && find . -type f | sort | xargs sha256sum) > "$dest/SHA256SUMS"
tar -c -C "$stage" . | split -b 55M -d -a 1 - "$dest/payload.tar.part"
ls -l "$dest"
