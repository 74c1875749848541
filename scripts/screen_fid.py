"""Screen a DCGAN run while it trains: the 1,000-sample FID of some of its snapshots, as the FID sweep
computes it (the same samples, Inception and cached test statistics), printed and written nowhere in results/.

    .venv/bin/python scripts/screen_fid.py results/dcgan-paper-VARIANT-seed0 VARIANT 10000 20000

Compare a number only with another run's fid_sweep.csv at the same step (1,000 samples bias the FID
upwards). For a finished run use `python -m effcifar fid`, whose results the book reads."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effcifar import fid  # noqa: E402
from effcifar.config import make_config  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("run", type=Path, help="the DCGAN run folder (results/dcgan-...)")
ap.add_argument("variant", help="its variant ('-' for the paper's config)")
ap.add_argument("steps", type=int, nargs="+", help="snapshot steps to score")
ap.add_argument("--data", default="../shared/data", help="folder that holds cifar-100-python/")
ap.add_argument("--profile", default="paper")
args = ap.parse_args()
cfg = make_config("fid", args.profile, variant="" if args.variant == "-" else args.variant,
                  out="/tmp/effcifar-screen", data=args.data, device="cpu")
cfg = fid.resolved(cfg)
device, model, ref = fid.scorer(cfg)
print("test statistics:", ref[3], flush=True)
for step in args.steps:
    score = fid.snapshot_fid(cfg, args.run, step, cfg.sweep_samples, device, model, ref)
    print(f"step {step}: FID {score:.2f} ({cfg.sweep_samples:,} samples)", flush=True)
