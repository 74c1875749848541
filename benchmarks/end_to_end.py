"""Wall time of one profile end to end: classifier training, DCGAN training, FID of the chosen snapshots.

    python benchmarks/end_to_end.py --profile paper [--data D --no-verify] [--device auto] [--inception auto]

Runs the same functions as the notebooks (``train_classifier``, ``train_dcgan``, ``compute_fid``), from
scratch (``force``), and writes ``results/benchmark/end_to_end-<profile>-<device type>.json`` with the
seconds of each stage, steps per second and provenance. Without ``--data`` it writes a synthetic dataset
of CIFAR-100's full size (50,000 + 10,000 images) in the real format: the times hold for CIFAR-100 (the
networks do the same work on any images), the accuracies and FIDs do not, and the JSON says which data
it used. ``--inception auto`` uses pytorch-fid's weights when present, else a randomly initialised
InceptionV3 (same work, meaningless FID values).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effcifar.classifier import train_classifier  # noqa: E402
from effcifar.config import PROFILES, make_config  # noqa: E402
from effcifar.dcgan import train_dcgan  # noqa: E402
from effcifar.fid import compute_fid, weights_path  # noqa: E402
from effcifar.fixtures import write_fake_cifar100  # noqa: E402
from effcifar.results import provenance, read_json, resolve_device, write_json  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper", choices=PROFILES)
    ap.add_argument("--data", help="a CIFAR-100 folder (default: a synthetic one of full size)")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--inception", default="auto", choices=("auto", "pytorch-fid", "random"))
    ap.add_argument("--out", default="results/benchmark")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    inception = args.inception
    if inception == "auto":
        inception = "pytorch-fid" if os.path.isfile(weights_path()) else "random"
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data, verify = args.data, not args.no_verify
        if data is None:
            data, verify = f"{tmp}/data", False
            write_fake_cifar100(data, n_train=50_000, n_test=10_000)
        os.environ["EFFCIFAR_CACHE"] = f"{tmp}/cache"   # FID reference statistics count in the time
        common = dict(data=data, verify=verify, download=False, out=f"{tmp}/runs", device=str(device))
        stages = {}
        t0 = time.perf_counter()
        clf = train_classifier(make_config("classifier", args.profile, **common), force=True)
        stages["classifier"] = {"seconds": time.perf_counter() - t0, **_steps(clf)}
        t0 = time.perf_counter()
        gan = train_dcgan(make_config("dcgan", args.profile, **common), force=True)
        stages["dcgan"] = {"seconds": time.perf_counter() - t0, **_steps(gan)}
        t0 = time.perf_counter()
        fid_cfg = make_config("fid", args.profile, inception=inception, **common)
        fid = compute_fid(fid_cfg, gan, force=True)
        m = read_json(fid / "metrics.json")
        stages["fid"] = {"seconds": time.perf_counter() - t0, "snapshots": len(m["fid"]),
                         "images": len(m["fid"]) * m["n_samples"] + m["n_reference"], "inception": inception}
        metrics = {"test_acc": read_json(clf / "metrics.json")["test_acc"], "fid": m["fid"]}
    total = time.perf_counter() - t_all
    record = {"profile": args.profile, "date": time.strftime("%Y-%m-%d"), "total_seconds": total,
              "stages": stages, "data": "CIFAR-100" if verify else
              ("synthetic, CIFAR-100 size (times only)" if args.data is None else "CIFAR-100 format, not verified"),
              "metrics": metrics, "provenance": provenance(make_config("classifier", args.profile), device, total)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"end_to_end-{args.profile}-{device.type}.json"
    write_json(path, record)
    for name, s in stages.items():
        rate = f", {s['steps_per_s']:.1f} steps/s" if "steps_per_s" in s else f", {s['images']} images"
        print(f"{name:10s} {s['seconds']:8.1f} s{rate}")
    print(f"end to end ({args.profile}, {record['provenance']['device']}): {total:.1f} s = {total / 60:.2f} min "
          f"-> {path}")
    return 0


def _steps(run: Path) -> dict:
    m, p = read_json(run / "metrics.json"), read_json(run / "provenance.json")
    return {"steps": m["steps"], "train_seconds": p["wall_seconds"], "steps_per_s": m["steps"] / p["wall_seconds"]}


if __name__ == "__main__":
    sys.exit(main())
