#!/usr/bin/env bash
# Published runs on a rented GPU machine that has PyTorch but no network (the published GPU runs were
# made with it; book appendix "Publishing and replaying runs"). Run from the repository root:
#
#   EFFCIFAR_GIT_COMMIT=<commit of this tree> OUT=<folder to bring back> scripts/gpu_runs.sh PAYLOAD_DIR
#
# PAYLOAD_DIR holds payload.tar.part* (split with `split -b`): cifar-100-python/{train,test,meta} (the
# official files, md5-verified again when loaded), hub/checkpoints/pt_inception-2015-12-05-6726825d.pth
# with its .provenance.json (from `python -m effcifar fid-weights`), and pytorch-fid's wheel; and
# SHA256SUMS for all of them.
#
# LANES: one lane per line; the lanes run at once (these small networks leave most of a GPU idle), the
# jobs of a lane one after another. A job is EXPERIMENT:VARIANT:SEED, EXPERIMENT classifier or dcgan
# (a dcgan job includes its FID), VARIANT a name in effcifar.config.VARIANTS or "-" for the paper's
# recipe. Default: the paper DCGAN, seeds 0, 1, 2 in one lane. As each job ends, its small result files
# (no optimizer checkpoints; of a DCGAN the generator snapshots that FID scored at 10,000 samples, the
# others as fixed-noise samples) are packed into $OUT/<run>.tgz, so a call cut short still returns the
# jobs it finished. DEADLINE (seconds, optional) stops every lane then. Logs: $OUT/<lane>.log.
set -euo pipefail
payload=$(cd "$1" && pwd)
work=${WORK:-/tmp/effcifar}
out=${OUT:?set OUT}
lanes=${LANES:-"dcgan:-:0 dcgan:-:1 dcgan:-:2"}
profile=${PROFILE:-paper}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30 TORCH_HOME=$work OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

mkdir -p "$work" "$out"
if [ ! -f "$work/.unpacked" ]; then
    cat "$payload"/payload.tar.part* | tar -x -C "$work"
    (cd "$work" && sha256sum -c --quiet "$payload/SHA256SUMS")
    python3 -m pip install -q --no-index --no-deps --target "$work/site" "$work"/pytorch_fid-*.whl
    touch "$work/.unpacked"
fi
export PYTHONPATH="$work/site:$PWD"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')" | tee -a "$out/log.txt"

common=(--profile "$profile" --data "$work" --device "${DEVICE:-cuda}" --out "$work/results" --no-download)
batchbn=$(python3 -c "import sys; from effcifar.config import batch_bn_fid; print(' '.join(f'--set {k}={v}' for k, v in batch_bn_fid(sys.argv[1]).items()))" "$profile")   # as the book reads it

pack() {   # pack EXPERIMENT RUN [FID_RUN]: the run's small files into $out/RUN.tgz
    python3 - "$work/results" "$@" <<'EOF_PY' | tar -czf "$out/$2.tgz" -C "$work/results" -T -
import csv, sys
from pathlib import Path
from effcifar.dcgan import fixed_samples
root, experiment, run = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[1]) / sys.argv[3]
folders, scored = [run], None
if experiment == "dcgan":
    fid = root / sys.argv[4]
    fixed_samples(run)
    scored = {int(r["step"]) for r in csv.DictReader(open(fid / "fid.csv"))}
    folders += [fid, root / (sys.argv[4] + "-batchbn")]
for p in sorted(q for f in folders for q in f.rglob("*")):
    if p.is_file() and p.name not in ("checkpoint.pt", "G.pt", "D.pt", "run.lock") and ".tmp" not in p.name and (
            not p.name.startswith("G_step") or int(p.stem[6:]) in scored):
        print(p.relative_to(root))
EOF_PY
}

job() {   # job EXPERIMENT:VARIANT:SEED
    IFS=: read -r experiment variant seed <<<"$1"
    local args=("${common[@]}" --seed "$seed") name=$experiment-$profile
    if [ "$variant" != "-" ]; then args+=(--variant "$variant"); name+=-$variant; fi
    local t0=$(date +%s)
    python3 -m effcifar "train-$experiment" "${args[@]}"
    local t1=$(date +%s)
    if [ "$experiment" = dcgan ]; then
        python3 -m effcifar fid "${args[@]}"
        python3 -m effcifar fid "${args[@]}" $batchbn
        pack dcgan "$name-seed$seed" "fid-${name#dcgan-}-seed$seed"
    else
        pack classifier "$name-seed$seed"
    fi
    echo "$1: train $((t1 - t0)) s, then $(($(date +%s) - t1)) s (FID, packing)" | tee -a "$out/log.txt"
}

lane() {
    for j in $1; do
        [ -f "$work/stop" ] && break
        job "$j" || echo "$j: FAILED or stopped" | tee -a "$out/log.txt"
    done
}

rm -f "$work/stop"
pids=()
i=0
while read -r jobs; do
    [ -z "$jobs" ] && continue
    i=$((i + 1))
    lane "$jobs" > "$out/lane$i.log" 2>&1 &
    pids+=($!)
done <<<"$lanes"
if [ -n "${DEADLINE:-}" ]; then
    (sleep "$DEADLINE"; echo "deadline ${DEADLINE} s: stopping the lanes" | tee -a "$out/log.txt"
     touch "$work/stop"; pkill -f "python3 -m effcifar" || true) &
    watchdog=$!
fi
for p in "${pids[@]}"; do wait "$p" || true; done
[ -n "${watchdog:-}" ] && kill "$watchdog" 2>/dev/null || true
echo "done at $(date -u +%H:%M:%S)" | tee -a "$out/log.txt"
