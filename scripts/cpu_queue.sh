#!/usr/bin/env bash
# Published runs on this machine's CPU, one after another, across sessions that end mid-run (where the
# machine, and so the run folders with their checkpoints, outlive the session):
#
#   nohup scripts/cpu_queue.sh dcgan:-:1 dcgan:-:2 classifier:onecycle:0 > queue.log 2>&1 &
#
# A job is EXPERIMENT:VARIANT:SEED as in scripts/gpu_runs.sh (a dcgan job includes its FID). Every
# step continues what is there: training with --resume (from its last checkpoint; a finished run is
# reused), FID from the scores already made. So the same command, started again in the next session,
# goes on where the last one was stopped. A dcgan job also writes the run's fixed_samples.pt (Figure 5)
# and scores its first FID snapshot with the generator's batch norms in training mode (fid-...-batchbn:
# the book shows both for every run, about 12 min on 2 CPU cores).
# EXPERIMENT:VARIANT:SEED:UNTIL screens a dcgan: trains it to step UNTIL only (the run stays partial, so
# the same job without UNTIL carries it on to the end) and scores the FID sweep up to there
# (fid-...-screen16k), on the same scale as the whole runs' sweeps.
# Nothing is committed: python -m effcifar publish RUN, then commit what it names.
# PROFILE (paper), DATA (../shared/data), ARGS (more options, e.g. "--out /tmp/r --no-verify").
set -euo pipefail
py=${PYTHON:-.venv/bin/python}
if [ ! -x "$py" ]; then   # a fresh machine: nothing installed yet
    echo "no $py: run 'make setup' first (offline, also '$py -m effcifar fid-weights' for the FID)" >&2
    exit 1
fi
batchbn=$("$py" -c "import sys; from effcifar.config import batch_bn_fid; print(' '.join(f'--set {k}={v}' for k, v in batch_bn_fid(sys.argv[1]).items()))" "${PROFILE:-paper}")   # as the book reads it
for job in "$@"; do
    IFS=: read -r experiment variant seed until <<<"$job"
    args=(--profile "${PROFILE:-paper}" --data "${DATA:-../shared/data}" --seed "$seed" --device cpu ${ARGS:-})
    if [ "$variant" != "-" ]; then args+=(--variant "$variant"); fi
    echo "== $job: $(date -u +%H:%M:%S) =="
    run=$("$py" -m effcifar "train-$experiment" "${args[@]}" --resume --until "${until:-0}" | tail -n 1)   # its folder
    echo "$run"
    if [ -n "$until" ]; then   # a screen (of a classifier: the partial run alone)
        if [ "$experiment" = dcgan ]; then "$py" -m effcifar fid "${args[@]}" --set until="$until"; fi
    elif [ "$experiment" = dcgan ]; then   # as scripts/gpu_runs.sh: the fixed-noise samples of every snapshot too
        "$py" -m effcifar fid "${args[@]}"
        "$py" -m effcifar fid "${args[@]}" $batchbn
        "$py" -c "import sys; from effcifar.dcgan import fixed_samples; fixed_samples(sys.argv[1])" "$run"
    fi
done
echo "== all done: $(date -u +%H:%M:%S) =="
