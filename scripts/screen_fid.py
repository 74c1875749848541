"""Screen a DCGAN run while it trains: the 1,000-sample FID of some of its snapshots, as the FID sweep
computes it (the same samples, Inception and cached test statistics), printed and written nowhere in results/.

    .venv/bin/python scripts/screen_fid.py results/dcgan-paper-VARIANT-seed0 VARIANT 10000 20000

Compare a number only with another run's fid_sweep.csv at the same step (1,000 samples bias the FID
upwards). For a finished run use `python -m effcifar fid`, whose results the book reads."""
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effcifar import fid as F  # noqa: E402
from effcifar.config import make_config  # noqa: E402
from effcifar.train import load_generator  # noqa: E402

run, variant = Path(sys.argv[1]), sys.argv[2]
cfg = make_config("fid", "paper", variant=variant, out="/tmp/effcifar-screen", data="../shared/data", device="cpu")
cfg = replace(cfg, inception=F.resolve_inception(cfg.inception, cfg.download), batch_size=F.inference_batch(cfg))
device, model, ref = F._begin(Path(cfg.out), cfg, False)
print("test statistics:", ref[3], flush=True)
for step in map(int, sys.argv[3:]):
    images = F.generate(load_generator(run, step), cfg.sweep_samples, cfg.seed, device=device)
    feats = F.features(model, images, cfg.batch_size, device, False, cfg.precision)
    print(f"step {step}: FID {F.frechet_distance(F.statistics(feats), ref[:2]):.2f} ({cfg.sweep_samples:,} samples)", flush=True)
