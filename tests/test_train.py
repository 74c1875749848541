import csv
import json

import pytest
import torch

from effcifar.config import make_config
from effcifar.train import ResumeError, load_generator, snapshot_steps, train_classifier, train_dcgan
from conftest import fixture_overrides


def _history(run):
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_classifier_training_lowers_the_loss(cifar_root, tmp_path):
    cfg = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path), steps=40,
                      batch_size=32, lr=3e-3, eval_every=10, ckpt_every=20)
    run = train_classifier(cfg, progress=False)
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
    train_classifier(cfg, force=True, progress=False)
    assert (run / "model.pt").stat().st_mtime_ns != stamp


def test_dcgan_resume_equals_uninterrupted_and_keeps_snapshots(cifar_root, tmp_path):
    kw = dict(batch_size=16, log_every=4, ckpt_every=4, snapshot_every=4)
    full = make_config("dcgan", "smoke", **fixture_overrides(cifar_root, tmp_path / "a"), steps=12, **kw)
    run_a = train_dcgan(full, progress=False)
    train_dcgan(make_config("dcgan", "smoke", **fixture_overrides(cifar_root, tmp_path / "b"), steps=4, **kw),
                progress=False)
    run_b = train_dcgan(make_config("dcgan", "smoke", **fixture_overrides(cifar_root, tmp_path / "b"), steps=12,
                                    **kw), resume=True, progress=False)
    for name in ("G.pt", "D.pt"):
        assert _same_weights(torch.load(run_a / name), torch.load(run_b / name))
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


@pytest.mark.parametrize("experiment", ["classifier", "dcgan"])
def test_replayed_prefix_matches_and_a_changed_recipe_does_not(experiment, cifar_root, tmp_path):
    """The check behind tests/test_published.py: a run's first steps, replayed from its config.json,
    give its history again; a run whose numbers came from other code (here: another lr) does not."""
    from effcifar.train import replay_prefix
    train = {"classifier": train_classifier, "dcgan": train_dcgan}[experiment]
    run = train(make_config(experiment, "smoke", **fixture_overrides(cifar_root, tmp_path / "run")), progress=False)
    diffs = replay_prefix(run, 8, tmp_path / "replay")
    assert diffs.pop("rows") == 2 and max(diffs.values()) == 0
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "lr": config["lr"] * 3}))
    assert max(v for k, v in replay_prefix(run, 8, tmp_path / "other").items() if k != "rows") > 1e-4
    with pytest.raises(ValueError, match="logged step"):
        replay_prefix(run, 6, tmp_path / "odd")


def test_reuse_only_never_trains(cifar_root, tmp_path):
    cfg = make_config("classifier", "smoke", **fixture_overrides(cifar_root, tmp_path))
    with pytest.raises(ResumeError, match="no finished run"):
        train_classifier(cfg, progress=False, reuse_only=True)
    assert not (tmp_path / cfg.run_name).exists()
    run = train_classifier(cfg, progress=False)
    assert train_classifier(cfg, progress=False, reuse_only=True) == run
