"""What the classifier's evaluations cost on the CPU, and the levers that could make them cheaper.

    python benchmarks/eval_cost.py [--data ../shared/data] [--repeats 2]

The paper profile evaluates the whole test set (10,000 images) every 250 steps: 40 passes per run. Each
lever times ``train.evaluate`` (the shipped path: ``no_grad``, chunks of 256 images on a CPU) changed in one
way, on the published seed-0 classifier and the real test set where they are here (else an untrained
model on random images: the timing is the same, the equality check is then weaker), and says whether the
loss and accuracy stay exactly those of the shipped path (a lever that changes them changes Figure 2).
Results also go to ``results/benchmark/eval_cost-<date>-<time>.json``, shown on the Performance page.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effcifar import classifier  # noqa: E402
from effcifar import data as cifar  # noqa: E402
from effcifar.config import make_config, to_dict  # noqa: E402
from effcifar.models import build_classifier  # noqa: E402
from effcifar.results import device_name, provenance, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "results" / "classifier-paper-seed0"


def levers(model, test):
    """{name: (description, a function that evaluates)}: the shipped path and its variations."""
    cl = model.to(memory_format=torch.channels_last)   # as classifier_setup leaves it on a CPU

    def with_context(ctx, **kw):
        def run():
            with ctx():
                return classifier.evaluate(cl, test, **kw)
        return run

    def bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)

    return {
        "shipped": ("no_grad, chunks of 256 (CPU)", lambda: classifier.evaluate(cl, test)),
        "chunk1024": ("chunks of 1,024 (shipped until 2026-11-27)", lambda: classifier.evaluate(cl, test, chunk=1024)),
        "chunk128": ("chunks of 128", lambda: classifier.evaluate(cl, test, chunk=128)),
        "chunk512": ("chunks of 512", lambda: classifier.evaluate(cl, test, chunk=512)),
        "inference_mode": ("torch.inference_mode around it", with_context(torch.inference_mode)),
        "bf16": ("autocast to bfloat16", with_context(bf16)),
        "threads1": ("one thread", with_context(lambda: _threads(1))),
    }


@contextlib.contextmanager
def _threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def main(argv=None) -> int:
    start = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=2, help="timed passes per lever (the best counts)")
    ap.add_argument("--images", type=int, default=0, help="only the first N test images (0: all; a quick check)")
    ap.add_argument("--out", default="results/benchmark")
    args = ap.parse_args(argv)
    cfg = make_config("classifier", "paper")
    model = build_classifier(to_dict(cfg))
    try:
        _, test = cifar.load_cifar100(args.data, verify=True, download=False)
        model = classifier.load_classifier(PUBLISHED)
        source = f"published {PUBLISHED.name} on the CIFAR-100 test set"
    except (cifar.DataError, FileNotFoundError) as e:
        print(f"no real data or published model ({e}); an untrained model on random images", file=sys.stderr)
        test = cifar.Split(torch.randint(0, 256, (10_000, 3, 32, 32), dtype=torch.uint8),
                       torch.randint(0, 100, (10_000,)), [str(i) for i in range(100)])
        source = "untrained model, random images"
    if args.images:
        test = cifar.Split(test.images[:args.images], test.labels[:args.images], test.classes)
        source += f", first {args.images:,} images"
    print(f"device: {device_name(torch.device('cpu'))}; torch {torch.__version__}; {source}")
    rows, base = [], None
    for name, (what, run) in levers(model, test).items():
        run()   # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t0)
        base = base or (min(times), out)
        row = {"lever": name, "what": what, "seconds": round(min(times), 2),
               "vs_shipped": round(base[0] / min(times), 2),
               "same_numbers": out["loss"] == base[1]["loss"] and out["acc"] == base[1]["acc"],
               "accuracy_change_points": round(100 * (out["acc"] - base[1]["acc"]), 3)}
        rows.append(row)
        print(f"{name:15s} {row['seconds']:7.2f} s  x{row['vs_shipped']:.2f}  same numbers: {row['same_numbers']}"
              f"  (accuracy {row['accuracy_change_points']:+.3f} points)", flush=True)
    print(f"40 evaluations of the shipped path: {40 * base[0] / 60:.1f} min per paper-profile classifier run"
          + (f" (of {len(test):,} images)" if args.images else ""))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_json(Path(args.out) / f"eval_cost-{time.strftime('%Y%m%d-%H%M')}.json",
               {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "source": source,
                "evaluations_per_run": 40, "rows": rows, "provenance": provenance(cfg, torch.device("cpu"),
                                                                                  time.perf_counter() - start)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
