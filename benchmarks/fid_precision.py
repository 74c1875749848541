"""Is a bfloat16 Inception good enough for the FID on a CPU? Its speed, and its FIDs against fp32's.

    python benchmarks/fid_precision.py [--seed 1] [--variant ""] [--data ../shared/data] [--images 1000]

An FID of the paper profile passes ~55,000 images through Inception: over 40 min on 2 CPU cores in fp32.
Issue 8 allows bf16 there only if its FIDs agree with fp32's to 0.05. This times both precisions on the
first ``--images`` test images, then scores a published DCGAN run's snapshots (10,000 samples each, as
its published FID; no sweep) with ``precision="bf16"`` and compares them, and the floor, with the
published fp32 numbers (say which device made those: the check is strict only on the same one).
The bf16 results go to ``--runs`` (a scratch folder by default); the comparison to
``results/benchmark/fid_precision-<date>-<time>.json``, shown on the Performance page.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effcifar import data as cifar  # noqa: E402
from effcifar import fid  # noqa: E402
from effcifar.config import make_config  # noqa: E402
from effcifar.results import device_name, provenance, read_json, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 0.05   # issue 8: bf16 FID only if it agrees with fp32 to this


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--seed", type=int, default=1, help="the published DCGAN run (paper profile) to score")
    ap.add_argument("--variant", default="")
    ap.add_argument("--images", type=int, default=1000, help="test images timed in each precision")
    ap.add_argument("--runs", default="", help="where the bf16 FID results go (default: a scratch folder)")
    ap.add_argument("--out", default="results/benchmark")
    args = ap.parse_args(argv)
    published = ROOT / "results"
    cfg = make_config("fid", "paper", data=args.data, seed=args.seed, variant=args.variant, out=str(published),
                      device="cpu", sweep_samples=0)
    fp32 = read_json(published / cfg.run_name / "metrics.json")
    fp32_device = read_json(published / cfg.run_name / "provenance.json").get("device", "?")
    floor_device = read_json(published / cfg.floor_run_name / "provenance.json").get("device", "?")
    device = torch.device("cpu")
    print(f"device: {device_name(device)}; torch {torch.__version__}; published fp32 FID from {fp32_device}")

    model = fid.inception(cfg.inception, device, download=False, fold_bn=cfg.fold_bn)
    batch = fid.inference_batch(cfg)
    images = cifar.load_split(args.data, train=False, verify=True, download=False).images[:args.images]
    speed = {}
    for precision in ("fp32", "bf16"):
        fid.features(model, images[:batch], batch, precision=precision)   # warm-up
        t0 = time.perf_counter()
        fid.features(model, images, batch, precision=precision)
        speed[precision] = args.images / (time.perf_counter() - t0)
        print(f"{precision}: {speed[precision]:.1f} images/s", flush=True)

    runs = args.runs or tempfile.mkdtemp(prefix="fid_bf16-")
    bf16_cfg = replace(cfg, precision="bf16", out=runs)
    t0 = time.perf_counter()
    d = fid.compute_fid(bf16_cfg, published / cfg.dcgan_run_name)
    wall = time.perf_counter() - t0
    bf16 = read_json(d / "metrics.json")
    rows = [{"what": "Inception speed (images/s)", "fp32": speed["fp32"], "bf16": speed["bf16"]}]
    rows += [{"what": f"FID at step {s} ({fp32['n_samples']:,} samples)", "fp32": fp32["fid"][s],
              "bf16": bf16["fid"][s]}
            for s in bf16["fid"]]
    rows.append({"what": "floor (training against test images)", "fp32": fp32["floor"], "bf16": bf16["floor"]})
    for r in rows:
        r["difference"] = r["bf16"] - r["fp32"]
        print(f"{r['what']:40s} fp32 {r['fp32']:8.3f}  bf16 {r['bf16']:8.3f}  ({r['difference']:+.3f})")
    agree = all(abs(r["difference"]) <= TOLERANCE for r in rows if r["what"].startswith("FID"))
    print(f"bf16 {speed['bf16'] / speed['fp32']:.2f}x the fp32 speed; its FIDs "
          f"{'agree' if agree else 'do not agree'} with fp32's to {TOLERANCE} (bf16 FID + floor: {wall / 60:.1f} min)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_json(Path(args.out) / f"fid_precision-{time.strftime('%Y%m%d-%H%M')}.json", {
        "command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
        "dcgan_run": cfg.dcgan_run_name, "fp32_device": fp32_device, "floor_device": floor_device,
        "speedup": round(speed["bf16"] / speed["fp32"], 2),
        "rows": rows, "tolerance": TOLERANCE, "agree": agree, "bf16_minutes": round(wall / 60, 1),
        "provenance": provenance(bf16_cfg, device, wall)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
