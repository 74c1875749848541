import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from effcifar import fid as F
from effcifar.config import make_config
from effcifar.train import train_dcgan
from conftest import SHARED, fixture_overrides


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::scipy.linalg.LinAlgWarning")
@pytest.mark.parametrize("n", [3000, 300])   # full-rank covariances, and singular ones (n < dims)
def test_frechet_distance_matches_pytorch_fid(n):
    """Our eigendecomposition route against pytorch-fid's own sqrtm-based calculate_frechet_distance."""
    from pytorch_fid.fid_score import calculate_frechet_distance
    rng = np.random.default_rng(n)
    a = np.abs(rng.normal(size=(n, 512))) ** 1.5
    b = np.abs(rng.normal(0.1, 1.1, size=(n, 512)) @ rng.normal(size=(512, 512)) * 0.05) ** 1.5
    sa, sb = F.statistics(a), F.statistics(b)
    theirs = float(calculate_frechet_distance(*sa, *sb))
    assert F.frechet_distance(sa, sb) == pytest.approx(theirs, rel=1e-6 if n > 512 else 0, abs=0 if n > 512 else 1e-3)


def test_frechet_distance_exact_cases():
    rng = np.random.default_rng(0)
    sa = F.statistics(rng.normal(size=(500, 16)))
    assert F.frechet_distance(sa, sa) == pytest.approx(0, abs=1e-6)
    # closed form for diagonal covariances
    mu1, mu2, v1, v2 = np.zeros(3), np.array([1.0, 2.0, 0]), np.array([1.0, 4, 9]), np.array([4.0, 1, 1])
    expected = 5 + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert F.frechet_distance((mu1, np.diag(v1)), (mu2, np.diag(v2))) == pytest.approx(expected)


def test_feature_path_with_random_inception_agrees_with_pytorch_fid(tmp_path):
    """Our in-memory path against pytorch-fid's own fid_score path (PNG files), same network."""
    from pytorch_fid.fid_score import calculate_activation_statistics
    model = F.inception("random")
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    ours = F.features(model, images, batch_size=8)
    assert ours.shape == (20, 2048) and np.isfinite(ours).all()
    assert ours.std(axis=0).mean() > 1e-4                              # features differ between images
    files = []
    for i, img in enumerate(images):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(files[-1])
    mu, sigma = calculate_activation_statistics(files, model, batch_size=8, dims=2048, device="cpu", num_workers=0)
    assert np.allclose(F.statistics(ours)[0], mu, atol=1e-5) and np.allclose(F.statistics(ours)[1], sigma, atol=1e-5)
    assert np.array_equal(F.features(F.inception("random"), images[:4], 4), ours[:4])   # seeded: reproducible


def test_missing_weights_offline_is_a_clear_error():
    with pytest.raises(F.FIDWeightsError) as e:
        F.inception("pytorch-fid", download=False)
    assert F.WEIGHTS_FILE in str(e.value) and os.path.join("hub", "checkpoints") in str(e.value)
    assert "TORCH_HOME" in str(e.value)


def test_auto_inception_falls_back_to_random_only_without_weights(capsys):
    assert F.resolve_inception("auto", download=False) == "random"
    assert "not comparable with the paper" in capsys.readouterr().err
    assert F.resolve_inception("pytorch-fid", download=False) == "pytorch-fid"   # never silently replaced
    os.makedirs(os.path.dirname(F.weights_path()), exist_ok=True)
    open(F.weights_path(), "wb").close()
    assert F.resolve_inception("auto", download=False) == "pytorch-fid"


def test_corrupt_weights_are_a_clear_error():
    path = F.weights_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"not a checkpoint")
    with pytest.raises(F.FIDWeightsError, match="could not be loaded"):
        F.inception("pytorch-fid", download=False)


def test_compute_fid_end_to_end(cifar_root, tmp_path):
    ov = fixture_overrides(cifar_root, tmp_path)
    run = train_dcgan(make_config("dcgan", "smoke", **ov, steps=8), progress=False)
    cfg = make_config("fid", "smoke", **ov, n_samples=20, n_reference=20)
    out = F.compute_fid(cfg, run, progress=False)
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["fid"]) == {"4", "8"} and all(v > 0 for v in m["fid"].values())
    assert m["best_fid"] == min(m["fid"].values())
    stamp = (out / "metrics.json").stat().st_mtime_ns
    F.compute_fid(cfg, run, progress=False)                                   # reused
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileNotFoundError, match="46000"):
        F.compute_fid(make_config("fid", "smoke", **ov, snapshots="46000"), run, progress=False)


@pytest.mark.skipif(not (SHARED / "torch" / "hub" / "checkpoints" / F.WEIGHTS_FILE).is_file(),
                    reason="pytorch-fid Inception weights not in ../shared/data/torch (see its README)")
def test_real_inception_weights(monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(SHARED / "torch"))
    model = F.inception("pytorch-fid", download=False)
    feats = F.features(model, torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    assert feats.shape == (4, 2048) and (feats >= 0).all()
