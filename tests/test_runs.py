"""``python -m effcifar runs`` (every run folder's state and result) and ``publish`` (what publishing a run
takes, and the runs it refuses)."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from conftest import SHARED, fixture_overrides
from effcifar import classifier, replay, results, runs
from effcifar.__main__ import main
from effcifar.classifier import train_classifier
from effcifar.config import VARIANTS, make_config
from effcifar.data import Split
from effcifar.dcgan import snapshot_steps, train_dcgan

ROOT = runs.ROOT


def _lock(folder, pid):
    results.write_json(folder / "run.lock", {"pid": pid, "host": socket.gethostname(), "started": "today",
                                             "command": "python -m effcifar train-classifier"})


def test_runs_names_each_folders_state_and_result(cifar_root, tmp_path, capsys):
    out = tmp_path / "results"
    done = train_classifier(make_config("classifier", "smoke", **fixture_overrides(cifar_root, out)), progress=False)
    part = train_classifier(make_config("classifier", "smoke", seed=1, **fixture_overrides(cifar_root, out)),
                            progress=False, until=4)
    live = train_classifier(make_config("classifier", "smoke", seed=2, **fixture_overrides(cifar_root, out)),
                            progress=False, until=4)
    _lock(live, os.getpid())   # a live process holds it
    gone = train_classifier(make_config("classifier", "smoke", seed=3, **fixture_overrides(cifar_root, out)),
                            progress=False, until=4)
    _lock(gone, 2 ** 22 + 12345)   # a process that is gone: the run is partial, not running
    (out / "benchmark").mkdir()    # not a run folder
    assert main(["runs", "--out", str(out), "--json"]) == 0
    rows = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert {name: r["state"] for name, r in rows.items()} == {
        done.name: "finished", part.name: "partial", live.name: "running", gone.name: "partial"}
    assert rows[done.name]["result"].endswith("parameters") and "% test accuracy" in rows[done.name]["result"]
    assert rows[live.name]["holder"]["pid"] == os.getpid() and rows[part.name]["result"] == ""
    assert rows[done.name]["verified data"] is False and rows[done.name]["device"].startswith("cpu")
    assert main(["runs", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"pid {os.getpid()} on {socket.gethostname()}" in text and "finished" in text


@pytest.mark.skipif(subprocess.run(["git", "rev-parse"], cwd=ROOT, capture_output=True).returncode != 0,
                    reason="not a git checkout: publication is what git tracks")
def test_the_committed_runs_are_published_with_their_changes_named():
    table = runs.run_table(ROOT / "results")
    assert set(table.state) == {"published"} and len(table) == len(runs.run_folders(ROOT / "results"))
    strong = table.set_index("run").loc["classifier-paper-strong-seed0"]
    fields = VARIANTS["classifier"]["strong"]
    assert dict(kv.split("=") for kv in strong.changes.split(", ")) == {k: str(v) for k, v in fields.items()}
    assert table.set_index("run").loc["classifier-paper-seed0"].changes == ""   # the paper recipe
    assert table.set_index("run").loc["fid-paper-seed0-batchbn"].changes.startswith("sample_bn=batch")


def test_publish_refuses_a_run_that_is_unfinished_running_unverified_or_from_a_dirty_tree(cifar_root, tmp_path,
                                                                                          capsys):
    out = tmp_path / "results"
    run = train_classifier(make_config("classifier", "smoke", **fixture_overrides(cifar_root, out)), progress=False)
    part = train_classifier(make_config("classifier", "smoke", seed=1, **fixture_overrides(cifar_root, out)),
                            progress=False, until=4)
    assert main(["publish", str(part)]) == 2 and "unfinished" in capsys.readouterr().err
    assert main(["publish", str(run)]) == 2 and "not verified" in capsys.readouterr().err   # a fixture
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "verify": True}))   # as if on the real data
    prov = json.loads((run / "provenance.json").read_text())
    (run / "provenance.json").write_text(json.dumps({**prov, "git_commit": "0123abcd-dirty"}))
    assert main(["publish", str(run)]) == 2 and "uncommitted changes" in capsys.readouterr().err
    _lock(run, os.getpid())
    assert main(["publish", str(run)]) == 2 and "still running" in capsys.readouterr().err
    assert main(["publish", str(tmp_path)]) == 2 and "not a run folder" in capsys.readouterr().err


TRAIN_N = 5_000   # the classifier's publish test trains and evaluates on this many of the real training images


@pytest.mark.slow   # replays, and evaluates
@pytest.mark.skipif(not (SHARED / "cifar-100-python" / "train").is_file(),
                    reason="real CIFAR-100 not in ../shared/data (see its README)")
@pytest.mark.parametrize("experiment", ["classifier", "dcgan"])
def test_publish_records_what_ci_and_the_book_need_and_prints_the_git_add_line(experiment, tmp_path, monkeypatch):
    """A smoke run on the real data, in a repository of its own: publish records the fingerprint (after the
    full prefix replays the history), the classifier's evaluation with the other test-time flip or the DCGAN's
    fixed-noise samples, and names the git add line; without its line on .gitignore's list it says so."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.setattr(results, "CODE_COMMIT", "0123abcd")   # this checkout may be dirty
    every = "eval_every" if experiment == "classifier" else "log_every"
    monkeypatch.setattr(replay, "PREFIX", {experiment: 8})
    monkeypatch.setattr(replay, "SHORT", {experiment: (4, {every: 2, "ckpt_every": 4})})
    if experiment == "classifier":   # the real files, read and verified; then their first 5,000 and 1,000 images,
        real = classifier.load_cifar100   # since publish evaluates all it is given (50,000 + 2 x 10,000: minutes)
        monkeypatch.setattr(classifier, "load_cifar100", lambda *a, **k: tuple(
            Split(s.images[:n], s.labels[:n], s.classes) for s, n in zip(real(*a, **k), (TRAIN_N, 1_000))))
    cfg = make_config(experiment, "smoke", data=str(SHARED), out=str(repo / "results"), device="cpu", download=False)
    run = {"classifier": train_classifier, "dcgan": train_dcgan}[experiment](cfg, progress=False)
    (repo / ".gitignore").write_text("/results/*\n/results/*/checkpoint.pt\n")
    with pytest.raises(runs.PublishError, match=f"add the line '!/results/{run.name}/'"):
        runs.publish(run, root=repo)
    assert (run / replay.FINGERPRINT).is_file()   # recorded before the check: publishing again skips it
    (repo / ".gitignore").write_text(f"/results/*\n!/results/{run.name}/\n/results/*/checkpoint.pt\n")
    assert runs.publish(run, root=repo) == f"git add results/{run.name}"
    assert [r["step"] for r in results.read_csv(run / replay.FINGERPRINT)] == ["2", "4"]
    if experiment == "classifier":
        assert json.loads((run / "evaluation-flip.json").read_text())["flip"] is True
        fit = json.loads((run / "evaluation-train.json").read_text())   # the training set, with the run's views
        assert (fit["split"], fit["flip"], fit["n"]) == ("train", False, TRAIN_N)   # every training image it was given
    else:
        assert sorted(torch.load(run / "fixed_samples.pt")) == snapshot_steps(run) == [4, 8, 12]


@pytest.mark.slow   # the script end to end on the smoke profile: a DCGAN, its FIDs, its samples, twice
def test_the_cpu_queue_leaves_a_dcgan_with_every_measurement_publish_and_the_book_need(cifar_root, tmp_path):
    """``scripts/cpu_queue.sh`` makes the published runs on this machine: after a dcgan job the run has its
    FID, its FID with batch statistics (the book's check wants both) and its fixed-noise samples; run again
    (as in the next session), it reuses all of them. A screen job stops its run early and scores it so far."""
    out = tmp_path / "results"
    env = dict(os.environ, PYTHON=sys.executable, PROFILE="smoke", DATA=str(cifar_root),
               ARGS=f"--out {out} --no-verify --no-download")
    first = subprocess.run(["bash", "scripts/cpu_queue.sh", "dcgan:-:0", "dcgan:-:1:8"], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    # the screen (seed 1, to step 8 of 12): its sweep so far, the run left partial for the whole job to go on
    assert (out / "fid-smoke-seed1-screen8" / "fid_sweep.csv").is_file()
    partial = out / "dcgan-smoke-seed1"
    assert (partial / "checkpoint.pt").is_file() and not (partial / "metrics.json").exists()
    assert (out / "dcgan-smoke-seed0" / "fixed_samples.pt").is_file()
    for fid in ("fid-smoke-seed0", "fid-smoke-seed0-batchbn"):
        assert (out / fid / "metrics.json").is_file(), fid
    batch = json.loads((out / "fid-smoke-seed0-batchbn" / "config.json").read_text())
    assert batch["sample_bn"] == "batch" and batch["sweep_samples"] == 0
    again = subprocess.run(["bash", "scripts/cpu_queue.sh", "dcgan:-:0"], cwd=ROOT, env=env, capture_output=True,
                           text=True)
    assert again.returncode == 0 and again.stderr.count("reusing FID results") == 2, again.stderr[-2000:]
