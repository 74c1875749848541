"""FID with pytorch-fid's InceptionV3 (2048-d pool features) and the Frechet distance (``frechet_distance``).

Images enter as uint8 (generated images are quantised as a saved PNG would be), then ``/255`` as
pytorch-fid's own ``fid_score`` does, so both paths see the same numbers. Reference statistics of the
CIFAR-100 test set are computed once and cached, keyed by the test file, the weights and the count.
"""
from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from pytorch_fid import inception as pfi
from torchvision.models.inception import Inception3
from tqdm import tqdm

from . import data as D
from .config import to_dict
from .results import (comparable, provenance, read_json, resolve_device, run_dir, write_csv, write_json)
from .train import fixed_noise, load_generator, snapshot_steps

WEIGHTS_FILE = pfi.FID_WEIGHTS_URL.rsplit("/", 1)[1]   # pt_inception-2015-12-05-6726825d.pth


class FIDWeightsError(RuntimeError):
    pass


def weights_path() -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", WEIGHTS_FILE)


def inception(kind: str = "pytorch-fid", device="cpu", download: bool = True, dims: int = 2048):
    """pytorch-fid's InceptionV3 returning ``dims``-d features. ``kind="random"``: the same network,
    randomly initialised (seeded), never downloading anything — for tests and offline speed checks."""
    block = pfi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]
    if kind == "random":
        with torch.random.fork_rng(devices=[]), \
                mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: None), \
                mock.patch.object(Inception3, "load_state_dict", lambda self, *a, **k: None):
            torch.manual_seed(0)
            model = pfi.InceptionV3([block])
            for m in model.modules():   # variance-preserving init, so that features differ between images
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    elif kind == "pytorch-fid":
        path = weights_path()
        if not os.path.isfile(path) and not download:
            raise FIDWeightsError(
                f"the FID Inception weights {WEIGHTS_FILE} are not in {os.path.dirname(path)} (downloads are "
                f"off). Copy the file there from {pfi.FID_WEIGHTS_URL}, or set TORCH_HOME to a folder whose "
                f"hub/checkpoints/ holds it (e.g. TORCH_HOME=../shared/data/torch).")
        try:
            model = pfi.InceptionV3([block])
        except Exception as e:
            state = "is there but could not be loaded (truncated or corrupt? delete it)" if os.path.isfile(path) \
                else "is missing and could not be downloaded"
            raise FIDWeightsError(
                f"the FID Inception weights {path} {state}: {type(e).__name__}: {e}. Get {WEIGHTS_FILE} from "
                f"{pfi.FID_WEIGHTS_URL} into {os.path.dirname(path)}, or set TORCH_HOME to a folder whose "
                f"hub/checkpoints/ holds it.") from None
    else:
        raise ValueError(f"unknown inception {kind!r}; use 'pytorch-fid' or 'random'")
    return model.to(device, memory_format=torch.channels_last).eval()   # 1.7x faster on CPU


def resolve_inception(kind: str, download: bool = True) -> str:
    """``auto`` -> ``pytorch-fid`` when its weights are present (or download, if allowed and possible),
    else ``random``, with a warning on stderr: FIDs with random weights only compare runs of this build."""
    if kind != "auto":
        return kind
    if not os.path.isfile(weights_path()) and download:
        before = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)   # a firewalled network must not hang the report
        try:
            torch.hub.load_state_dict_from_url(pfi.FID_WEIGHTS_URL, progress=False)
        except Exception as e:   # offline: fall back below
            print(f"[effcifar] could not download {WEIGHTS_FILE} ({type(e).__name__})", file=sys.stderr)
        finally:
            socket.setdefaulttimeout(before)
    if os.path.isfile(weights_path()):
        return "pytorch-fid"
    print(f"[effcifar] inception=auto: {WEIGHTS_FILE} is not in {os.path.dirname(weights_path())}; using a "
          f"randomly initialised InceptionV3. These FIDs are not comparable with the paper's.", file=sys.stderr)
    return "random"


@torch.no_grad()
def features(model, images: torch.Tensor, batch_size: int = 200, device="cpu", progress=False) -> np.ndarray:
    """Pool features (N x dims, float64) of uint8 images N x 3 x H x W."""
    out = []
    for i in tqdm(range(0, len(images), batch_size), disable=not progress, desc="inception", file=sys.stderr):
        x = images[i:i + batch_size].to(device).float() / 255
        pred = model(x)[0]
        out.append(pred.squeeze(3).squeeze(2).double().cpu().numpy())
    return np.concatenate(out)


def statistics(feats: np.ndarray):
    return np.mean(feats, axis=0), np.cov(feats, rowvar=False)


def frechet_distance(stats1, stats2) -> float:
    """The Frechet distance |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2) between two Gaussians.

    pytorch-fid's ``calculate_frechet_distance`` takes the general matrix square root of S1 S2 (scipy's
    ``sqrtm``: 10-40 s for 2048 x 2048 on a small CPU, for every snapshot scored). S1 S2 is similar to
    the symmetric S1^1/2 S2 S1^1/2, so its trace root is the sum of the roots of that matrix's
    eigenvalues: two symmetric eigendecompositions, several times faster. Agreement with pytorch-fid's
    function is tested (to 1e-6 relative with full-rank covariances; to 1e-3 when fewer images than
    dimensions make them singular) and checked again by benchmarks/speed.py."""
    (mu1, s1), (mu2, s2) = stats1, stats2
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


@torch.no_grad()
def generate(netG, n: int, seed: int, batch_size: int = 500, device="cpu") -> torch.Tensor:
    """``n`` uint8 images from ``netG``; the noise depends on ``seed`` alone, so every snapshot is
    scored on the same noise."""
    g = torch.Generator().manual_seed(seed + 999)
    z = torch.randn(n, netG.nz, generator=g)
    netG = netG.to(device).eval()
    return torch.cat([D.to_uint8(netG(z[i:i + batch_size].to(device))).cpu() for i in range(0, n, batch_size)])


def cache_dir() -> Path:
    env = os.environ.get("EFFCIFAR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "effcifar"


def reference_stats(cfg, model, device, progress=False):
    """(mu, sigma) of the first ``n_reference`` (all when 0) CIFAR-100 test images, cached on disk."""
    folder = D.ensure_cifar100(cfg.data, verify=cfg.verify, download=cfg.download)
    weights = "random" if cfg.inception == "random" else D.md5sum(weights_path())[:12]
    test_md5 = D.FILES["test"] if cfg.verify else D.md5sum(os.path.join(folder, "test"))  # verified: canonical
    key = f"{test_md5[:12]}-{weights}-n{cfg.n_reference}-d{cfg.dims}"
    path = cache_dir() / "fid_stats" / f"cifar100_test-{key}.npz"
    if path.is_file():
        z = np.load(path)
        return z["mu"], z["sigma"], str(path)
    test = D.load_split(cfg.data, train=False, verify=False, download=False)
    images = test.images[:cfg.n_reference] if cfg.n_reference else test.images
    mu, sigma = statistics(features(model, images, cfg.batch_size, device, progress))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, mu=mu, sigma=sigma)
    os.replace(tmp, path)
    return mu, sigma, str(path)


def _steps(cfg, dcgan_run: Path) -> list[int]:
    have = snapshot_steps(dcgan_run)
    if not have:
        raise FileNotFoundError(f"{dcgan_run}/snapshots holds no generator snapshots: train the DCGAN first")
    if cfg.snapshots == "all":
        return have
    want = [int(s) for s in cfg.snapshots.split(",")]
    missing = [s for s in want if s not in have]
    if missing:
        raise FileNotFoundError(f"{dcgan_run} has no snapshots at steps {missing}; it has {have}. "
                                f"Set snapshots to some of those, or 'all'.")
    return want


def compute_fid(cfg, dcgan_run, force: bool = False, progress: bool = True) -> Path:
    """FID of ``n_samples`` images from each chosen snapshot of ``dcgan_run``; writes fid.csv,
    metrics.json and provenance.json into ``cfg.out/<run_name>``. Reused when config and snapshots
    are unchanged."""
    dcgan_run = Path(dcgan_run)
    cfg = replace(cfg, inception=resolve_inception(cfg.inception, cfg.download))   # cache keyed by the real kind
    steps = _steps(cfg, dcgan_run)
    hashes = {str(s): D.md5sum(str(dcgan_run / "snapshots" / f"G_step{s:06d}.pt")) for s in steps}
    d = run_dir(cfg)
    if not force and (d / "metrics.json").is_file():
        old = read_json(d / "metrics.json")
        if old.get("snapshot_md5") == hashes and comparable(read_json(d / "config.json")) == comparable(to_dict(cfg)):
            print(f"[effcifar] reusing FID results {d} (same config and snapshots); force=True recomputes",
                  file=sys.stderr)
            return d
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", to_dict(cfg))
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    model = inception(cfg.inception, device, download=cfg.download, dims=cfg.dims)
    mu, sigma, stats_file = reference_stats(cfg, model, device, progress)
    rows = []
    for s in steps:
        images = generate(load_generator(dcgan_run, s), cfg.n_samples, cfg.seed, device=device)
        gen = statistics(features(model, images, cfg.batch_size, device, progress))
        rows.append({"step": s, "fid": frechet_distance(gen, (mu, sigma))})
        print(f"[effcifar] FID at step {s}: {rows[-1]['fid']:.2f}", file=sys.stderr)
    wall = time.perf_counter() - t0
    best = min(rows, key=lambda r: r["fid"])
    write_csv(d / "fid.csv", rows)
    write_json(d / "provenance.json", provenance(cfg, device, wall, dcgan_run=str(dcgan_run)))
    write_json(d / "metrics.json", {
        "fid": {str(r["step"]): r["fid"] for r in rows}, "best_step": best["step"], "best_fid": best["fid"],
        "n_samples": cfg.n_samples, "n_reference": cfg.n_reference or 10_000, "inception": cfg.inception,
        "note": (f"{min(cfg.n_samples, cfg.n_reference or 10_000):,} images per set is fewer than the {cfg.dims} "
                 f"feature dimensions: the covariances are singular and the FID is biased upwards; compare it "
                 f"only with FIDs from the same numbers of images")
        if min(cfg.n_samples, cfg.n_reference or 10_000) < cfg.dims else "",
        "reference_stats": stats_file, "dcgan_run": str(dcgan_run), "snapshot_md5": hashes})
    return d
