"""CPU speed levers for the training steps, one at a time, on a synthetic full-size batch source.

    python benchmarks/cpu_levers.py [--steps 60] [--only classifier|dcgan] [--levers eager,compile,bf16,...]
                                    [--only dcgan --set g_widths=128,128,64,32 ...]

Levers: ``eager`` (effcifar's step as it ships), ``compile`` (torch.compile of the networks, inductor's
C++ kernels; the time to compile is reported apart), ``bf16`` (CPU autocast to bfloat16 for the
convolutions, fp32 master weights; the DCGAN's BCE on probabilities stays fp32), ``compile+bf16``, and
``threads1`` (eager with one thread). ``--set FIELD=VALUE`` (with ``--only``) changes the paper config, to time
a variant's network (``--set g_widths=128,128,64,32``). Each lever runs ``--steps`` timed steps after warm-up; the table
gives steps/s and the ratio to eager. Results also go to ``results/benchmark/cpu_levers-<date>-<time>.json`` (one per
run: the
gains vary between runs on a shared 2-core machine, so the records are kept side by side).
"""
from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effcifar import data as cifar  # noqa: E402
from effcifar.classifier import classifier_batch, classifier_setup, classifier_step  # noqa: E402
from effcifar.config import make_config, parse_value  # noqa: E402
from effcifar.dcgan import dcgan_batch, dcgan_setup, dcgan_step  # noqa: E402
from effcifar.results import device_name, provenance, write_json  # noqa: E402


def build(experiment: str, compile_: bool, overrides=None):
    device = torch.device("cpu")
    cfg = make_config(experiment, "paper", **(overrides or {}))
    if experiment == "classifier":
        model, opt = classifier_setup(cfg, device)
        model = torch.compile(model) if compile_ else model
        return cfg, partial(classifier_step, model, opt), classifier_batch
    netG, netD, optG, optD = dcgan_setup(cfg, device)
    if compile_:
        netG, netD = torch.compile(netG), torch.compile(netD)
    return cfg, partial(dcgan_step, netG, netD, optG, optD), dcgan_batch


def bf16(fn):
    def run(*inputs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn(*inputs)
    return run


def measure(experiment, lever, train, sampler, steps, warmup=5, overrides=None):
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    if lever == "threads1":
        torch.set_num_threads(1)
    try:
        cfg, fn, batch_of = build(experiment, "compile" in lever, overrides)
        fn = bf16(fn) if "bf16" in lever else fn
        t0 = time.perf_counter()
        fn(*batch_of(train, sampler, cfg, 0, torch.device("cpu")))
        first = time.perf_counter() - t0
        for step in range(1, warmup):
            fn(*batch_of(train, sampler, cfg, step, torch.device("cpu")))
        t0 = time.perf_counter()
        for step in range(warmup, warmup + steps):
            out = fn(*batch_of(train, sampler, cfg, step, torch.device("cpu")))
        rate = steps / (time.perf_counter() - t0)
        finite = bool(torch.isfinite(out[0]).all())
    finally:
        torch.set_num_threads(threads)
    changed = ", ".join(f"{k}={v}" for k, v in (overrides or {}).items())   # not the paper config: say so
    return {"model": f"{experiment} ({changed})" if changed else experiment, "lever": lever,
            "steps_per_s": round(rate, 3),
            "first_step_s": round(first, 1), "finite": finite}


def main(argv=None) -> int:
    start = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--only", choices=("classifier", "dcgan"))
    ap.add_argument("--levers", default="eager,compile,bf16,compile+bf16,threads1")
    ap.add_argument("--out", default="results/benchmark")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a config field of the --only experiment (repeatable), e.g. --set g_widths=128,128,64,32")
    args = ap.parse_args(argv)
    if args.set and not args.only:
        ap.error("--set changes one experiment's config: give --only classifier or --only dcgan too")
    overrides = {k: parse_value(args.only, k, v) for k, _, v in (item.partition("=") for item in args.set)}
    device = torch.device("cpu")
    train = cifar.Split(torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8),
                    torch.randint(0, 100, (50_000,)), [str(i) for i in range(100)])
    sampler = cifar.BatchSampler(len(train), 128, 0)
    print(f"device: {device_name(device)}; torch {torch.__version__}")
    rows = []
    for experiment in [args.only] if args.only else ("classifier", "dcgan"):
        base = None
        for lever in args.levers.split(","):
            r = measure(experiment, lever, train, sampler, args.steps, overrides=overrides)
            base = base or r["steps_per_s"]
            r["vs_eager"] = round(r["steps_per_s"] / base, 2)
            rows.append(r)
            print(f"{r['model']:10s} {lever:13s} {r['steps_per_s']:7.2f} steps/s  x{r['vs_eager']:.2f}  "
                  f"(first step {r['first_step_s']} s){'' if r['finite'] else '  non-finite loss'}", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    cfg = make_config("classifier", "paper")
    write_json(Path(args.out) / f"cpu_levers-{time.strftime('%Y%m%d-%H%M')}.json",   # one record per run
               {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "set": overrides,
                "rows": rows,
                "provenance": provenance(cfg, device, time.perf_counter() - start)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
