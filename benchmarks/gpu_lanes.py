"""How many training runs one GPU can carry at once: the graphed training step of each model, on
synthetic full-size data, in 1, 2 and 4 processes at the same time (scripts/gpu_runs.sh runs "lanes").

    python benchmarks/gpu_lanes.py [--seconds 8] [--procs 1,2,4] [--models classifier,dcgan]

Per process count: steps/s of each process and their sum. If the sum grows with the processes, the
GPU was idle between one run's steps and runs at once cost little; if it stays flat, the GPU is the
limit and runs at once only share it. Writes results/benchmark/gpu_lanes-<device>.json.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
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
from effcifar.results import device_name, provenance, resolve_device, write_json  # noqa: E402
from effcifar.steps import GraphedStep, uses_graph


def worker(model: str, seconds: float, start, queue) -> None:
    device = resolve_device("auto")
    cfg = make_config(model, "paper", device=str(device))
    g = torch.Generator().manual_seed(0)
    train = cifar.Split(torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=g),
                    torch.randint(0, 100, (50_000,), generator=g), [str(i) for i in range(100)]).to(device)
    sampler = cifar.BatchSampler(len(train), cfg.batch_size, 0)
    if model == "classifier":
        net, opt = classifier_setup(cfg, device)
        fn, batch_of = partial(classifier_step, net, opt), classifier_batch
    else:
        fn, batch_of = partial(dcgan_step, *dcgan_setup(cfg, device)), dcgan_batch
    step_fn = GraphedStep(fn, uses_graph(cfg, device))
    for step in range(10):   # warm-up and capture
        step_fn(*batch_of(train, sampler, cfg, step, device))
    torch.cuda.synchronize() if device.type == "cuda" else None
    start.wait()
    t0, step = time.perf_counter(), 10
    while time.perf_counter() - t0 < seconds:
        out = step_fn(*batch_of(train, sampler, cfg, step, device))
        step += 1
    (out[0] if isinstance(out, tuple) else out).sum().item()   # wait for the GPU
    queue.put((step - 10) / (time.perf_counter() - t0))


def run(model: str, procs: int, seconds: float) -> list[float]:
    ctx = mp.get_context("spawn")
    start, queue = ctx.Barrier(procs), ctx.Queue()
    ps = [ctx.Process(target=worker, args=(model, seconds, start, queue)) for _ in range(procs)]
    for p in ps:
        p.start()
    rates = [queue.get() for _ in ps]
    for p in ps:
        p.join()
    return rates


def main() -> None:
    start = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--procs", default="1,2,4")
    ap.add_argument("--models", default="classifier,dcgan")
    ap.add_argument("--out", default="results/benchmark")
    args = ap.parse_args()
    rows = []
    for model in args.models.split(","):
        for n in map(int, args.procs.split(",")):
            rates = run(model, n, args.seconds)
            rows.append({"model": model, "processes": n, "steps_per_s_each": [round(r, 1) for r in rates],
                         "steps_per_s_total": round(sum(rates), 1)})
            print(f"{model:10s} {n} process(es): {sum(rates):7.1f} steps/s in all, "
                  f"{', '.join(f'{r:.1f}' for r in rates)} each", flush=True)
    device = resolve_device("auto")
    cfg = make_config("classifier", "paper")
    record = {"command": "python benchmarks/gpu_lanes.py " + " ".join(sys.argv[1:]), "rows": rows,
              "provenance": provenance(cfg, device, time.perf_counter() - start)}
    name = device_name(device).split("(")[0].strip().replace(" ", "_")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_json(Path(args.out) / f"gpu_lanes-{name}.json", record)


if __name__ == "__main__":
    main()
