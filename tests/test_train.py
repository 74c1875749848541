import csv
import json

import pytest
import torch

from conftest import fixture_overrides
from effcifar import results
from effcifar.__main__ import main
from effcifar.classifier import evaluate_run, saved_evaluation, train_classifier
from effcifar.config import make_config
from effcifar.dcgan import load_generator, snapshot_steps, train_dcgan
from effcifar.steps import ResumeError


def _history(run):
    with open(run / "history.csv" if run.is_dir() else run) as f:
        return list(csv.DictReader(f))


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_classifier_training_lowers_the_loss(cifar_root, tmp_path, monkeypatch):
    cfg = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path), steps=40,
                      batch_size=32, lr=3e-3, eval_every=10, ckpt_every=20)
    monkeypatch.setattr(results, "git_commit", lambda: "head-moved-on")   # commits may land while a run goes on
    run = train_classifier(cfg, progress=False)
    monkeypatch.undo()
    hist = _history(run)
    assert [int(r["step"]) for r in hist] == [10, 20, 30, 40]
    assert float(hist[-1]["train_loss"]) < float(hist[0]["train_loss"]) - 0.3
    assert float(hist[-1]["test_loss"]) < float(hist[0]["test_loss"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["params"] == 94_005 and metrics["test_images"] == 300
    assert metrics["final_train_loss"] == pytest.approx(float(hist[-1]["train_loss"]))
    prov = json.loads((run / "provenance.json").read_text())
    assert {"git_commit", "versions", "device", "seed", "wall_seconds"} <= prov.keys()
    assert prov["versions"]["torch"] and prov["seed"] == 0
    assert prov["git_commit"] == results.CODE_COMMIT != "head-moved-on"   # the code it ran: HEAD when effcifar loaded
    assert json.loads((run / "config.json").read_text())["steps"] == 40


def test_classifier_resume_equals_uninterrupted(cifar_root, tmp_path):
    common = dict(batch_size=32, eval_every=4, ckpt_every=4)
    full = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path / "a"), steps=12, **common)
    train_classifier(full, progress=False)
    half = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path / "b"), steps=8, **common)
    train_classifier(half, progress=False)                              # "interrupted" at step 8
    rest = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path / "b"), steps=12, **common)
    run_b = train_classifier(rest, resume=True, progress=False)
    run_a = tmp_path / "a" / full.run_name
    assert _same_weights(torch.load(run_a / "model.pt"), torch.load(run_b / "model.pt"))
    ha, hb = _history(run_a), _history(run_b)
    for a, b in zip(ha, hb):
        a.pop("wall_seconds"), b.pop("wall_seconds")
    assert ha == hb
    assert json.loads((run_b / "provenance.json").read_text())["resumed"] is True


def test_a_finished_run_is_evaluated_again_with_and_without_the_flip(cifar_root, tmp_path, capsys):
    run = train_classifier(make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path), steps=4),
                           progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    plain = json.loads(capsys.readouterr().out)   # the same weights and test images: the run's own numbers
    assert (plain["acc"], plain["loss"], plain["n"], plain["flip"]) == (
        metrics["test_acc"], metrics["test_loss"], metrics["test_images"], False)
    flipped = evaluate_run(run, flip=True)
    assert flipped["flip"] and flipped["n"] == plain["n"] and flipped["loss"] != plain["loss"]
    assert saved_evaluation(run, flip=True) is None   # nothing saved yet
    assert main(["evaluate", str(run), "--flip", "--save"]) == 0
    saved = saved_evaluation(run, flip=True)
    assert {k: saved[k] for k in flipped} == flipped and saved_evaluation(run, flip=False) is None
    assert {"git_commit", "versions", "device", "wall_seconds"} <= saved["provenance"].keys()
    assert main(["evaluate", str(run), "--flip", "--shift", "1", "--save"]) == 0   # six views
    shifted = saved_evaluation(run, flip=True, shift=1)
    assert shifted["n"] == plain["n"] and shifted["loss"] not in (plain["loss"], flipped["loss"])
    assert (run / "evaluation-flip-shift1.json").is_file() and saved_evaluation(run, flip=False, shift=1) is None
    assert main(["evaluate", str(run), "--split", "train", "--save"]) == 0   # the training images, unaugmented
    fit = saved_evaluation(run, flip=False, split="train")
    assert fit["split"] == "train" and fit["n"] == 1000 and saved_evaluation(run, flip=False) is None
    assert (run / "evaluation-train.json").is_file()
    torch.save({k: v + 1 for k, v in torch.load(run / "model.pt").items()}, run / "model.pt")
    assert saved_evaluation(run, flip=True) is None   # other weights now: the saved number is not theirs
    assert main(["evaluate", str(tmp_path / "no-run")]) == 2
    assert "finished classifier run" in capsys.readouterr().err


def test_resume_refuses_a_different_config(cifar_root, tmp_path):
    cfg = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path), steps=4)
    train_classifier(cfg, progress=False)
    other = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path), steps=8, lr=0.01)
    with pytest.raises(ResumeError, match="lr"):
        train_classifier(other, resume=True, progress=False)


def test_finished_run_is_reused(cifar_root, tmp_path, capsys):
    cfg = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path), steps=4)
    run = train_classifier(cfg, progress=False)
    stamp = (run / "model.pt").stat().st_mtime_ns
    assert train_classifier(cfg, progress=False) == run
    assert (run / "model.pt").stat().st_mtime_ns == stamp and "reusing" in capsys.readouterr().err
    prov = (run / "provenance.json").read_text()
    assert train_classifier(cfg, resume=True, progress=False) == run   # finished: --resume has nothing to do
    assert (run / "model.pt").stat().st_mtime_ns == stamp and (run / "provenance.json").read_text() == prov
    train_classifier(cfg, force=True, progress=False)
    assert (run / "model.pt").stat().st_mtime_ns != stamp


def _dcgan_full_and_resumed(cifar_root, tmp_path, steps: int, stop: int = 4, **kw):
    """A smoke DCGAN run of ``steps`` (in tmp_path/a) and the same run stopped after ``stop`` steps and
    resumed (in tmp_path/b); their G.pt and D.pt must be the same bitwise."""
    kw = dict(batch_size=16, log_every=4, ckpt_every=4, snapshot_every=4, **kw)
    cfg_a, cfg_b = (make_config("dcgan", "smoke", **fixture_overrides(cifar_root, tmp_path / where), steps=steps, **kw)
                    for where in "ab")
    run_a = train_dcgan(cfg_a, progress=False)
    train_dcgan(cfg_b, progress=False, until=stop)
    run_b = train_dcgan(cfg_b, resume=True, progress=False)
    for name in ("G.pt", "D.pt"):
        assert _same_weights(torch.load(run_a / name), torch.load(run_b / name)), name
    return run_a, run_b


def test_dcgan_resume_equals_uninterrupted_and_keeps_snapshots(cifar_root, tmp_path):
    run_a, run_b = _dcgan_full_and_resumed(cifar_root, tmp_path, 12)
    assert snapshot_steps(run_a) == snapshot_steps(run_b) == [4, 8, 12]
    g8 = load_generator(run_a, 8)
    assert sum(p.numel() for p in g8.parameters()) == 635_812
    with pytest.raises(FileNotFoundError, match=r"snapshots at steps \[4, 8, 12\]"):
        load_generator(run_a, 46_000)
    metrics = json.loads((run_a / "metrics.json").read_text())
    assert metrics["params_total"] == 980_076
    hist = _history(run_a)
    assert list(hist[0]) == ["step", "loss_D", "loss_G", "D_x", "D_G_z1", "D_G_z2", "wall_seconds"]
    assert all(0 < float(r["D_x"]) < 1 for r in hist)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU machine)")


def _max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@cuda
@pytest.mark.parametrize("train, weights", [(train_classifier, ("model.pt",)), (train_dcgan, ("G.pt", "D.pt"))])
def test_cuda_graph_step_matches_eager(cifar_root, tmp_path, monkeypatch, train, weights):
    """The captured-and-replayed step computes what the eager step computes, resume included
    (deterministic cuDNN, so that any difference is the graph's)."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    experiment = "classifier" if train is train_classifier else "dcgan"
    kw = dict(steps=12) | ({"eval_every": 4, "ckpt_every": 4} if experiment == "classifier"
                           else {"log_every": 4, "ckpt_every": 4, "snapshot_every": 4})
    runs = {}
    for graph in (False, True):
        cfg = make_config(experiment, "smoke", **fixture_overrides(cifar_root, tmp_path / str(graph), "cuda"),
                          cuda_graph=graph, **kw)
        runs[graph] = train(cfg, progress=False)
    resumed = tmp_path / "resumed"
    train(make_config(experiment, "smoke", **fixture_overrides(cifar_root, resumed, "cuda"), **(kw | {"steps": 8})),
          progress=False)
    runs["resumed"] = train(make_config(experiment, "smoke", **fixture_overrides(cifar_root, resumed, "cuda"), **kw),
                            resume=True, progress=False)
    for name in weights:
        eager = torch.load(runs[False] / name)
        for other in (True, "resumed"):
            diff = _max_diff(eager, torch.load(runs[other] / name))
            assert diff < 1e-5, f"{name}: eager and {other} differ by up to {diff:.2e}"


def test_reuse_only_never_trains(cifar_root, tmp_path):
    cfg = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path))
    with pytest.raises(ResumeError, match="no finished run"):
        train_classifier(cfg, progress=False, reuse_only=True)
    assert not (tmp_path / cfg.run_name).exists()
    run = train_classifier(cfg, progress=False)
    assert train_classifier(cfg, progress=False, reuse_only=True) == run


# ---------------------------------------------------------------------------------------------------
# no lost runs: one writer per run folder, and a killed run resumes to the same result

def test_a_second_run_of_a_folder_in_use_stops_naming_the_holder(cifar_root, tmp_path):
    import os
    import socket

    from effcifar.results import RunLockedError, run_dir
    cfg = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path))
    d = run_dir(cfg)
    d.mkdir(parents=True)
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "started": "earlier", "command": "another run"}
    (d / "run.lock").write_text(json.dumps(holder))   # a live process (pytest's parent) holds it
    with pytest.raises(RunLockedError, match=f"process {os.getppid()} .*another run"):
        train_classifier(cfg, progress=False)
    assert not (d / "history.csv").exists() and json.loads((d / "run.lock").read_text()) == holder


def test_the_lock_of_a_dead_process_is_taken_over_and_released(cifar_root, tmp_path):
    import socket
    import subprocess

    from effcifar.results import run_dir
    dead = subprocess.Popen(["true"])
    dead.wait()
    cfg = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path))
    run_dir(cfg).mkdir(parents=True)
    (run_dir(cfg) / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                       "started": "earlier", "command": "killed"}))
    d = train_classifier(cfg, progress=False)
    assert (d / "metrics.json").is_file() and not (d / "run.lock").exists()


def test_a_lock_whose_pid_now_names_a_younger_process_is_taken_over(cifar_root, tmp_path):
    """A session killed mid-run leaves its lock; the next one may give its pid to another process. That
    process started after the lock was written, so it cannot hold it; one that started before still can."""
    import socket
    import subprocess
    import time

    from effcifar.results import RunLockedError, run_dir
    cfg = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path))
    run_dir(cfg).mkdir(parents=True)
    other = subprocess.Popen(["sleep", "60"])
    try:
        lock = {"pid": other.pid, "host": socket.gethostname(), "started": "earlier", "command": "killed"}
        (run_dir(cfg) / "run.lock").write_text(json.dumps({**lock, "written": time.time() + 60}))
        with pytest.raises(RunLockedError, match=f"process {other.pid} "):   # started before: it may hold it
            train_classifier(cfg, progress=False)
        (run_dir(cfg) / "run.lock").write_text(json.dumps({**lock, "written": time.time() - 60}))
        d = train_classifier(cfg, progress=False)
        assert (d / "metrics.json").is_file() and not (d / "run.lock").exists()
    finally:
        other.kill()


@pytest.mark.slow   # end to end: three processes, one killed
def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_result(cifar_root, tmp_path):
    """SIGKILL (no cleanup, lock left behind) after a checkpoint; --resume then ends bitwise equal to a run
    that was never interrupted."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    steps, every = 200, dict(eval_every=20, ckpt_every=20)
    whole = train_classifier(make_config("classifier", "smoke", steps=steps, **every,
                                         **fixture_overrides(cifar_root, tmp_path / "whole")), progress=False)
    out = tmp_path / "killed"
    cli = [sys.executable, "-m", "effcifar", "train-classifier", "--profile", "smoke", "--data", cifar_root,
           "--no-verify", "--no-download", "--device", "cpu", "--out", str(out), "--set", f"steps={steps}",
           "--set", "eval_every=20", "--set", "ckpt_every=20"]
    proc = subprocess.Popen(cli, cwd=Path(__file__).resolve().parents[1], stderr=subprocess.DEVNULL)
    ckpt = out / "classifier-smoke-seed0" / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.is_file() and torch.load(ckpt, weights_only=False)["step"] >= 40:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: give it more steps"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ckpt, weights_only=False)["step"]
    assert 40 <= killed_at < steps and (ckpt.parent / "run.lock").is_file()
    d = train_classifier(make_config("classifier", "smoke", steps=steps, **every, **fixture_overrides(cifar_root, out)),
                         resume=True, progress=False)
    a, b = (torch.load(p / "model.pt", weights_only=True) for p in (whole, d))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (whole / "history.csv").read_text().split("\n")[0] == (d / "history.csv").read_text().split("\n")[0]


# ---------------------------------------------------------------------------------------------------
# speed levers (config fields compile, precision): other arithmetic, same guarantees

@pytest.mark.parametrize("lever", [dict(precision="bf16"), dict(compile=True)], ids=["bf16", "compile"])
def test_a_speed_lever_resumes_bitwise_and_is_another_run(lever, cifar_root, tmp_path):
    run_a, _ = _dcgan_full_and_resumed(cifar_root, tmp_path, 8, **lever)
    assert json.loads((run_a / "config.json").read_text())[next(iter(lever))] == next(iter(lever.values()))
    fp32 = train_dcgan(make_config("dcgan", "smoke", steps=8, batch_size=16, log_every=4, ckpt_every=4,
                                   snapshot_every=4, **fixture_overrides(cifar_root, tmp_path / "c")), progress=False)
    a, c = torch.load(run_a / "G.pt"), torch.load(fp32 / "G.pt")
    assert not _same_weights(a, c), "the lever changed nothing: is it applied?"
    assert max((a[k].float() - c[k].float()).abs().max().item() for k in a) < 0.1   # but the same recipe


def test_runs_published_before_the_speed_fields_are_still_found(cifar_root, tmp_path):
    from effcifar.results import cached
    cfg = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path), steps=4)
    run = train_classifier(cfg, progress=False)
    old = json.loads((run / "config.json").read_text())
    del old["compile"], old["precision"]
    (run / "config.json").write_text(json.dumps(old))
    assert cached(cfg) == run and not cached(make_config("classifier", "smoke", steps=4, precision="bf16",
                                                         **fixture_overrides(cifar_root, tmp_path)))


# ---------------------------------------------------------------------------------------------------
# the paper's mode collapse: detected, and the run goes back to its last good checkpoint

def test_collapse_detector_names_the_sign():
    from effcifar.guard import armed_at, collapsed, diversity
    from effcifar.models import Generator, dcgan_init
    cfg = make_config("dcgan", "smoke", collapse_guard=True)
    G = Generator(cfg.nz, cfg.ngf)
    G.apply(dcgan_init)
    noise = torch.randn(16, cfg.nz, generator=torch.Generator().manual_seed(0))
    healthy = {"D_x": 0.8, "D_G_z1": 0.2}
    assert collapsed(cfg, healthy, diversity(G, noise)) == ""
    assert "D(x) 0.995" in collapsed(cfg, {"D_x": 0.995, "D_G_z1": 0.004}, diversity(G, noise), armed=False)
    for m in G.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            last = m
    last.weight.data.zero_()   # every sample the same image
    assert diversity(G, noise) == 0 and "diversity 0.0000" in collapsed(cfg, healthy, diversity(G, noise))
    assert collapsed(cfg, healthy, 0.0, armed=False) == ""   # no diverse checkpoint yet: nothing was lost
    assert armed_at({2: 0.01, 4: 0.3, 6: 0.02, 8: 0.4}, 0.05) == 4 and armed_at({2: 0.01}, 0.05) is None


def test_a_forced_collapse_goes_back_to_the_last_good_checkpoint(cifar_root, tmp_path, monkeypatch):
    from effcifar import dcgan
    calls, real_step = [], dcgan.dcgan_step

    def sabotaged(netG, *args, **kwargs):   # on the 6th step only, the generator collapses to one image
        calls.append(1)
        if len(calls) == 6:
            for m in netG.modules():
                if isinstance(m, torch.nn.ConvTranspose2d):
                    last = m
            last.weight.data.zero_()
        return real_step(netG, *args, **kwargs)

    monkeypatch.setattr(dcgan, "dcgan_step", sabotaged)
    kw = dict(steps=12, batch_size=16, log_every=4, ckpt_every=4, snapshot_every=4, collapse_guard=True)
    run = train_dcgan(make_config("dcgan", "smoke", **fixture_overrides(cifar_root, tmp_path), **kw), progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert [(c["step"], c["restored_step"]) for c in metrics["collapses"]] == [(8, 4)]
    assert "diversity" in metrics["collapses"][0]["why"] and len(calls) == 16   # steps 5-8 twice
    assert [int(r["step"]) for r in csv.DictReader(open(run / "history.csv"))] == [4, 8, 12]
    assert dcgan.diversity(load_generator(run), dcgan.fixed_noise(make_config("dcgan", "smoke"))) > 0.05


def test_the_guard_reads_diversity_only_from_its_first_diverse_checkpoint_and_resumes_so(cifar_root, tmp_path,
                                                                                           monkeypatch):
    """A recipe whose samples start out alike (``stable``: 0.005 at 500 steps, diverse by ~10k) has lost
    nothing yet: the guard does not send it back while no checkpoint held diverse samples, and once one
    did, a drop sends it back there. Where it is armed is checkpointed: a run resumed after arming goes
    back at the same step as the uninterrupted one."""
    from effcifar import dcgan
    # the diversity at each log step (every 4, checkpoints every 8): alike at 4 and 8, diverse at 12 (not a
    # checkpoint), armed at the checkpoint of 16, a collapse at 20: back to 16, diverse from there on
    script = [0.01, 0.02, 0.3, 0.3, 0.01, 0.3, 0.3]

    def run(out, **kw):
        calls = iter(script)
        monkeypatch.setattr(dcgan, "diversity", lambda netG, noise: next(calls))
        cfg = make_config("dcgan", "smoke", **fixture_overrides(cifar_root, out), steps=24, batch_size=16,
                          log_every=4, ckpt_every=8, snapshot_every=8, collapse_guard=True)
        return train_dcgan(cfg, progress=False, **kw), calls

    full, rest = run(tmp_path / "full")
    assert list(rest) == []   # one diversity per log step: 6 steps and the one repeated after going back
    metrics = json.loads((full / "metrics.json").read_text())
    assert metrics["armed_at"] == 16
    assert [(c["step"], c["restored_step"], c["why"]) for c in metrics["collapses"]] == [(20, 16,
                                                                                          "sample diversity 0.0100")]
    run(tmp_path / "cut", until=16)   # stopped right after arming ...
    script = script[4:]   # ... and resumed: its diversities from step 20 on
    resumed, _ = run(tmp_path / "cut", resume=True)
    again = json.loads((resumed / "metrics.json").read_text())
    assert (again["armed_at"], again["collapses"]) == (16, metrics["collapses"])
    assert _same_weights(torch.load(full / "G.pt"), torch.load(resumed / "G.pt"))


def test_the_guard_changes_nothing_in_a_run_without_a_collapse(cifar_root, tmp_path):
    """Its checks draw no random numbers and touch no weights: a guarded run that never collapses is the
    unguarded run step for step, so a guard row of the ablation differs from its recipe only by restarts."""
    kw = dict(steps=12, batch_size=16, log_every=4, ckpt_every=4, snapshot_every=4)
    runs = [train_dcgan(make_config("dcgan", "smoke", **fixture_overrides(cifar_root, tmp_path / str(g)), **kw,
                                    collapse_guard=g), progress=False) for g in (False, True)]
    assert json.loads((runs[1] / "metrics.json").read_text())["collapses"] == []
    for name in ("G.pt", "D.pt"):
        assert _same_weights(*(torch.load(r / name) for r in runs))
    drop = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert drop(_history(runs[0])) == drop(_history(runs[1]))


def test_the_collapse_audit_reads_both_signs_off_a_finished_run(cifar_root, tmp_path):
    from effcifar.guard import collapse_audit
    kw = dict(steps=12, batch_size=16, log_every=4, ckpt_every=4, snapshot_every=4)
    run = train_dcgan(make_config("dcgan", "smoke", **fixture_overrides(cifar_root, tmp_path), **kw), progress=False)
    # a few steps in, eval mode's running statistics still draw near-constant images: diverse samples instead
    samples = {s: torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8) for s in (4, 8, 12)}
    torch.save(samples, run / "fixed_samples.pt")
    audit = collapse_audit(run)   # the guard's default thresholds: the run was made without the guard
    assert (audit["log_steps"], audit["d_wins"], audit["low_diversity"], audit["restarts"]) == (3, [], [], [])
    assert sorted(audit["diversity"]) == [4, 8,
                                          12] and min(audit["diversity"].values()) > audit["min_diversity"] == 0.05
    rows = _history(run)
    rows[1].update(D_x="0.995", D_G_z1="0.004")   # the discriminator wins outright at step 8
    results.write_csv(run / "history.csv", rows)
    samples[12] = samples[12][:1].expand_as(samples[12]).clone()   # step 12: every sample the same image
    torch.save(samples, run / "fixed_samples.pt")
    audit = collapse_audit(run)
    assert (audit["d_wins"], audit["low_diversity"], audit["max_D_x"]) == ([8], [12], 0.995)
    assert audit["diversity"][12] == 0 and audit["min_D_G_z"] == 0.004
    assert (audit["armed_at"], audit["restarts"]) == (4, [12])   # diverse at 4, lost at 12: the guard goes back
    samples[4] = samples[12]   # alike from the start: nothing lost at 4, the guard armed only at 8
    torch.save(samples, run / "fixed_samples.pt")
    audit = collapse_audit(run)
    assert (audit["low_diversity"], audit["armed_at"], audit["restarts"]) == ([4, 12], 8, [12])


@pytest.mark.parametrize("variant", ["strong", "strong_stem"])
def test_a_variant_trains_into_its_own_folder_and_resumes_bitwise(variant, cifar_root, tmp_path, monkeypatch):
    """"strong": onecycle, label smoothing, test-time flip, decoupled weight decay, squeeze-excitation and an
    EMA of the weights: the schedule and the EMA's decay are functions of the step (and of the run's
    length, which therefore may not change on resume); the EMA is checkpointed. "strong_stem": a stem,
    identity init and test-time shifts instead of squeeze-excitation."""
    from effcifar import classifier
    kw = dict(variant=variant, eval_every=4, ckpt_every=4, steps=12)
    full = train_classifier(make_config("classifier", "smoke", **kw, **fixture_overrides(cifar_root, tmp_path / "a")),
                            progress=False)
    calls, real_step = [], classifier.classifier_step

    def interrupted(*args, **kwargs):   # the run dies in its 6th step, after the checkpoint of step 4
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(classifier, "classifier_step", interrupted)
    cfg_b = make_config("classifier", "smoke", **kw, **fixture_overrides(cifar_root, tmp_path / "b"))
    with pytest.raises(KeyboardInterrupt):
        train_classifier(cfg_b, progress=False)
    monkeypatch.setattr(classifier, "classifier_step", real_step)
    with pytest.raises(ResumeError, match="steps"):
        train_classifier(make_config("classifier", "smoke", **{**kw, "steps": 16},
                                     **fixture_overrides(cifar_root, tmp_path / "b")), resume=True, progress=False)
    part = train_classifier(cfg_b, resume=True, progress=False)
    assert full.name == f"classifier-smoke-{variant}-seed0"
    assert _same_weights(torch.load(full / "model.pt"), torch.load(part / "model.pt"))
    base = train_classifier(make_config("classifier", "smoke", steps=12, eval_every=4, ckpt_every=4,
                                        **fixture_overrides(cifar_root, tmp_path / "a")), progress=False)
    assert base.name == "classifier-smoke-seed0" and not _same_weights(torch.load(full / "model.pt"),
                                                                       torch.load(base / "model.pt"))


@pytest.mark.parametrize("variant", ["stable", "conditional_stable", "stable_diffaug"])
def test_the_stable_gan_variant_resumes_bitwise_and_keeps_the_average_generator(variant, cifar_root, tmp_path):
    """spectral norm + hinge loss + two learning rates + an EMA of G (and class-conditional G and D, or
    DiffAugment, whose draws a resumed run repeats): G.pt and the snapshots hold the EMA."""
    full, part = _dcgan_full_and_resumed(cifar_root, tmp_path, 8, variant=variant)
    assert full.name == f"dcgan-smoke-{variant}-seed0"
    assert _same_weights(torch.load(full / "snapshots/G_step000008.pt"), torch.load(part / "snapshots/G_step000008.pt"))
    ckpt = torch.load(full / "checkpoint.pt", weights_only=False)
    assert _same_weights(ckpt["G_ema"], torch.load(full / "G.pt"))
    assert not _same_weights(ckpt["G"], ckpt["G_ema"])
    assert any("parametrizations" in k for k in ckpt["D"])   # spectral norm
    losses = [float(r["loss_G"]) for r in _history(full)]
    assert min(losses) < 0   # the hinge generator loss is -D(G(z)) on logits, unlike BCE


def test_two_d_updates_per_step_each_on_its_own_batch_and_resume_bitwise(cifar_root, tmp_path, monkeypatch):
    """``d_steps=2`` (variant ``hires_d2``): every step updates D twice, on D-update indices 2s and 2s + 1
    (their own batches and noise), then G once; a step of ``d_steps=1`` is D-update index s, so the paper's
    runs keep their draws. A resumed run equals an uninterrupted one."""
    from effcifar import dcgan
    seen, real_batch = [], dcgan.dcgan_batch

    def batch(train, sampler, cfg, step, *args, **kwargs):
        seen.append(step)
        return real_batch(train, sampler, cfg, step, *args, **kwargs)

    monkeypatch.setattr(dcgan, "dcgan_batch", batch)
    kw = dict(steps=4, batch_size=16, log_every=4, ckpt_every=4, snapshot_every=4)
    one = train_dcgan(make_config("dcgan", "smoke", **kw, **fixture_overrides(cifar_root, tmp_path / "one")),
                      progress=False)
    assert seen == [0, 1, 2, 3]
    seen.clear()
    two = train_dcgan(make_config("dcgan", "smoke", d_steps=2, **kw, **fixture_overrides(cifar_root, tmp_path / "two")),
                      progress=False)
    assert seen == list(range(8)) and two.name == one.name   # a --set field: same folder name, other tmp_path
    optD = torch.load(two / "checkpoint.pt", weights_only=False)["optD"]
    assert [s["step"].item() for s in optD["state"].values()] == [8] * len(optD["state"])   # 2 D updates a step
    assert not _same_weights(torch.load(one / "G.pt"), torch.load(two / "G.pt"))
    monkeypatch.setattr(dcgan, "dcgan_batch", real_batch)
    _dcgan_full_and_resumed(cifar_root, tmp_path / "resume", 8, d_steps=2)


def test_a_decaying_gan_resumes_bitwise_with_both_rates_near_zero(cifar_root, tmp_path):
    """ema_decay: both Adams' rates fall linearly to 0 over the run, each from its own peak (with lr_D, D's
    is not G's); a function of the step, so a resumed run equals an uninterrupted one."""
    full, _ = _dcgan_full_and_resumed(cifar_root, tmp_path, 8, variant="ema_decay", lr_D=4e-4)
    ckpt = torch.load(full / "checkpoint.pt", weights_only=False)   # after step 8 of 8, which ran at 1/8 of the peak
    assert [g["lr"] for g in ckpt["optG"]["param_groups"]] == pytest.approx([2e-4 / 8])
    assert [g["lr"] for g in ckpt["optD"]["param_groups"]] == pytest.approx([4e-4 / 8])
    assert _same_weights(ckpt["G_ema"], torch.load(full / "G.pt"))


def test_hflip_mirrors_some_real_images_and_changes_no_other_draw(cifar_root, tmp_path):
    """The DCGAN's ``hflip`` (variant ``ema_flip_bf16``): each real image is itself or its mirror image, some of
    each, and the step's noise is the noise without it (the flips are drawn last), so two runs differ in the
    real images alone."""
    from effcifar import data as cifar
    from effcifar import dcgan
    kw = dict(batch_size=64, **fixture_overrides(cifar_root, tmp_path))
    train, _ = cifar.load_cifar100(cifar_root, verify=False, download=False)
    (real, noise, _, _), (plain, plain_noise, _, _) = (
        dcgan.dcgan_batch(train, cifar.BatchSampler(len(train), 64, 0), make_config("dcgan", "smoke", hflip=h, **kw),
                          3, "cpu")
        for h in (True, False))
    assert torch.equal(noise, plain_noise)
    same = (real == plain).flatten(1).all(1)
    mirrored = (real == plain.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all() and (~same).sum() > 10 and same.sum() > 10
    assert make_config("dcgan", "paper", variant="ema_flip_bf16").hflip and not make_config("dcgan", "paper").hflip


def test_diffaug_shows_the_discriminator_only_augmented_images(cifar_root, tmp_path, monkeypatch):
    """With DiffAugment every batch D sees is augmented (real and generated, in D's and G's steps, each
    with its own draws); the draws do not change the noise or the batch (so the runs differ by D's
    view alone)."""
    from effcifar import data as cifar
    from effcifar import dcgan
    from effcifar.models import Discriminator
    seen, forward = [], Discriminator.forward

    def spy(self, x, y=None):
        seen.append(x.detach().clone())
        return forward(self, x, y)

    monkeypatch.setattr(Discriminator, "forward", spy)
    kw = dict(steps=1, batch_size=16, log_every=1, ckpt_every=1, snapshot_every=1)
    cfg = make_config("dcgan", "smoke", variant="diffaug", **fixture_overrides(cifar_root, tmp_path), **kw)
    train_dcgan(cfg, progress=False)
    train, _ = cifar.load_cifar100(cfg.data, verify=False, download=False)
    real, noise, y, aug = dcgan.dcgan_batch(train, cifar.BatchSampler(len(train), 16, 0), cfg, 0, torch.device("cpu"))
    plain = dcgan.dcgan_batch(train, cifar.BatchSampler(len(train), 16, 0), make_config("dcgan", "smoke", **kw), 0,
                              "cpu")
    assert torch.equal(noise, plain[1]) and plain[3] is None and y is None and aug.shape == (3, 16, 7)
    assert len(seen) == 3 and torch.equal(seen[0], cifar.diff_augment(real, aug[0], cfg.diffaug))
    assert not torch.equal(seen[0], real) and (seen[1] == 0).any() and (seen[2] == 0).any()   # cutout


def test_test_time_shifts_move_the_image_with_zero_fill_and_average_six_views():
    from effcifar.classifier import evaluate, translate
    from effcifar.data import Split, normalize
    x = torch.arange(1, 1 + 2 * 3 * 32 * 32).remainder(250).add(1).to(torch.uint8).view(2, 3, 32, 32)
    down = translate(x, 1)
    assert torch.equal(down[:, :, 1:, 1:], x[:, :, :-1, :-1]) and not down[:, :, 0].any() and not down[:, :, :, 0].any()
    assert torch.equal(translate(translate(x, 2), -2)[:, :, :30, :30], x[:, :, :30, :30])
    assert torch.equal(translate(x, 0), x)

    seen = []

    class Recorder(torch.nn.Module):   # logits that show which view came in
        def forward(self, v):
            seen.append(v.clone())
            return torch.nn.functional.one_hot(torch.zeros(len(v), dtype=torch.long), 100).float()
    split = Split(x, torch.zeros(2, dtype=torch.long), [])
    evaluate(Recorder(), split, flip=True, shift=1)
    assert len(seen) == 6
    assert torch.equal(seen[1], normalize(translate(x, 1))) and torch.equal(seen[5], seen[2].flip(3))


def test_cutout_holes_the_paper_batch_and_changes_no_other_draw(cifar_root):
    from effcifar import data as cifar
    from effcifar.classifier import classifier_batch
    train, _ = cifar.load_cifar100(cifar_root, verify=False)
    sampler = cifar.BatchSampler(len(train), 32, 0)
    x, y = classifier_batch(train, sampler, make_config("classifier", "smoke"), 3, torch.device("cpu"))
    xc, yc = classifier_batch(train, sampler, make_config("classifier", "smoke", cutout=8), 3, torch.device("cpu"))
    hole = xc != x
    zero = cifar.normalize(torch.zeros(1, 3, 1, 1, dtype=torch.uint8))
    assert torch.equal(y, yc) and hole.any()
    assert torch.equal(xc[hole], zero.expand_as(xc)[hole])   # only pixels set to black differ


def test_batch_norm_learns_at_its_own_rate_through_the_schedule_and_a_resume():
    from effcifar.classifier import classifier_setup, classifier_step
    from effcifar.steps import load_optimizer, set_lr
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model, opt = classifier_setup(make_config("classifier", "smoke", bn_lr=4.0, lr=2e-3), cpu)
    rest, bn = opt.param_groups
    norms = [p for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()]
    assert {id(p) for p in bn["params"]} == {id(p) for p in norms}
    assert len(rest["params"]) + len(bn["params"]) == len(list(model.parameters()))
    assert (rest["lr"], bn["lr"]) == pytest.approx((2e-3, 8e-3))
    set_lr(opt, 1e-3)   # a schedule's rate
    assert (rest["lr"], bn["lr"]) == pytest.approx((1e-3, 4e-3))
    _, again = classifier_setup(make_config("classifier", "smoke", bn_lr=4.0, lr=2e-3), cpu)
    load_optimizer(again, opt.state_dict(), cpu)   # a resumed run keeps the groups' scales
    set_lr(again, 5e-4)
    assert [g["lr"] for g in again.param_groups] == pytest.approx([5e-4, 2e-3])
    # Adam's first step moves each weight by about its rate: the BN weights 4x as far, the others alike
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8)
    torch.manual_seed(0)
    plain, plain_opt = classifier_setup(make_config("classifier", "smoke", lr=1e-3), cpu)
    before = [p.detach().clone() for p in plain.parameters()]
    for net, o in ((model, opt), (plain, plain_opt)):
        set_lr(o, 1e-3)
        classifier_step(net, o, x, y)
    for p, q, b in zip(model.parameters(), plain.parameters(), before):
        ratio = (p.detach() - b).abs().max() / (q.detach() - b).abs().max()
        assert ratio.item() == pytest.approx(4 if any(p is n for n in norms) else 1, rel=1e-3), p.shape


def test_a_whitened_stem_starts_from_the_first_training_images(cifar_root):
    from effcifar import data as cifar
    from effcifar.classifier import WHITEN_IMAGES, classifier_setup
    from effcifar.models import whitening_filters
    train, _ = cifar.load_cifar100(cifar_root, verify=False)
    cfg = make_config("classifier", "smoke", variant="strong_stem_whiten_bf16_compile")
    model, _ = classifier_setup(cfg, torch.device("cpu"), train)
    expected = whitening_filters(cifar.normalize(train.images[:WHITEN_IMAGES]), 24)
    assert torch.equal(model.stem[0].weight, expected)
    torch.manual_seed(0)
    plain, _ = classifier_setup(make_config("classifier", "smoke", variant="strong_stem_bf16_compile"),
                                torch.device("cpu"))
    torch.manual_seed(0)
    whitened, _ = classifier_setup(cfg, torch.device("cpu"), train)
    for (name, p), q in zip(plain.named_parameters(), whitened.parameters()):   # the stem alone differs, and
        assert torch.equal(p, q) != name.startswith("stem.0."), name             # no random draw is taken
    with pytest.raises(ValueError, match="pass train"):
        classifier_setup(cfg, torch.device("cpu"))
