"""The DCGAN's training loop (``train_dcgan``, with the collapse guard of ``guard.py``), its losses and
step, and a finished run's generators."""
from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import to_dict
from .data import (
    BatchSampler,
    Split,
    diff_augment,
    diffaug_draws,
    load_cifar100,
    random_hflip,
    step_generator,
    to_device,
    to_uint8,
    to_unit_range,
)
from .guard import armed_at, collapsed, diversity
from .models import Generator, build_dcgan, count_params, dcgan_init
from .results import provenance, resolve_device, run_config, save_checkpoint, write_csv, write_json
from .steps import (
    EMA,
    GraphedStep,
    adam,
    autocast,
    compiled,
    load_optimizer,
    lr_at,
    progress_bar,
    run_training,
    set_lr,
    stopped,
    uses_graph,
)


def fixed_noise(cfg) -> torch.Tensor:
    """The noise behind every sample grid (Figures 4 and 5): a function of the seed alone."""
    g = torch.Generator().manual_seed(cfg.seed + 12345)
    return torch.randn(cfg.n_fixed_noise, cfg.nz, generator=g)


def train_dcgan(cfg, resume: bool = False, force: bool = False, progress: bool = True,
                reuse_only: bool = False, until: int = 0) -> Path:
    """Train (or reuse, or with ``resume`` continue) the dcgan run of ``cfg``; returns its folder.
    ``until``: as for train_classifier."""
    return run_training(cfg, resume, force, reuse_only, partial(_dcgan_loop, progress=progress, until=until))


def _dcgan_loop(cfg, d: Path, state: dict | None, progress: bool, until: int = 0) -> Path:
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train, _ = load_cifar100(cfg.data, verify=cfg.verify, download=cfg.download, subset=cfg.subset)
    train = train.to(device)
    netG, netD, optG, optD = dcgan_setup(cfg, device)
    ema = EMA(netG, cfg.ema) if cfg.ema else None
    shown = ema.model if ema else netG   # the generator of the snapshots and G.pt
    step, history, wall_before, collapses = 0, [], 0.0, []

    def load(state):
        netG.load_state_dict(state["G"])
        if ema:
            ema.model.load_state_dict(state["G_ema"])
        netD.load_state_dict(state["D"])
        load_optimizer(optG, state["optG"], device)
        load_optimizer(optD, state["optD"], device)
        return (state["step"], state["history"], state["wall_seconds"], state.get("collapses", []),
                state.get("armed_at"))

    armed = None   # the collapse guard: the checkpoint step from which it reads the diversity sign (collapsed)
    if state is not None:
        step, history, wall_before, collapses, armed = load(state)
    (d / "snapshots").mkdir(exist_ok=True)
    noise = fixed_noise(cfg)
    torch.save(noise, d / "fixed_noise.pt")
    sampler = BatchSampler(len(train), cfg.batch_size, cfg.seed)
    nets = compiled(cfg, netG), compiled(cfg, netD)

    def graphed():   # again after a restore: a captured graph holds the old optimizer state tensors
        kw = dict(loss=cfg.loss, diffaug=cfg.diffaug)
        return (GraphedStep(partial(dcgan_step, *nets, optG, optD, **kw), uses_graph(cfg, device)),
                GraphedStep(partial(d_step, *nets, optD, **kw), uses_graph(cfg, device)))

    update, update_d = graphed()
    t0 = time.perf_counter()

    def checkpoint():   # only at healthy log steps: the collapse guard goes back to the last one
        save_checkpoint(d / "checkpoint.pt", {
            "step": step, "G": netG.state_dict(), **({"G_ema": ema.model.state_dict()} if ema else {}),
            "D": netD.state_dict(), "optG": optG.state_dict(),
            "optD": optD.state_dict(), "history": history, "collapses": collapses, "armed_at": armed,
            "config": to_dict(cfg),
            "wall_seconds": wall_before + time.perf_counter() - t0})

    if cfg.collapse_guard and state is None:
        checkpoint()   # step 0: something to go back to
    window = []
    with progress_bar(cfg, step, progress, "dcgan", until) as bar:
        while step < (min(until, cfg.steps) if until else cfg.steps):
            if cfg.lr_schedule != "constant":
                set_lr(optG, lr_at(cfg, step))
                set_lr(optD, lr_at(cfg, step, cfg.lr_D or cfg.lr))
            with autocast(cfg, device):
                first = step * cfg.d_steps   # the D update's index: its batch and draws
                for sub in range(first, first + cfg.d_steps - 1):   # D's extra updates (d_steps > 1)
                    update_d(*dcgan_batch(train, sampler, cfg, sub, device, stream=len(collapses)))
                stats = update(*dcgan_batch(train, sampler, cfg, first + cfg.d_steps - 1, device,
                                            stream=len(collapses)))
            if ema:
                ema.update(step)
            window.append(stats)
            step += 1
            bar.update(1)
            if step % cfg.snapshot_every == 0 or step == cfg.steps:
                torch.save(shown.state_dict(), d / "snapshots" / f"G_step{step:06d}.pt")
            if step % cfg.log_every == 0 or step == cfg.steps:
                means = torch.stack(window).mean(0).tolist()
                row = {"step": step, **dict(zip(DCGAN_STATS, means)),
                       "wall_seconds": round(wall_before + time.perf_counter() - t0, 2)}
                window = []
                bar.set_postfix(loss_D=f"{means[0]:.3f}", loss_G=f"{means[1]:.3f}")
                if cfg.collapse_guard:
                    div = diversity(netG, noise)
                    why = collapsed(cfg, row, div, armed=armed is not None)
                else:
                    why = None
                if why:
                    if len(collapses) >= cfg.collapse_max_restarts:
                        raise RuntimeError(f"the DCGAN collapsed at step {step} ({why}) after "
                                           f"{len(collapses)} restarts; the last good checkpoint is "
                                           f"{d / 'checkpoint.pt'}")
                    good = torch.load(d / "checkpoint.pt", map_location="cpu", weights_only=False)
                    print(f"[effcifar] collapse at step {step} ({why}): back to step {good['step']} with "
                          f"other random draws", file=sys.stderr)
                    record = collapses + [{"step": step, "why": why, "restored_step": good["step"]}]
                    step, history, _, _, armed = load(good)
                    collapses, (update, update_d) = record, graphed()
                    bar.reset(total=bar.total)
                    bar.update(step)
                    continue
                history.append(row)
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    if cfg.collapse_guard and armed is None:
                        armed = armed_at({step: div}, cfg.collapse_diversity)
                    checkpoint()
                    write_csv(d / "history.csv", history)
    if stopped(d, history, step, cfg):
        return d
    wall = wall_before + time.perf_counter() - t0
    torch.save(shown.state_dict(), d / "G.pt")
    torch.save(netD.state_dict(), d / "D.pt")
    last = history[-1]
    metrics = {"params_G": count_params(netG), "params_D": count_params(netD),
               "params_total": count_params(netG) + count_params(netD), "steps": cfg.steps,
               **{k: last[k] for k in DCGAN_STATS}, "train_images": len(train),
               "dataset": "CIFAR-100" if cfg.verify else "CIFAR-100 format, not verified (--no-verify)",
               "snapshots": sorted(p.name for p in (d / "snapshots").iterdir()),
               **({"collapses": collapses, "armed_at": armed} if cfg.collapse_guard else {}),
               "seconds_per_step": wall / cfg.steps if not wall_before else None}
    write_csv(d / "history.csv", history)
    write_json(d / "provenance.json", provenance(cfg, device, wall, resumed=state is not None))
    write_json(d / "metrics.json", metrics)
    return d



DCGAN_STATS = ("loss_D", "loss_G", "D_x", "D_G_z1", "D_G_z2")


def dcgan_setup(cfg, device):
    """Generator and discriminator (DCGAN init, channels_last: ~20% faster on CPU) and their Adams."""
    netG, netD = build_dcgan(to_dict(cfg))
    netG = netG.to(device, memory_format=torch.channels_last)
    netD = netD.to(device, memory_format=torch.channels_last)
    netG.apply(dcgan_init)
    netD.apply(dcgan_init)
    betas = (cfg.beta1, cfg.beta2)
    return (netG, netD, adam(netG.parameters(), cfg, device, betas),
            adam(netD.parameters(), cfg, device, betas, lr=cfg.lr_D or cfg.lr))


def dcgan_batch(train: Split, sampler: BatchSampler, cfg, step: int, device, stream: int = 0):
    """Real images in [-1, 1] and the generator's noise for D update ``step`` (with ``d_steps`` > 1, a
    step's updates are numbered step * d_steps + 0, 1, ...; ``stream``: step_generator); for a
    conditional DCGAN also the real images' labels, which the generated images of the step take too
    (else None); with DiffAugment its draws (else None). ``cfg.hflip`` mirrors half of the real images."""
    g = step_generator(cfg.seed, step, stream)
    idx = to_device(sampler.indices(step), device)
    real = to_unit_range(train.images[idx])
    noise = to_device(torch.randn(real.shape[0], cfg.nz, generator=g), device)
    y = train.labels[idx] if cfg.conditional else None
    aug = to_device(diffaug_draws(real.shape[0], g), device) if cfg.diffaug else None
    if cfg.hflip:   # drawn last: the draws above stay those of a run without it
        real = random_hflip(real, g)
    return real, noise, y, aug


def _bce(p: torch.Tensor, target: float) -> torch.Tensor:
    """BCE of probabilities, in fp32 whatever the autocast (CUDA's autocast refuses BCE on probabilities)."""
    with torch.autocast(p.device.type, enabled=False):
        p = p.float()
        return F.binary_cross_entropy(p, torch.full_like(p, target))


# each loss: (D's loss from D(x), D(G(z))), G's loss from D(G(z)), D's output as a probability (for stats)
DCGAN_LOSSES = {
    "bce": (lambda real, fake: _bce(real, 1.0) + _bce(fake, 0.0), lambda fake: _bce(fake, 1.0), lambda d: d),
    "hinge": (lambda real, fake: F.relu(1 - real.float()).mean() + F.relu(1 + fake.float()).mean(),
              lambda fake: -fake.float().mean(), torch.sigmoid),
}


def d_step(netG, netD, optD, real, noise, y=None, aug=None, loss: str = "bce", diffaug: str = ""):
    """The discriminator's update of a DCGAN step alone; returns its loss, D(x), D(G(z)) and the fakes
    (still attached to G's graph, for the generator's update that ``dcgan_step`` makes next)."""
    cond = {} if y is None else {"y": y}   # a conditional D and G see the labels
    optD.zero_grad(set_to_none=True)
    d_real = disc(netD, real, aug, 0, diffaug, cond)
    fake = netG(noise, **cond)
    d_fake = disc(netD, fake.detach(), aug, 1, diffaug, cond)
    loss_D = DCGAN_LOSSES[loss][0](d_real, d_fake)   # bce: maximise log D(x) + log(1 - D(G(z)))
    loss_D.backward()
    optD.step()
    return loss_D, d_real, d_fake, fake


def disc(netD, x, aug, i: int, diffaug: str, cond: dict):
    """D's output on ``x``, augmented (DiffAugment) with the draws ``aug[i]`` where ``diffaug`` is set."""
    return netD(diff_augment(x, aug[i], diffaug) if diffaug else x, **cond)


def dcgan_step(netG, netD, optG, optD, real, noise, y=None, aug=None, loss: str = "bce",
               diffaug: str = "") -> torch.Tensor:
    """One DCGAN step as in the PyTorch tutorial; returns the DCGAN_STATS as one tensor (no host sync).
    ``loss="hinge"``: D minimises relu(1 - D(x)) + relu(1 + D(G(z))) on logits, G maximises D(G(z));
    the D(.) statistics are then the sigmoid of the logits. ``y``: the labels of a conditional DCGAN.
    ``diffaug``: every image D sees is augmented (DiffAugment) with the draws ``aug`` (3, n, 7)."""
    _, loss_g, prob = DCGAN_LOSSES[loss]
    loss_D, d_real, d_fake, fake = d_step(netG, netD, optD, real, noise, y, aug, loss, diffaug)
    # generator: maximise log D(G(z)) (bce)
    optG.zero_grad(set_to_none=True)
    d_fake2 = disc(netD, fake, aug, 2, diffaug, {} if y is None else {"y": y})
    loss_G = loss_g(d_fake2)
    loss_G.backward()
    optG.step()
    return torch.stack([loss_D.detach(), loss_G.detach(),
                        *(prob(d.detach().float()).mean() for d in (d_real, d_fake, d_fake2))])


def snapshot_steps(run: Path) -> list[int]:
    return sorted(int(p.stem.split("step")[1]) for p in (Path(run) / "snapshots").glob("G_step*.pt"))


def load_generator(run: Path, step: int | None = None, device="cpu") -> Generator:
    """The final generator of a DCGAN run, or its snapshot at ``step``."""
    cfg = run_config(run)
    path = Path(run) / ("G.pt" if step is None else f"snapshots/G_step{step:06d}.pt")
    if not path.is_file():
        have = snapshot_steps(run)
        raise FileNotFoundError(f"{path} does not exist; this run has snapshots at steps {have}")
    netG = build_dcgan(cfg)[0]
    netG.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return netG.to(device).eval()


@torch.no_grad()
def fixed_samples(run: Path, n: int = 16) -> dict[int, torch.Tensor]:
    """{step: uint8 samples} of every snapshot on the run's first ``n`` fixed noise vectors (Figure 5),
    kept in ``fixed_samples.pt``: a published run then needs only the few snapshots its other figures use."""
    path = Path(run) / "fixed_samples.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    noise = torch.load(Path(run) / "fixed_noise.pt", weights_only=True)[:n]
    out = {s: to_uint8(load_generator(run, s)(noise)) for s in snapshot_steps(run)}
    torch.save(out, path)
    return out


