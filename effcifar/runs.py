"""The run folders in ``results/``: what state each is in (``python -m effcifar runs``), and what publishing
one takes (``python -m effcifar publish RUN``). The book's appendix "Published runs" is ``run_table``.

A run is *published* when its small files are committed (the folder is on ``.gitignore``'s publish list and
its ``metrics.json`` is tracked), *finished* when it wrote ``metrics.json`` but is not committed yet,
*running* while a live process holds its ``run.lock``, and *partial* otherwise (stopped before its end:
``--resume`` continues it).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .config import make_config
from .results import alive, comparable, experiment_of, lock_holder, read_json, run_config

ROOT = Path(__file__).resolve().parents[1]
STATES = ("published", "finished", "running", "partial")
_NOT_CHANGES = {"seed", "variant", "profile", "verify"}   # named in their own columns


class PublishError(RuntimeError):
    pass


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def _tracked(root: Path, path: Path) -> bool:
    try:
        rel = Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return _git(root, "ls-files", "--error-unmatch", str(rel)).returncode == 0


def state(run: Path, root: Path = ROOT) -> tuple[str, dict | None]:
    """(one of ``STATES``, the lock's holder {pid, host, started, written, command} while running, else None)."""
    run = Path(run)
    holder = lock_holder(run / "run.lock")
    if holder and alive(holder):
        return "running", holder
    if not (run / "metrics.json").is_file():
        return "partial", None
    return ("published" if _tracked(root, run / "metrics.json") else "finished"), None


def _step(step: int) -> str:
    return f"{step // 1000}k" if step >= 1000 and step % 1000 == 0 else f"{step:,}"


def headline(run: Path) -> str:
    """A finished run's result in a few words ('' for an unfinished one)."""
    run = Path(run)
    if not (run / "metrics.json").is_file():
        return ""
    m, experiment = read_json(run / "metrics.json"), experiment_of(run)
    if experiment == "classifier":
        return f"{100 * m['test_acc']:.2f} % test accuracy, {m['params']:,} parameters"
    if experiment == "dcgan":
        return f"{m['params_total']:,} parameters, {m['steps']:,} steps, D(x) {m['D_x']:.2f}"
    if experiment == "fid":
        scores = ", ".join(f"{v:.2f} at {_step(int(s))}" for s, v in m["fid"].items())
        return f"FID {scores} ({m['n_samples']:,} samples)"
    if experiment == "fid_floor":
        return f"FID floor {m['fid']:.2f} ({m['n_train_images']:,} training images)"
    return ""


def changed_fields(run: Path) -> dict:
    """The config fields in which a run differs from its profile's paper recipe (its variant's fields and any
    ``--set``), without the fields that never change a number."""
    cfg = run_config(run)
    experiment = "fid" if experiment_of(run) == "fid_floor" else experiment_of(run)
    default = make_config(experiment, cfg.get("profile", "paper"))
    base = comparable(default.__dict__)
    mine = comparable(cfg, ignore={*_NOT_CHANGES, *getattr(default, "NEUTRAL", ())})
    return {k: v for k, v in mine.items() if k in base and base[k] != v}


def run_row(run: Path, root: Path = ROOT) -> dict:
    """One run folder as a row: name, experiment, profile, variant, changed fields, seed, state, result,
    device, CPU kind, wall time, commit, and the lock's holder while running."""
    run = Path(run)
    st, holder = state(run, root)
    cfg = run_config(run) if (run / "config.json").is_file() else {}
    prov = read_json(run / "provenance.json") if (run / "provenance.json").is_file() else {}
    device = prov.get("device", "")
    return {"run": run.name, "experiment": experiment_of(run), "profile": cfg.get("profile", ""),
            "variant": cfg.get("variant", ""),
            "changes": ", ".join(f"{k}={v}" for k, v in changed_fields(run).items()) if cfg else "",
            "seed": cfg.get("seed"), "state": st, "result": headline(run),
            "verified data": bool(cfg.get("verify", False)), "device": device,
            "cpu kind": prov.get("cpu_signature", "") if device.startswith("cpu") else "",
            "wall (min)": round(prov["wall_seconds"] / 60, 1) if "wall_seconds" in prov else None,
            "commit": prov.get("git_commit", "")[:10],
            **({"holder": holder} if holder else {})}


def run_folders(out: str | Path = "results") -> list[Path]:
    """Every run folder under ``out`` (a folder with a config.json; the benchmark records are not runs)."""
    return sorted(p.parent for p in Path(out).glob("*/config.json"))


def run_table(out: str | Path = "results", root: Path = ROOT, states=STATES):
    """``run_row`` of every run folder in ``out`` whose state is in ``states``, as a DataFrame."""
    import pandas as pd
    rows = [run_row(p, root) for p in run_folders(out)]
    return pd.DataFrame([r for r in rows if r["state"] in states],
                        columns=["run", "experiment", "profile", "variant", "changes", "seed", "state", "result",
                                 "verified data", "device", "cpu kind", "wall (min)", "commit"])


def format_runs(rows: list[dict]) -> str:
    """``python -m effcifar runs`` as text: one line per run."""
    width = max((len(r["run"]) for r in rows), default=3)
    lines = []
    for r in rows:
        extra = r["result"]
        if r["state"] == "running":
            h = r["holder"]
            extra = f"pid {h['pid']} on {h['host']} since {h['started']}: {h['command']}"
        lines.append(f"{r['run']:<{width}}  {r['state']:<9}  {extra}")
    return "\n".join(lines)


def list_runs(out: str | Path = "results", as_json: bool = False, root: Path = ROOT) -> str:
    rows = [run_row(p, root) for p in run_folders(out)]
    return json.dumps(rows, indent=1) if as_json else format_runs(rows)


# ---------------------------------------------------------------------------------------------------
# publishing

def refusal(run: Path, root: Path = ROOT) -> str:
    """Why ``run`` cannot be published ('' if it can): it does not exist, is running or unfinished, was
    made on data that was not verified as the official CIFAR-100, or from a tree with uncommitted changes."""
    run = Path(run)
    if not (run / "config.json").is_file():
        return f"{run} is not a run folder (no config.json)"
    st, holder = state(run, root)
    if st == "running":
        return f"{run} is still running (process {holder['pid']} on {holder['host']}): wait for it to finish"
    if st == "partial":
        return f"{run} is unfinished (no metrics.json): continue it with --resume, then publish it"
    cfg, prov = run_config(run), read_json(run / "provenance.json")
    if not cfg.get("verify", False) or cfg.get("subset"):
        return (f"{run} was made on data that was not verified as the official CIFAR-100 (--no-verify, or a "
                f"subset): train it again with --data pointing at the real data, verification on")
    commit = prov.get("git_commit", "unknown")
    if commit.endswith("-dirty") or commit == "unknown":
        return (f"{run} was made from a tree with uncommitted changes ({commit}): commit the code, then train "
                f"it again, so that its commit names the code that made it")
    return ""


def publish(run: Path, data: str | None = None, root: Path = ROOT) -> str:
    """Publish a finished run: check it (``refusal``), verify the data, record what CI and the book need
    (a GPU run's CPU prefix and every training run's fingerprint, a classifier's evaluation with the other
    test-time flip, a DCGAN's fixed-noise samples), check that ``.gitignore`` lets its folder be committed,
    and return the exact ``git add`` command. Recording is skipped where the file is there already."""
    from .classifier import evaluate_run, evaluation_file, saved_evaluation
    from .data import load_cifar100
    from .dcgan import fixed_samples
    from .replay import CPU_PREFIX, FINGERPRINT, prefix_steps, record_cpu_prefix, record_fingerprint
    run = Path(run)
    why = refusal(run, root)
    if why:
        raise PublishError(why)
    cfg, experiment = run_config(run), experiment_of(run)
    data = data or cfg["data"]
    load_cifar100(data, verify=True, download=False)   # a DataError names what is wrong with it
    done = []
    if experiment in ("classifier", "dcgan"):
        gpu = not read_json(run / "provenance.json")["device"].startswith("cpu")
        if gpu and not (run / CPU_PREFIX).is_file():
            done.append(record_cpu_prefix(run, prefix_steps(run), data))
        if not (run / FINGERPRINT).is_file():
            try:
                done.append(record_fingerprint(run, data))
            except ValueError as e:
                raise PublishError(f"{e} (is this the kind of CPU that made it? see the book's appendix "
                                   f"'Publishing and replaying runs')") from None
    if experiment == "classifier":   # the test views it was not evaluated with (the book's flip and shift tables),
                                     # and the training set (the book's fit table)
        other = [(not cfg["tta_flip"], cfg["tta_shift"] if not cfg["tta_flip"] else 0)]
        other += [(True, 0 if cfg["tta_shift"] else 1)] if cfg["tta_flip"] else []
        for flip, shift in dict.fromkeys(other):
            if saved_evaluation(run, flip, shift) is None:
                evaluate_run(run, data, flip=flip, device="cpu", save=True, shift=shift)
                done.append(evaluation_file(run, flip, shift).name)
        own = (cfg["tta_flip"], cfg["tta_shift"], "train")   # the training set, with the run's own test views
        if saved_evaluation(run, *own) is None:
            evaluate_run(run, data, flip=own[0], device="cpu", save=True, shift=own[1], split="train")
            done.append(evaluation_file(run, *own).name)
    if experiment == "dcgan" and not (run / "fixed_samples.pt").is_file():
        if not list((run / "snapshots").glob("G_step*.pt")):
            raise PublishError(f"{run} has no snapshots left to draw fixed_samples.pt from")
        fixed_samples(run)
        done.append(run / "fixed_samples.pt")
    rel = run.resolve().relative_to(Path(root).resolve())
    if _git(root, "check-ignore", "-q", str(rel / "metrics.json")).returncode == 0:
        raise PublishError(f".gitignore keeps {rel} out of git: add the line '!/{rel}/' to its publish list, "
                           f"then publish again")
    return f"git add {rel}"
