"""Published runs stay tied to the code: a finished run's first steps replayed on the CPU and compared
with what it recorded (book appendix "Publishing and replaying runs" says when each check applies)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .classifier import train_classifier
from .config import make_config
from .dcgan import train_dcgan
from .results import cpu_signature, experiment_of, read_csv, read_json

CPU_PREFIX = "cpu_prefix.csv"   # a GPU-made run's first steps replayed on the CPU (record_cpu_prefix)
PREFIX = {"classifier": 250, "dcgan": 500}   # the full check: one classifier evaluation, one DCGAN log window
FINGERPRINT = "fingerprint.csv"   # a short replay with finer rows, kept once the full check passes
FIRST_KIND = "x86_64-t2-bb01efa8"   # the CPU (AMD EPYC, avx512_bf16) that recorded the first runs' fingerprints
SHORT = {"classifier": (30, dict(eval_every=10, ckpt_every=30, eval_test_images=1000)),   # (steps, overrides)
         "dcgan": (50, dict(log_every=10, ckpt_every=50))}   # rows and checkpoints only: the same numbers


def prefix_steps(run: Path) -> int:
    """How many first steps of the run the full check replays: ``PREFIX``, or the first history row after it
    for a run that logs more rarely."""
    least = PREFIX[experiment_of(run)]
    return min((int(r["step"]) for r in read_csv(Path(run) / "history.csv") if int(r["step"]) >= least),
               default=least)


def _replay(run: Path, steps: int, out: Path, data: str | None = None, **overrides) -> Path:
    """The history of the finished run in ``run``, re-run from its ``config.json`` on the CPU for its first
    ``steps`` (into ``out``; ``data`` overrides where the data are; ``overrides``, other config fields). The
    run keeps its length, so a learning-rate schedule is the run's, and stops after ``steps``."""
    saved = read_json(Path(run) / "config.json")
    experiment = experiment_of(run)
    fields = {k: v for k, v in saved.items() if k != "profile"}
    fields.update(out=str(out), device="cpu", **({"data": data} if data else {}), **overrides)
    cfg = make_config(experiment, saved["profile"], **fields)
    train = {"classifier": train_classifier, "dcgan": train_dcgan}[experiment]
    return train(cfg, force=True, progress=False, until=steps) / "history.csv"


def _compare(ours: Path, theirs: Path, steps: int) -> dict:
    """{column: largest absolute difference} of two histories' rows up to ``steps``, ``worst`` (the largest
    of them), ``rows`` (how many) and ``history`` (``ours``)."""
    a, b = ([r for r in read_csv(path) if int(r["step"]) <= steps] for path in (ours, theirs))
    if not b or int(b[-1]["step"]) != steps or [r["step"] for r in a] != [r["step"] for r in b]:
        raise ValueError(f"{theirs} has no rows up to step {steps} matching the replay's "
                         f"{[r['step'] for r in a]}: choose a prefix that ends on a logged step")
    diffs = {k: max(abs(float(x[k]) - float(y[k])) for x, y in zip(a, b))
             for k in b[0] if k not in ("step", "wall_seconds", "test_images")}
    return {**diffs, "worst": max(diffs.values()), "rows": len(b), "history": ours}


def replay_prefix(run: Path, steps: int, out: Path, data: str | None = None, reference: str | None = None) -> dict:
    """Re-run the first ``steps`` steps of the finished run in ``run`` on the CPU (``_replay``) and compare
    the history rows up to ``steps`` with ``reference`` in the run (default: its ``cpu_prefix.csv`` if it
    has one, else its history). Returns {column: largest absolute difference}, ``worst`` (the largest),
    ``rows`` (how many were compared) and ``history`` (the replay's). A code change that alters the
    numbers shows here, until the runs are published again."""
    reference = reference or (CPU_PREFIX if (Path(run) / CPU_PREFIX).is_file() else "history.csv")
    return _compare(_replay(run, steps, out, data), Path(run) / reference, steps)


def _own_fingerprint(run: Path) -> Path:
    """Where this kind of CPU keeps its own fingerprint of the run (``record_cpu_fingerprint``)."""
    return Path(run) / f"fingerprint-{cpu_signature()}.csv"


def fingerprint_of(run: Path) -> Path:
    """The fingerprint this CPU replays the run against: its own (``fingerprint-<cpu_signature>.csv``,
    ``record_cpu_fingerprint``) where there is one, else the one recorded when the run was published."""
    own = _own_fingerprint(run)
    return own if own.is_file() else Path(run) / FINGERPRINT


def fingerprint_kind(run: Path) -> str:
    """The kind of CPU (``cpu_signature``) that recorded the run's ``fingerprint.csv``: the one the run was
    made on (``record_fingerprint`` keeps it only after an exact replay of the run's history, which only
    that kind gives). ``FIRST_KIND`` for a run made on a GPU or published before provenance recorded the
    signature: those fingerprints all came from that kind (each replays exactly there, 2026-12-02)."""
    prov = read_json(Path(run) / "provenance.json")
    return (prov.get("cpu_signature") if prov["device"].startswith("cpu") else None) or FIRST_KIND


def kinds_spread(run: Path) -> float:
    """How far rounding alone moves the run's fingerprint: the largest difference between its
    ``fingerprint.csv`` and the fingerprints that other kinds of CPU recorded (``record_cpu_fingerprint``);
    0 where there are none."""
    steps, ref = SHORT[experiment_of(run)][0], Path(run) / FINGERPRINT
    return max((_compare(own, ref, steps)["worst"] for own in sorted(Path(run).glob("fingerprint-*.csv"))),
               default=0.0)


def _keep_short_replay(run: Path, path: Path, data: str | None = None) -> Path:
    """Replay the run's first ``SHORT`` steps (rows every few steps) and keep that history as ``path``."""
    steps, overrides = SHORT[experiment_of(run)]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(_replay(run, steps, Path(tmp), data, **overrides), path)
    return path


def replay_fingerprint(run: Path, out: Path, data: str | None = None) -> dict:
    """The quick check of a published run: its first steps (``SHORT``), with rows every few steps, replayed
    and compared with ``fingerprint_of`` the run (same return as replay_prefix, and ``reference``, the
    file). A few dozen steps instead of hundreds: the code that gave the fingerprint also gave the full check."""
    steps, overrides = SHORT[experiment_of(run)]
    reference = fingerprint_of(run)
    if not reference.is_file():
        raise FileNotFoundError(f"no {FINGERPRINT} in {run}: record it with: python -m effcifar publish {run}")
    return {**_compare(_replay(run, steps, out, data, **overrides), reference, steps), "reference": reference}


def record_fingerprint(run: Path, data: str | None = None) -> Path:
    """Replay the run's first ``prefix_steps`` against its history (or its ``cpu_prefix.csv``, for a run made
    on a GPU: record that first) and, only if they agree to 1e-6, keep the short replay of ``SHORT`` as
    ``fingerprint.csv``, which CI then checks in seconds (``replay_fingerprint``)."""
    run = Path(run)
    with tempfile.TemporaryDirectory() as tmp:
        full = replay_prefix(run, prefix_steps(run), Path(tmp) / "full", data)
        worst = full["worst"]
        if not worst <= 1e-6:
            raise ValueError(f"{run}: this code replays its first {prefix_steps(run)} steps up to {worst:.2e} "
                             f"off its history; publish the run again with this code, or go back to the code that "
                             f"made it")
    return _keep_short_replay(run, run / FINGERPRINT, data)


def record_cpu_fingerprint(run: Path, data: str | None = None) -> Path:
    """The run's fingerprint as this kind of CPU replays it (``fingerprint-<cpu_signature>.csv``), for a CPU
    whose rounding differs from the one that recorded ``fingerprint.csv``. It checks nothing itself: record
    it only with code that replays ``fingerprint.csv`` exactly on a CPU of that first kind (a commit CI
    passed there), so that the check carries over to this kind unchanged."""
    return _keep_short_replay(Path(run), _own_fingerprint(run), data)


def record_cpu_prefix(run: Path, steps: int, data: str | None = None) -> Path:
    """For a run made on a GPU: replay its first ``steps`` on the CPU and keep that history in the run as
    ``cpu_prefix.csv``, the reference that CI's replay must match to 1e-6. (A CPU replay of a GPU run has
    the same random draws but not the same rounding, which a GAN amplifies within a few hundred steps.)"""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(_replay(run, steps, Path(tmp), data), Path(run) / CPU_PREFIX)
    return Path(run) / CPU_PREFIX
