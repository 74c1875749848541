"""Steps per second of the training step under each speed lever, one at a time (a GPU-tuning aid).

    python benchmarks/variants.py [--device cuda] [--steps 300] [--ops]

Varies memory format (channels_last or not), cuDNN autotuning, CUDA-graph replay and bf16 autocast
(classifier only: the DCGAN's BCE on probabilities may not autocast) for the classifier and the DCGAN step on a
synthetic full-size batch source; prints a table. The training
loop uses the winners (see effcifar/steps.py); this script is how they were chosen. ``--ops`` instead
profiles effcifar's own step (torch.profiler) and prints where its time goes: the share spent in
convolutions says how much any change outside them can gain.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effcifar import data as cifar  # noqa: E402
from effcifar.classifier import classifier_batch, classifier_setup, classifier_step
from effcifar.config import make_config  # noqa: E402
from effcifar.dcgan import dcgan_batch, dcgan_setup, dcgan_step
from effcifar.results import device_name, resolve_device  # noqa: E402
from effcifar.steps import GraphedStep


def build(experiment, device, channels_last, graph):
    """effcifar's own setup and step for ``experiment``, in the memory format asked for."""
    cfg = make_config(experiment, "paper", cuda_graph=graph)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if experiment == "classifier":
        model, opt = classifier_setup(cfg, device)
        model.to(memory_format=fmt)   # in place: the optimizer keeps the same parameters
        return cfg, partial(classifier_step, model, opt), classifier_batch
    netG, netD, optG, optD = dcgan_setup(cfg, device)
    netG.to(memory_format=fmt)
    netD.to(memory_format=fmt)
    return cfg, partial(dcgan_step, netG, netD, optG, optD), dcgan_batch


def with_autocast(fn):
    def run(*inputs):
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            return fn(*inputs)
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--ops", action="store_true", help="profile effcifar's step: time by operator")
    ap.add_argument("--only", choices=("classifier", "dcgan"), help="one model only")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    train = cifar.Split(torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8),
                    torch.randint(0, 100, (50_000,)), [str(i) for i in range(100)]).to(device)
    sampler = cifar.BatchSampler(len(train), 128, 0)
    print(f"device: {device_name(device)}; torch {torch.__version__}")
    print(f"{'model':10s} {'channels_last':>13s} {'cudnn_bench':>11s} {'graph':>5s} {'bf16':>5s} {'steps/s':>8s}")
    cuda = device.type == "cuda"
    if args.ops:
        return ops(train, sampler, device, args.steps)
    for experiment in [args.only] if args.only else ("classifier", "dcgan"):
        for cl, bench, graph, bf16 in itertools.product((True, False), (False, True) if cuda else (False,),
                                                        (True, False) if cuda else (False,),
                                                        (False, True) if cuda and experiment == "classifier"
                                                        else (False,)):   # BCE may not autocast
            torch.backends.cudnn.benchmark = bench
            cfg, fn, batch_of = build(experiment, device, cl, graph)
            update = GraphedStep(with_autocast(fn) if bf16 else fn, graph and cuda)
            for step in range(10):
                update(*batch_of(train, sampler, cfg, step, device))
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for step in range(10, 10 + args.steps):
                out = update(*batch_of(train, sampler, cfg, step, device))
            if cuda:
                torch.cuda.synchronize()
            rate = args.steps / (time.perf_counter() - t0)
            ok = bool(torch.isfinite(out[0] if isinstance(out, tuple) else out).all())
            print(f"{experiment:10s} {cl!s:>13s} {bench!s:>11s} {graph!s:>5s} {bf16!s:>5s} {rate:8.1f}"
                  + ("" if ok else "  (non-finite loss)"), flush=True)
    return 0


def ops(train, sampler, device, steps) -> int:
    """Self time by operator over ``steps`` of effcifar's step, grouped: convolutions (forward and
    backward), batch norm, optimizer, and the rest (augmentation, losses, activations, overhead)."""
    from torch.profiler import ProfilerActivity, profile
    groups = {"convolution": ("conv", "mkldnn", "cudnn"), "batch norm": ("batch_norm",),
              "optimizer": ("_foreach", "adam", "addcdiv", "lerp", "sqrt")}
    for experiment in ("classifier", "dcgan"):
        cfg, fn, batch_of = build(experiment, device, channels_last=device.type == "cpu", graph=False)
        for step in range(3):
            fn(*batch_of(train, sampler, cfg, step, device))
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        t0 = time.perf_counter()
        with profile(activities=acts) as prof:
            for step in range(3, 3 + steps):
                fn(*batch_of(train, sampler, cfg, step, device))
        wall = (time.perf_counter() - t0) / steps
        total = {k: 0.0 for k in (*groups, "rest")}
        for e in prof.key_averages():
            name = e.key.lower()
            group = next((g for g, keys in groups.items() if any(k in name for k in keys)), "rest")
            total[group] += e.self_cpu_time_total
        whole = sum(total.values())
        print(f"{experiment}: {1000 * wall:.0f} ms per step (profiled); self time: " +
              ", ".join(f"{g} {100 * t / whole:.0f}%" for g, t in total.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
