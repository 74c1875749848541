"""The FID's Inception settings that change only its rounding: the batch and folded batch norms.

    python benchmarks/fid_inference.py [--data ../shared/data] [--images 1000] [--speed-images 200]

An FID of the paper profile passes about 55,000 images through Inception, most of its 45 minutes on 2 CPU
cores. The published FIDs ran it in batches of 100 with its batch norms as separate layers. This times
Inception (images/s on the first ``--speed-images`` test images) for that setting, for batches of 25, for
batches of 25 with each batch norm folded into its convolution (``fold_bn``, the FID config's default now)
and for that under torch.compile (not shipped: see the Performance page). Then it computes one FID, of
``--images`` samples of a published DCGAN snapshot against as many test images, with the published setting
and with the default: they must agree to rounding (the FID config treats these fields as inference-only,
so results made with either are the same result). Writes ``results/benchmark/fid_inference-<date>-<time>.json``,
shown on the Performance page. CPU only; needs the real data, pytorch-fid's weights and a published run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effcifar import data as cifar  # noqa: E402
from effcifar import fid  # noqa: E402
from effcifar.config import make_config  # noqa: E402
from effcifar.dcgan import load_generator  # noqa: E402
from effcifar.results import device_name, provenance, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = dict(batch=100, fold_bn=False)   # how the FIDs published before fold_bn ran on the CPU
SETTINGS = {"published (batch 100)": (PUBLISHED, False),
            "batch 25": (dict(batch=25, fold_bn=False), False),
            "batch 25, fold_bn (default)": (dict(batch=25, fold_bn=True), False),
            "batch 25, fold_bn, torch.compile": (dict(batch=25, fold_bn=True), True)}


def main(argv=None) -> int:
    start = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--run", default="dcgan-paper-seed1", help="the published DCGAN run whose snapshot is scored")
    ap.add_argument("--step", type=int, default=46_000)
    ap.add_argument("--images", type=int, default=1000, help="samples and test images of the FID check")
    ap.add_argument("--speed-images", type=int, default=200, help="test images timed per setting")
    ap.add_argument("--out", default="results/benchmark")
    args = ap.parse_args(argv)
    cfg = make_config("fid", "paper", data=args.data, device="cpu")
    test = cifar.load_split(args.data, train=False, verify=True, download=False).images
    device = torch.device("cpu")
    print(f"device: {device_name(device)}; torch {torch.__version__}; {torch.get_num_threads()} threads")
    models = {}

    def model(setting, compiled):
        key = (setting["fold_bn"], compiled)
        if key not in models:
            net = fid.inception(cfg.inception, device, download=False, fold_bn=setting["fold_bn"])
            models[key] = torch.compile(net) if compiled else net
        return models[key]

    rows, base = [], None
    for name, (setting, compiled) in SETTINGS.items():
        net, batch = model(setting, compiled), setting["batch"]
        t0 = time.perf_counter()
        fid.features(net, test[:batch], batch)   # warm-up (and the compilation, timed apart)
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        fid.features(net, test[:args.speed_images], batch)
        speed = args.speed_images / (time.perf_counter() - t0)
        base = base or speed
        rows.append({"setting": name, "batch": batch, "fold_bn": setting["fold_bn"], "compile": compiled,
                     "images_per_s": round(speed, 2), "vs_published": round(speed / base, 2),
                     "compile_seconds": round(warm, 1) if compiled else 0.0})
        print(f"{name:34s} {speed:6.1f} images/s  x{speed / base:.2f}"
              + (f"  (compiling: {warm:.0f} s)" if compiled else ""), flush=True)

    with torch.no_grad():
        samples = fid.generate(load_generator(ROOT / "results" / args.run, args.step), args.images, seed=1)
    fids = {}
    for name in ("published (batch 100)", "batch 25, fold_bn (default)"):
        setting, _ = SETTINGS[name]
        net = model(setting, False)
        fids[name] = fid.frechet_distance(*(fid.statistics(fid.features(net, x, setting["batch"]))
                                          for x in (samples, test[:args.images])))
        print(f"FID ({args.images:,} samples of {args.run} at {args.step:,} vs as many test images), {name}: "
              f"{fids[name]:.6f}", flush=True)
    for row in rows:   # the FID check, on the rows it was made for
        if row["setting"] in fids:
            row["fid"] = fids[row["setting"]]
            row["fid_difference"] = fids[row["setting"]] - fids["published (batch 100)"]
    difference = rows[2]["fid_difference"]
    print(f"difference: {difference:+.2e}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_json(Path(args.out) / f"fid_inference-{time.strftime('%Y%m%d-%H%M')}.json", {
        "command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "rows": rows,
        "fid_check": {"run": args.run, "step": args.step, "images": args.images, "difference": difference},
        "provenance": provenance(cfg, device, time.perf_counter() - start)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
