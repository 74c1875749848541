"""Speed of effcifar's training steps and FID features against a naive, tutorial-style baseline.

    python benchmarks/speed.py [--data D --no-verify] [--device auto] [--rounds 4] [--block 5] [--fid-images 300]

Same model, batch size and maths on both sides; blocks of steps are interleaved (naive, effcifar,
naive, ...) so that machine noise falls on both. The naive baseline is written the way tutorials do it:
torchvision transforms per image, a DataLoader with workers, ``.item()`` every step. FID: images per
second through pytorch-fid's InceptionV3 for effcifar's in-memory path and for pytorch-fid's own
``fid_score`` path (PNG files, DataLoader), on the same images with one shared network (randomly
initialised when the real weights are absent: speed and agreement do not depend on the weights), and
the two FID values, each from its own path's Frechet distance (pytorch-fid's sqrtm-based
``calculate_frechet_distance``; effcifar's eigendecomposition route). Without ``--data`` a synthetic CIFAR-format
dataset of full size is written to a
temporary folder. Results also go to ``results/benchmark/speed-<device>.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effcifar import data as cifar  # noqa: E402
from effcifar import fid as FID  # noqa: E402
from effcifar.classifier import classifier_batch, classifier_setup, classifier_step
from effcifar.config import make_config  # noqa: E402
from effcifar.dcgan import dcgan_batch, dcgan_setup, dcgan_step
from effcifar.models import Classifier, Discriminator, Generator, dcgan_init  # noqa: E402
from effcifar.results import device_name, provenance, resolve_device, write_json  # noqa: E402
from effcifar.steps import GraphedStep, uses_graph


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forever(loader):
    while True:
        yield from loader


# --- naive baselines (tutorial style) ----------------------------------------------------------------

def naive_classifier(root, verify, device, workers, batch):
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(cifar.MEAN,
                                                                                                     cifar.STD)])
    ds = cifar._CIFAR100(root, train=True, transform=tf)
    it = forever(DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                            persistent_workers=workers > 0, pin_memory=device.type == "cuda"))
    model = Classifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    stats = {"loss": 0.0, "correct": 0}

    def steps(k):
        for _ in range(k):
            x, y = next(it)
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            stats["loss"] += loss.item()
            stats["correct"] += (out.argmax(1) == y).sum().item()
    return steps


def naive_dcgan(root, device, workers, batch):
    tf = T.Compose([T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = cifar._CIFAR100(root, train=True, transform=tf)
    it = forever(DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                            persistent_workers=workers > 0, pin_memory=device.type == "cuda"))
    netG, netD = Generator().to(device), Discriminator().to(device)
    netG.apply(dcgan_init)
    netD.apply(dcgan_init)
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCELoss()
    log = []

    def steps(k):
        for _ in range(k):
            real, _ = next(it)
            real = real.to(device)
            b = real.size(0)
            netD.zero_grad()
            label = torch.full((b,), 1.0, device=device)
            output = netD(real).view(-1)
            errD_real = bce(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(b, 100, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(0.0)
            output = netD(fake.detach()).view(-1)
            errD_fake = bce(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optD.step()
            netG.zero_grad()
            label.fill_(1.0)
            output = netD(fake).view(-1)
            errG = bce(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optG.step()
            log.append((errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))
    return steps


# --- effcifar ----------------------------------------------------------------------------------------

def ours(experiment, train, device, batch, graph=True):
    """effcifar's own step for ``experiment``, exactly as its training loop runs it."""
    cfg = make_config(experiment, "paper", batch_size=batch, cuda_graph=graph)
    sampler = cifar.BatchSampler(len(train), batch, 0)
    if experiment == "classifier":
        model, opt = classifier_setup(cfg, device)
        update, batch_of = partial(classifier_step, model, opt), classifier_batch
    else:
        netG, netD, optG, optD = dcgan_setup(cfg, device)
        update, batch_of = partial(dcgan_step, netG, netD, optG, optD), dcgan_batch
    update = GraphedStep(update, uses_graph(cfg, device))
    state = {"step": 0}

    def steps(k):
        for _ in range(k):
            update(*batch_of(train, sampler, cfg, state["step"], device))
            state["step"] += 1
    return steps


def interleave(fns: dict, rounds, block, device):
    for fn in fns.values():
        fn(5)                            # warm-up: allocator, worker start, graph capture
    sync(device)
    t = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(block)
            sync(device)
            t[name] += time.perf_counter() - t0
    n = rounds * block
    return {k: n / v for k, v in t.items()}


def fid_comparison(test: cifar.Split, n: int, device, batch: int, workers: int):
    from pytorch_fid.fid_score import calculate_activation_statistics, calculate_frechet_distance
    kind = "pytorch-fid" if os.path.isfile(FID.weights_path()) else "random"
    model = FID.inception(kind, device, download=False)
    gen = Generator()
    gen.apply(dcgan_init)
    sets = {"generated": FID.generate(gen, n, seed=0), "test": test.images[:n].cpu()}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, imgs in sets.items():
            os.makedirs(f"{tmp}/{name}")
            files[name] = []
            for i, img in enumerate(imgs):
                files[name].append(f"{tmp}/{name}/{i:05d}.png")
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(files[name][-1])
        FID.features(model, sets["test"][:batch], batch, device)   # warm-up
        t0 = time.perf_counter()
        ours = {k: FID.statistics(FID.features(model, v, batch, device)) for k, v in sets.items()}
        sync(device)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs = {k: calculate_activation_statistics(v, model, batch_size=50, dims=2048, device=device,
                                                     num_workers=workers) for k, v in files.items()}
        sync(device)
        t_theirs = time.perf_counter() - t0
    fid_ours = FID.frechet_distance(ours["generated"], ours["test"])
    fid_theirs = float(calculate_frechet_distance(*theirs["generated"], *theirs["test"]))   # pytorch-fid's own
    return {"inception": kind, "images": 2 * n, "ours_img_per_s": 2 * n / t_ours,
            "pytorch_fid_img_per_s": 2 * n / t_theirs, "fid_ours": fid_ours, "fid_pytorch_fid": fid_theirs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--block", type=int, default=5)
    ap.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8))
    ap.add_argument("--fid-images", type=int, default=300, help="images per set (two sets)")
    ap.add_argument("--fid-batch", type=int, default=0, help="effcifar's Inception batch (default 25 CPU, 200 GPU)")
    ap.add_argument("--out", default="results/benchmark")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root, verify = args.data, not args.no_verify
        if root is None:
            from effcifar.fixtures import write_fake_cifar100
            root, verify = tmp, False
            write_fake_cifar100(root, n_train=50_000, n_test=10_000)
        cifar.ensure_cifar100(root, verify=verify, download=False)
        train = cifar.load_split(root, True, verify=False, download=False).to(device)
        test = cifar.load_split(root, False, verify=False, download=False)
        print(f"device: {device_name(device)}; batch {args.batch}; {args.rounds} rounds of {args.block} steps; "
              f"naive DataLoader workers: {args.workers}", flush=True)
        res = {}
        naive = {"classifier": naive_classifier(root, verify, device, args.workers, args.batch),
                 "dcgan": naive_dcgan(root, device, args.workers, args.batch)}
        for name in ("classifier", "dcgan"):
            fns = {"naive": naive[name], "effcifar": ours(name, train, device, args.batch)}
            if device.type == "cuda":   # the same step without the CUDA graph, to show what the graph buys
                fns["effcifar_no_graph"] = ours(name, train, device, args.batch, graph=False)
            r = interleave(fns, args.rounds, args.block, device)
            r["speedup"] = r["effcifar"] / r["naive"]
            res[name] = r
            print(f"{name}: " + ", ".join(f"{k} {v:.2f} steps/s" for k, v in r.items() if k != "speedup")
                  + f", ratio {r['speedup']:.2f}", flush=True)
        fb = args.fid_batch or (200 if device.type == "cuda" else 25)
        f = fid_comparison(test, args.fid_images, device, fb, args.workers)
        res["fid"] = f
        agree = abs(f["fid_ours"] - f["fid_pytorch_fid"])
        print(f"fid features ({f['inception']} Inception, {f['images']} images): pytorch-fid fid_score path "
              f"{f['pytorch_fid_img_per_s']:.1f} img/s, effcifar {f['ours_img_per_s']:.1f} img/s, ratio "
              f"{f['ours_img_per_s'] / f['pytorch_fid_img_per_s']:.2f}; FID pytorch-fid={f['fid_pytorch_fid']:.4f} "
              f"effcifar={f['fid_ours']:.4f} |diff|={agree:.2e} ({'agree' if agree < 1e-3 else 'DISAGREE'} to 1e-3)")
        print(f"speedup classifier={res['classifier']['speedup']:.2f} dcgan={res['dcgan']['speedup']:.2f}")
    cfg = make_config("classifier", "paper")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"speed-{device.type}.json", {
        "results": res, "args": vars(args), "date": time.strftime("%Y-%m-%d"),
        "provenance": provenance(cfg, device, time.perf_counter() - t_start)})
    return 0 if agree < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
