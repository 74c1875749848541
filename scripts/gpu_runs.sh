#!/usr/bin/env bash
# The paper-profile DCGAN runs and their FID on a rented GPU machine that has PyTorch but no network,
# as the published GPU runs were made (README "Published runs"). Run from the repository root:
#
#   EFFCIFAR_GIT_COMMIT=<commit of this tree> OUT=<folder to bring back> scripts/gpu_runs.sh PAYLOAD_DIR
#
# PAYLOAD_DIR holds payload.tar.part* (split with `split -b`): cifar-100-python/{train,test,meta} (the
# official files, md5-verified again when loaded), hub/checkpoints/pt_inception-2015-12-05-6726825d.pth
# with its .provenance.json (from `python -m effcifar fid-weights`), and pytorch-fid's wheel; and
# SHA256SUMS for all of them. SEEDS (default "0 1 2") are run one after another; after each seed its
# small result files (no optimizer checkpoints; generator snapshots at 46k and 50k only, the rest as
# fixed-noise samples) are packed into $OUT/seed<seed>.tgz, so a run cut short still returns the seeds
# it finished.
set -euo pipefail
payload=$(cd "$1" && pwd)
work=${WORK:-/tmp/effcifar}
out=${OUT:?set OUT}
seeds=${SEEDS:-0 1 2}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=20 TORCH_HOME=$work

mkdir -p "$work" "$out"
cat "$payload"/payload.tar.part* | tar -x -C "$work"
(cd "$work" && sha256sum -c --quiet "$payload/SHA256SUMS")
python3 -m pip install -q --no-index --no-deps --target "$work/site" "$work"/pytorch_fid-*.whl
export PYTHONPATH="$work/site:$PWD"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')" | tee "$out/log.txt"

profile=${PROFILE:-paper}
common=(--profile "$profile" --data "$work" --device "${DEVICE:-cuda}" --out "$work/results" --no-download)
for seed in $seeds; do
    t0=$(date +%s)
    python3 -m effcifar train-dcgan "${common[@]}" --seed "$seed"
    t1=$(date +%s)
    python3 -m effcifar fid "${common[@]}" --seed "$seed"
    t2=$(date +%s)
    echo "seed $seed: dcgan $((t1 - t0)) s, fid $((t2 - t1)) s" | tee -a "$out/log.txt"
    python3 - "$work/results" "$profile" "$seed" <<'EOF_PY' | tar -czf "$out/seed$seed.tgz" -C "$work/results" -T -
import csv, sys
from pathlib import Path
from effcifar.train import fixed_samples
root, profile, seed = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
run, fid = root / f"dcgan-{profile}-seed{seed}", root / f"fid-{profile}-seed{seed}"
fixed_samples(run)
scored = {int(r["step"]) for r in csv.DictReader(open(fid / "fid.csv"))}
for p in sorted([*run.rglob("*"), *fid.rglob("*")]):
    if p.is_file() and p.name not in ("checkpoint.pt", "G.pt", "D.pt") and not p.name.endswith(".tmp") and (
            not p.name.startswith("G_step") or int(p.stem[6:]) in scored):
        print(p.relative_to(root))
EOF_PY
done
