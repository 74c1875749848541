"""Steps per second of the training step under each speed lever, one at a time (a GPU-tuning aid).

    python benchmarks/variants.py [--device cuda] [--steps 300]

Varies memory format (channels_last or not), cuDNN autotuning, CUDA-graph replay and bf16 autocast
(classifier only: the DCGAN's BCE on probabilities may not autocast) for the classifier and the DCGAN step on a synthetic full-size batch source; prints a table. The training
loop uses the winners (see effcifar/train.py); this script is how they were chosen.
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
from effcifar import data as D  # noqa: E402
from effcifar.config import make_config  # noqa: E402
from effcifar.models import Classifier, Discriminator, Generator, dcgan_init  # noqa: E402
from effcifar.results import device_name, resolve_device  # noqa: E402
from effcifar.train import (GraphedStep, adam, classifier_batch, classifier_step, dcgan_batch,  # noqa: E402
                            dcgan_step)


def build(experiment, device, channels_last, graph):
    cfg = make_config(experiment, "paper", cuda_graph=graph)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if experiment == "classifier":
        model = Classifier().to(device, memory_format=fmt)
        return cfg, partial(classifier_step, model, adam(model.parameters(), cfg, device)), classifier_batch
    netG, netD = Generator().to(device, memory_format=fmt), Discriminator().to(device, memory_format=fmt)
    netG.apply(dcgan_init)
    netD.apply(dcgan_init)
    optG, optD = (adam(n.parameters(), cfg, device, (0.5, 0.999)) for n in (netG, netD))
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
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    train = D.Split(torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8),
                    torch.randint(0, 100, (50_000,)), [str(i) for i in range(100)]).to(device)
    sampler = D.BatchSampler(len(train), 128, 0)
    print(f"device: {device_name(device)}; torch {torch.__version__}")
    print(f"{'model':10s} {'channels_last':>13s} {'cudnn_bench':>11s} {'graph':>5s} {'bf16':>5s} {'steps/s':>8s}")
    cuda = device.type == "cuda"
    for experiment in ("classifier", "dcgan"):
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


if __name__ == "__main__":
    sys.exit(main())
