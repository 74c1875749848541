"""Step-based training loops: ``train_classifier(cfg)`` and ``train_dcgan(cfg)``.

Each writes ``cfg.out/<run_name>/``: config.json, history.csv, metrics.json, provenance.json,
checkpoint.pt (every ``ckpt_every`` steps and at the end), model weights, and for the DCGAN generator
snapshots every ``snapshot_every`` steps. ``resume=True`` continues from checkpoint.pt and ends with the
same weights as an uninterrupted run (bitwise on CPU): each batch, crop, flip and noise vector is a pure
function of (seed, step), and checkpoints fall on evaluation boundaries. A finished run of the same
config is reused unless ``force=True``.
"""
from __future__ import annotations

import copy
import math
import shutil
import sys
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import data as D
from .config import to_dict
from .models import Classifier, Generator, build_classifier, build_dcgan, count_params, dcgan_init
from .results import (cached, comparable, cpu_signature, experiment_of, provenance, read_csv, read_json,
                      resolve_device, run_config, run_dir, run_lock, save_checkpoint, write_csv, write_json)

EVAL_BATCH = 128   # test accuracy's +- is the std over batches of 128, as in the paper


class ResumeError(RuntimeError):
    pass


def _run(cfg, resume: bool, force: bool, reuse_only: bool, loop) -> Path:
    """Reuse a finished run of ``cfg``, or hold its folder's lock (results.run_lock) while
    ``loop(cfg, folder, checkpoint state or None)`` trains into it."""
    if reuse_only or (not force and cached(cfg)):   # finished: nothing to resume either
        _start(cfg, False, force, reuse_only)   # says so, or raises for a missing published run
        return run_dir(cfg)
    with run_lock(run_dir(cfg)):
        d, state = _start(cfg, resume, force)
        return loop(cfg, d, state) if d is not None else run_dir(cfg)


def _start(cfg, resume: bool, force: bool, reuse_only: bool = False):
    """Return (run folder, checkpoint state or None); None folder means a cached finished run.
    ``reuse_only``: a finished run of this config must exist (a published build never trains)."""
    d = run_dir(cfg)
    if reuse_only:
        if not cached(cfg):
            raise ResumeError(f"{d} holds no finished run of this config ({cfg.profile} profile, seed {cfg.seed}); "
                              f"train it (python -m effcifar train-{cfg.run_name.split('-')[0]} --profile "
                              f"{cfg.profile}), or build without reuse-only (reproduce without --no-train)")
        return None, None
    if resume:
        ckpt = d / "checkpoint.pt"
        if not ckpt.is_file():
            print(f"[effcifar] no checkpoint in {d}; starting from step 0", file=sys.stderr)
            return _fresh(d, cfg), None
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        free = {"steps"} if getattr(cfg, "lr_schedule", "constant") == "constant" else set()   # a schedule spans the run
        old, new = comparable(state["config"], ignore=free), comparable(to_dict(cfg), ignore=free)
        if old != new:
            diff = {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}
            raise ResumeError(f"cannot resume {d}: its config differs in {diff} (saved, requested); "
                              f"{'only steps may change' if free else 'with a learning-rate schedule, not even steps'}. "
                              f"Use another --out, or drop --resume to start over.")
        if state["step"] > cfg.steps:
            raise ResumeError(f"{d} is already at step {state['step']} > requested steps {cfg.steps}")
        write_json(d / "config.json", to_dict(cfg))
        return d, state
    if not force and cached(cfg):
        print(f"[effcifar] reusing finished run {d} (same config); force=True retrains", file=sys.stderr)
        return None, None
    return _fresh(d, cfg), None


def _fresh(d: Path, cfg) -> Path:
    for name in ("checkpoint.pt", "metrics.json", "history.csv", "snapshots"):
        p = d / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", to_dict(cfg))
    return d


def _bar(cfg, start: int, progress: bool, desc: str):
    return tqdm(total=cfg.steps, initial=start, desc=desc, disable=not progress, mininterval=5,
                dynamic_ncols=True, file=sys.stderr)


def _capturable(device) -> bool:
    """Adam keeps its state on the GPU on CUDA, so that the step can be graphed, and graphed and eager
    steps do the same arithmetic."""
    return device.type == "cuda"


def adam(params, cfg, device, betas=(0.9, 0.999), lr: float | None = None):
    """Adam with the config's learning rate (or ``lr``), ``capturable`` on CUDA; a schedule on CUDA keeps
    the learning rate in a tensor, which a graphed step reads at each replay. A weight decay is
    decoupled (AdamW)."""
    lr = cfg.lr if lr is None else lr
    if getattr(cfg, "lr_schedule", "constant") != "constant" and _capturable(device):
        lr = torch.tensor(lr, device=device)
    wd = getattr(cfg, "weight_decay", 0.0)
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd, decoupled_weight_decay=wd > 0,
                            capturable=_capturable(device))


class EMA:
    """An exponential moving average of a network's weights and batch-norm statistics, in a copy of it
    (``.model``). ``update(step)`` after each optimizer step; the decay is min(decay, (1 + step) / (10 +
    step)), so early averages do not drag the initial weights along. A function of the steps alone, so a
    resumed run keeps it bitwise (its state is checkpointed)."""

    def __init__(self, net: torch.nn.Module, decay: float):
        self.decay, self.model = decay, copy.deepcopy(net).requires_grad_(False)
        live, ema = net.state_dict(), self.model.state_dict()
        floats = [k for k, v in live.items() if v.is_floating_point()]
        self._live, self._ema = [live[k] for k in floats], [ema[k] for k in floats]

    @torch.no_grad()
    def update(self, step: int) -> None:
        torch._foreach_lerp_(self._ema, self._live, 1 - min(self.decay, (1 + step) / (10 + step)))


def compiled(cfg, net):
    """``net`` through torch.compile when ``cfg.compile`` (it shares the parameters; save ``net``'s)."""
    if not cfg.compile:
        return net
    # what the process compiled before (another run's networks) must not change this run's kernels: without
    # the reset, dynamo recompiles with dynamic shapes, whose kernels round otherwise (4e-3 in 30 steps)
    torch._dynamo.reset()
    return torch.compile(net)


def autocast(cfg, device):
    """bfloat16 autocast of the networks when ``cfg.precision == "bf16"``; losses stay fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16",
                          cache_enabled=False)


def lr_at(cfg, step: int, lr: float | None = None) -> float:
    """The learning rate of ``step`` (a pure function of the step, so resuming needs no scheduler state)
    for the peak rate ``lr`` (default cfg.lr). constant: lr. cosine: from lr down to 0. linear: from lr
    straight down to 0. onecycle (as torch's OneCycleLR with its defaults): cosine up from lr / 25 to lr
    over the first 30 % of the steps, then down to lr / 1e5."""
    lr, t = cfg.lr if lr is None else lr, step / cfg.steps
    if cfg.lr_schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.lr_schedule == "linear":
        return lr * (1 - t)
    if cfg.lr_schedule == "onecycle":
        start, end, peak = lr / 25, lr / 25 / 1e4, 0.3

        def anneal(a, b, x):
            return b + (a - b) * 0.5 * (1 + math.cos(math.pi * x))
        return anneal(start, lr, t / peak) if t < peak else anneal(lr, end, (t - peak) / (1 - peak))
    return lr


def set_lr(opt, lr: float) -> None:
    for group in opt.param_groups:
        if isinstance(group["lr"], torch.Tensor):   # a graphed step reads it from the tensor
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def uses_graph(cfg, device) -> bool:
    return cfg.cuda_graph and device.type == "cuda"


def _load_optimizer(opt, state: dict, device) -> None:
    opt.load_state_dict(state)
    for group in opt.param_groups:   # a checkpoint may come from another device
        group["capturable"] = _capturable(device)


class GraphedStep:
    """A whole training step (forward, backward, optimizer) captured once as a CUDA graph, then replayed.

    A step of these small networks launches a few hundred tiny kernels; on a GPU, Python and launch
    overhead dominate, and one graph replay removes both. The first ``warmup`` calls run eagerly on a
    side stream (they are real steps; libraries must be warm before capture). The next call captures
    ``fn`` on copies of its inputs and replays it; later calls copy their inputs into those buffers and
    replay. Outputs are cloned because each replay overwrites them. Off CUDA, or with ``enabled=False``,
    it simply calls ``fn``. Optimizers must be ``capturable`` (see ``adam``).
    """

    def __init__(self, fn, enabled: bool, warmup: int = 3):
        self.fn, self.enabled, self.warmup = fn, enabled, warmup
        self.calls, self.graph, self.inputs, self.outputs = 0, None, None, None

    def __call__(self, *inputs):
        if not self.enabled:
            return self.fn(*inputs)
        if self.graph is None and self.calls < self.warmup:
            self.calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.fn(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:
            self.inputs = [None if x is None else x.clone() for x in inputs]   # None: an input not used
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.outputs = self.fn(*self.inputs)
        else:
            for buf, x in zip(self.inputs, inputs):
                if buf is not None:
                    buf.copy_(x)
        self.graph.replay()
        if isinstance(self.outputs, torch.Tensor):
            return self.outputs.clone()
        return tuple(o.clone() for o in self.outputs)


# ---------------------------------------------------------------------------------------------------
# classifier

@torch.no_grad()
def evaluate(model, split: D.Split, n: int = 0, chunk: int = 0, flip: bool = False) -> dict:
    """Loss and accuracy on the first ``n`` images of ``split`` (all when 0); accuracy's std is over
    full batches of 128. Forward passes take ``chunk`` images at a time; by default 1,024 on a GPU (fewer
    launches) and 256 on a CPU (1.21x faster than 1,024 there, with the same numbers:
    benchmarks/eval_cost.py). ``flip``: the logits are the mean over each image and its mirror image
    (test-time augmentation)."""
    was_training = model.training
    model.eval()
    images, labels = (split.images[:n], split.labels[:n]) if n else (split.images, split.labels)
    chunk = chunk or (2 if images.device.type == "cpu" else 8) * EVAL_BATCH
    losses, hits = [], []
    for i in range(0, len(labels), chunk):
        x = D.normalize(images[i:i + chunk])
        logits = (model(x) + model(x.flip(3))) / 2 if flip else model(x)
        y = labels[i:i + chunk]
        losses.append(F.cross_entropy(logits, y, reduction="sum"))
        hits.append((logits.argmax(1) == y).float())
    model.train(was_training)
    hits, total = torch.cat(hits), len(labels)
    full = total // EVAL_BATCH
    acc_std = hits[:full * EVAL_BATCH].view(full, EVAL_BATCH).mean(1).std().item() if full > 1 else float("nan")
    return {"loss": torch.stack(losses).sum().item() / total, "acc": hits.mean().item(),
            "acc_std": acc_std, "n": total}


def classifier_batch(train: D.Split, sampler: D.BatchSampler, cfg, step: int, device):
    """The augmented, normalised training batch of ``step`` (random crop with zero pad, flip)."""
    g = D.step_generator(cfg.seed, step)
    idx = D.to_device(sampler.indices(step), device)
    x = D.random_crop(train.images[idx], cfg.crop_pad, g)
    if cfg.hflip:
        x = D.random_hflip(x, g)
    return D.normalize(x), train.labels[idx]


def classifier_setup(cfg, device):
    """The classifier of ``cfg`` and its Adam optimizer. Memory format by device, as measured:
    channels_last is ~20% faster on a CPU; on an H100 the graphed step runs 115 steps/s in the default
    format against 75 in channels_last (benchmarks/variants.py). Same maths either way."""
    fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    model = build_classifier(to_dict(cfg)).to(device, memory_format=fmt)
    return model, adam(model.parameters(), cfg, device)


def classifier_step(model, opt, x, y, label_smoothing: float = 0.0):
    """One Adam step on cross-entropy; returns (loss, batch accuracy) as tensors (no host sync)."""
    logits = model(x)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), (logits.argmax(1) == y).float().mean()


def train_classifier(cfg, resume: bool = False, force: bool = False, progress: bool = True,
                     reuse_only: bool = False, until: int = 0) -> Path:
    """Train (or reuse, or with ``resume`` continue) the classifier run of ``cfg``; returns its folder.
    ``until`` > 0: stop after that step of the run, leaving its history and checkpoints but no metrics
    (the run is unfinished; a learning-rate schedule still spans ``cfg.steps``)."""
    return _run(cfg, resume, force, reuse_only, partial(_classifier_loop, progress=progress, until=until))


def _stopped(d: Path, history: list, step: int, cfg) -> bool:
    """True for a run stopped before its end (``until``): its history is written, nothing else."""
    if step < cfg.steps:
        write_csv(d / "history.csv", history)
        return True
    return False


def _classifier_loop(cfg, d: Path, state: dict | None, progress: bool, until: int = 0) -> Path:
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train, test = D.load_cifar100(cfg.data, verify=cfg.verify, download=cfg.download, subset=cfg.subset)
    train, test = train.to(device), test.to(device)
    model, opt = classifier_setup(cfg, device)
    ema = EMA(model, cfg.ema) if cfg.ema else None
    step, history, wall_before = 0, [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        _load_optimizer(opt, state["optimizer"], device)
        if ema:
            ema.model.load_state_dict(state["ema"])
        step, history, wall_before = state["step"], state["history"], state["wall_seconds"]
    sampler = D.BatchSampler(len(train), cfg.batch_size, cfg.seed)
    net = compiled(cfg, model)
    judged = ema.model if ema else net   # the network that is evaluated and saved
    update = GraphedStep(partial(classifier_step, net, opt, label_smoothing=cfg.label_smoothing),
                         uses_graph(cfg, device))
    t0 = time.perf_counter()
    win_loss, win_acc = [], []
    model.train()
    with _bar(cfg, step, progress, "classifier") as bar:
        while step < (min(until, cfg.steps) if until else cfg.steps):
            if cfg.lr_schedule != "constant":
                set_lr(opt, lr_at(cfg, step))
            with autocast(cfg, device):
                loss, acc = update(*classifier_batch(train, sampler, cfg, step, device))
            if ema:
                ema.update(step)
            win_loss.append(loss)
            win_acc.append(acc)
            step += 1
            bar.update(1)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                ev = evaluate(judged, test, cfg.eval_test_images, flip=cfg.tta_flip)   # in fp32
                acc = torch.stack(win_acc)
                history.append({"step": step, "train_loss": torch.stack(win_loss).mean().item(),
                                "train_acc": acc.mean().item(),
                                "train_acc_std": acc.std().item() if len(acc) > 1 else float("nan"),
                                "test_loss": ev["loss"], "test_acc": ev["acc"], "test_acc_std": ev["acc_std"],
                                "test_images": ev["n"],
                                "wall_seconds": round(wall_before + time.perf_counter() - t0, 2)})
                win_loss, win_acc = [], []
                bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", test_acc=f"{ev['acc']:.3f}")
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    save_checkpoint(d / "checkpoint.pt", {
                        "step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        **({"ema": ema.model.state_dict()} if ema else {}), "history": history, "config": to_dict(cfg),
                        "wall_seconds": wall_before + time.perf_counter() - t0})
                    write_csv(d / "history.csv", history)
    if _stopped(d, history, step, cfg):
        return d
    wall = wall_before + time.perf_counter() - t0
    final = evaluate(judged, test, flip=cfg.tta_flip)
    last = history[-1]
    metrics = {"params": count_params(model), "steps": cfg.steps,
               "train_acc": last["train_acc"], "train_acc_std": last["train_acc_std"],
               "final_train_loss": last["train_loss"],
               "test_acc": final["acc"], "test_acc_std": final["acc_std"], "test_loss": final["loss"],
               "test_images": final["n"], "train_images": len(train),
               "dataset": "CIFAR-100" if cfg.verify else "CIFAR-100 format, not verified (--no-verify)",
               "seconds_per_step": wall / cfg.steps if not wall_before else None}
    torch.save((ema.model if ema else model).state_dict(), d / "model.pt")   # the evaluated weights
    write_json(d / "classes.json", train.classes)
    write_csv(d / "history.csv", history)
    write_json(d / "provenance.json", provenance(cfg, device, wall, resumed=state is not None))
    write_json(d / "metrics.json", metrics)
    return d


def load_classifier(run: Path, device="cpu") -> Classifier:
    model = build_classifier(run_config(run))
    model.load_state_dict(torch.load(Path(run) / "model.pt", map_location=device, weights_only=True))
    return model.to(device).eval()


def evaluate_run(run: Path, data: str | None = None, flip: bool = False, device: str = "auto",
                 save: bool = False) -> dict:
    """A finished classifier run's saved model (model.pt, the weights it evaluated) on its test set again,
    with or without the flip at test time. Evaluation draws no random numbers and leaves the weights as
    they were, so ``flip`` gives what the run's final evaluation would have given with ``tta_flip``.
    ``save``: also write the result, with the md5 of the weights and provenance, to the run's
    ``evaluation_file`` (read back by ``saved_evaluation``)."""
    run = Path(run)
    if not (run / "model.pt").is_file() or not (run / "config.json").is_file():
        raise FileNotFoundError(f"no model.pt and config.json in {run}: give the folder of a finished classifier run")
    cfg, device, start = run_config(run), resolve_device(device), time.time()
    _, test = D.load_cifar100(data or cfg["data"], verify=cfg["verify"], download=False, subset=cfg["subset"])
    out = {"run": str(run), "flip": flip, **evaluate(load_classifier(run, device), test.to(device), flip=flip)}
    if save:
        write_json(evaluation_file(run, flip), {
            **out, "model_md5": D.md5sum(run / "model.pt"),
            "provenance": provenance(SimpleNamespace(**cfg), device, time.time() - start)})
    return out


def evaluation_file(run: Path, flip: bool) -> Path:
    return Path(run) / ("evaluation-flip.json" if flip else "evaluation.json")


def saved_evaluation(run: Path, flip: bool) -> dict | None:
    """What ``evaluate_run(run, flip=flip, save=True)`` wrote, or None where it has not been run, or was
    run on other weights than the run's model.pt now holds (a run trained again since)."""
    f = evaluation_file(run, flip)
    if not f.is_file():
        return None
    saved = read_json(f)
    return saved if saved["model_md5"] == D.md5sum(Path(run) / "model.pt") else None


# ---------------------------------------------------------------------------------------------------
# DCGAN

def fixed_noise(cfg) -> torch.Tensor:
    """The noise behind every sample grid (Figures 4 and 5): a function of the seed alone."""
    g = torch.Generator().manual_seed(cfg.seed + 12345)
    return torch.randn(cfg.n_fixed_noise, cfg.nz, generator=g)


def train_dcgan(cfg, resume: bool = False, force: bool = False, progress: bool = True,
                reuse_only: bool = False, until: int = 0) -> Path:
    """Train (or reuse, or with ``resume`` continue) the dcgan run of ``cfg``; returns its folder.
    ``until``: as for train_classifier."""
    return _run(cfg, resume, force, reuse_only, partial(_dcgan_loop, progress=progress, until=until))


def _dcgan_loop(cfg, d: Path, state: dict | None, progress: bool, until: int = 0) -> Path:
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train, _ = D.load_cifar100(cfg.data, verify=cfg.verify, download=cfg.download, subset=cfg.subset)
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
        _load_optimizer(optG, state["optG"], device)
        _load_optimizer(optD, state["optD"], device)
        return (state["step"], state["history"], state["wall_seconds"], state.get("collapses", []),
                state.get("armed_at"))

    armed = None   # the collapse guard: the checkpoint step from which it reads the diversity sign (collapsed)
    if state is not None:
        step, history, wall_before, collapses, armed = load(state)
    (d / "snapshots").mkdir(exist_ok=True)
    noise = fixed_noise(cfg)
    torch.save(noise, d / "fixed_noise.pt")
    sampler = D.BatchSampler(len(train), cfg.batch_size, cfg.seed)
    nets = compiled(cfg, netG), compiled(cfg, netD)

    def graphed():   # again after a restore: a captured graph holds the old optimizer state tensors
        step_fn = partial(dcgan_step, *nets, optG, optD, loss=cfg.loss, diffaug=cfg.diffaug)
        return GraphedStep(step_fn, uses_graph(cfg, device))

    update = graphed()
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
    with _bar(cfg, step, progress, "dcgan") as bar:
        while step < (min(until, cfg.steps) if until else cfg.steps):
            if cfg.lr_schedule != "constant":
                set_lr(optG, lr_at(cfg, step))
                set_lr(optD, lr_at(cfg, step, cfg.lr_D or cfg.lr))
            with autocast(cfg, device):
                stats = update(*dcgan_batch(train, sampler, cfg, step, device, stream=len(collapses)))
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
                                           f"{len(collapses)} restarts; the last good checkpoint is {d / 'checkpoint.pt'}")
                    good = torch.load(d / "checkpoint.pt", map_location="cpu", weights_only=False)
                    print(f"[effcifar] collapse at step {step} ({why}): back to step {good['step']} with "
                          f"other random draws", file=sys.stderr)
                    record = collapses + [{"step": step, "why": why, "restored_step": good["step"]}]
                    step, history, _, _, armed = load(good)
                    collapses, update = record, graphed()
                    bar.reset(total=cfg.steps)
                    bar.update(step)
                    continue
                history.append(row)
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    if cfg.collapse_guard and armed is None:
                        armed = armed_at({step: div}, cfg.collapse_diversity)
                    checkpoint()
                    write_csv(d / "history.csv", history)
    if _stopped(d, history, step, cfg):
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


def spread(images: torch.Tensor) -> float:
    """Per-pixel std across a batch of images in [-1, 1]: near 0 when every image is the same."""
    return images.float().std(0).mean().item()


@torch.no_grad()
def diversity(netG, noise: torch.Tensor) -> float:
    """``spread`` of the generator's samples of ``noise``. A copy in training mode (batch statistics, as in
    training; early in a run the running statistics are still far off) leaves the generator itself untouched."""
    return spread(copy.deepcopy(netG).train()(noise.to(next(netG.parameters()).device)))


def d_wins(row: dict, eps: float) -> bool:
    """The discriminator wins outright: a log window's mean D(x) above 1 - eps and mean D(G(z)) below eps."""
    return float(row["D_x"]) > 1 - eps and float(row["D_G_z1"]) < eps


def collapsed(cfg, row: dict, div: float, armed: bool = True) -> str:
    """Why the DCGAN looks collapsed at a log step ('' if not): the discriminator wins outright (``d_wins``
    with ``cfg.collapse_eps``), or, once ``armed``, the samples of the fixed noise are all alike (their
    ``diversity`` ``div`` below ``cfg.collapse_diversity``). The guard arms the diversity sign at the first
    checkpoint whose samples were diverse (``armed_at``): a collapse is diversity lost, and before such a
    checkpoint there is none to go back to. A recipe whose samples start out alike (``stable``'s first
    ~2,000 steps) is then not restarted over and over from step 0 for its own early phase."""
    if d_wins(row, cfg.collapse_eps):
        return f"D(x) {row['D_x']:.3f}, D(G(z)) {row['D_G_z1']:.3f}"
    return f"sample diversity {div:.4f}" if armed and div < cfg.collapse_diversity else ""


def armed_at(diversities: dict[int, float], threshold: float) -> int | None:
    """The first of the checkpoint steps {step: sample diversity} whose samples were diverse (at least
    ``threshold``, the config's ``collapse_diversity``): from there on the guard reads the diversity sign
    (``collapsed``)."""
    return min((s for s, v in diversities.items() if v >= threshold), default=None)


def collapse_audit(run: Path) -> dict:
    """The collapse guard's two signs read off a finished DCGAN run after the fact, with the thresholds in
    its config (the guard's defaults where it ran without one): ``d_wins``, the log steps whose window
    means say the discriminator won outright (of ``log_steps`` in ``history.csv``; ``max_D_x`` and
    ``min_D_G_z`` the extremes of those means); ``diversity``, {step: ``spread``} of every snapshot's
    fixed-noise samples (``fixed_samples``: the saved generator, an EMA where the run has one, in eval mode,
    16 samples; the guard itself reads the live generator in training mode) and ``low_diversity``, the
    snapshots below the threshold; ``armed_at``, the first snapshot at or above it, and ``restarts``, the
    low ones after it: the snapshots at which the guard, which reads the diversity sign only from its first
    diverse checkpoint on (``collapsed``), would have gone back. A run the guard would have stopped shows
    in ``d_wins`` or ``restarts``."""
    cfg, history = run_config(run), read_csv(Path(run) / "history.csv")
    div = {s: spread(D.to_unit_range(x)) for s, x in sorted(fixed_samples(run).items())}
    low, armed = [s for s, v in div.items() if v < cfg["collapse_diversity"]], armed_at(div, cfg["collapse_diversity"])
    return {"log_steps": len(history), "eps": cfg["collapse_eps"], "min_diversity": cfg["collapse_diversity"],
            "d_wins": [int(r["step"]) for r in history if d_wins(r, cfg["collapse_eps"])],
            "max_D_x": max(float(r["D_x"]) for r in history), "min_D_G_z": min(float(r["D_G_z1"]) for r in history),
            "diversity": div, "low_diversity": low, "armed_at": armed,
            "restarts": [s for s in low if armed is not None and s > armed]}


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


def dcgan_batch(train: D.Split, sampler: D.BatchSampler, cfg, step: int, device, stream: int = 0):
    """Real images in [-1, 1] and the generator's noise for ``step`` (``stream``: D.step_generator); for a
    conditional DCGAN also the real images' labels, which the generated images of the step take too
    (else None); with DiffAugment its draws (else None). ``cfg.hflip`` mirrors half of the real images."""
    g = D.step_generator(cfg.seed, step, stream)
    idx = D.to_device(sampler.indices(step), device)
    real = D.to_unit_range(train.images[idx])
    noise = D.to_device(torch.randn(real.shape[0], cfg.nz, generator=g), device)
    y = train.labels[idx] if cfg.conditional else None
    aug = D.to_device(D.diffaug_draws(real.shape[0], g), device) if cfg.diffaug else None
    if cfg.hflip:   # drawn last: the draws above stay those of a run without it
        real = D.random_hflip(real, g)
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


def dcgan_step(netG, netD, optG, optD, real, noise, y=None, aug=None, loss: str = "bce",
               diffaug: str = "") -> torch.Tensor:
    """One DCGAN step as in the PyTorch tutorial; returns the DCGAN_STATS as one tensor (no host sync).
    ``loss="hinge"``: D minimises relu(1 - D(x)) + relu(1 + D(G(z))) on logits, G maximises D(G(z));
    the D(.) statistics are then the sigmoid of the logits. ``y``: the labels of a conditional DCGAN.
    ``diffaug``: every image D sees is augmented (DiffAugment) with the draws ``aug`` (3, n, 7)."""
    loss_d, loss_g, prob = DCGAN_LOSSES[loss]
    cond = {} if y is None else {"y": y}   # a conditional D and G see the labels

    def disc(x, i):
        return netD(D.diff_augment(x, aug[i], diffaug) if diffaug else x, **cond)

    # discriminator: maximise log D(x) + log(1 - D(G(z))) (bce)
    optD.zero_grad(set_to_none=True)
    d_real = disc(real, 0)
    fake = netG(noise, **cond)
    d_fake = disc(fake.detach(), 1)
    loss_D = loss_d(d_real, d_fake)
    loss_D.backward()
    optD.step()
    # generator: maximise log D(G(z)) (bce)
    optG.zero_grad(set_to_none=True)
    d_fake2 = disc(fake, 2)
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
    out = {s: D.to_uint8(load_generator(run, s)(noise)) for s in snapshot_steps(run)}
    torch.save(out, path)
    return out


# ---------------------------------------------------------------------------------------------------
# published runs stay tied to the code: replay a prefix and compare

CPU_PREFIX = "cpu_prefix.csv"   # a GPU-made run's first steps replayed on the CPU (record_cpu_prefix)
PREFIX = {"classifier": 250, "dcgan": 500}   # the full check: one classifier evaluation, one DCGAN log window
FINGERPRINT = "fingerprint.csv"   # a short replay with finer rows, kept once the full check passes
FIRST_KIND = "x86_64-t2-bb01efa8"   # the CPU (AMD EPYC, avx512_bf16) that recorded the first runs' fingerprints
SHORT = {"classifier": (30, dict(eval_every=10, ckpt_every=30, eval_test_images=1000)),   # (steps, overrides)
         "dcgan": (50, dict(log_every=10, ckpt_every=50))}   # rows and checkpoints only: the same numbers


def _replay(run: Path, steps: int, out: Path, data: str | None = None, **overrides) -> Path:
    """The history of the finished run in ``run``, re-run from its ``config.json`` on the CPU for its first
    ``steps`` (into ``out``; ``data`` overrides where the data are; ``overrides``, other config fields). The
    run keeps its length, so a learning-rate schedule is the run's, and stops after ``steps``."""
    from .config import make_config
    saved = read_json(Path(run) / "config.json")
    experiment = experiment_of(run)
    fields = {k: v for k, v in saved.items() if k != "profile"}
    fields.update(out=str(out), device="cpu", **({"data": data} if data else {}), **overrides)
    cfg = make_config(experiment, saved["profile"], **fields)
    train = {"classifier": train_classifier, "dcgan": train_dcgan}[experiment]
    return train(cfg, force=True, progress=False, until=steps) / "history.csv"


def _compare(ours: Path, theirs: Path, steps: int) -> dict:
    """{column: largest absolute difference} of two histories' rows up to ``steps``, ``worst`` (the largest
    of them), ``rows`` (how many) and ``history`` (``ours``)."""
    a, b = ([r for r in read_csv(path) if int(r["step"]) <= steps] for path in (ours, theirs))
    if not b or int(b[-1]["step"]) != steps or [r["step"] for r in a] != [r["step"] for r in b]:
        raise ValueError(f"{theirs} has no rows up to step {steps} matching the replay's "
                         f"{[r['step'] for r in a]}: choose a prefix that ends on a logged step")
    diffs = {k: max(abs(float(x[k]) - float(y[k])) for x, y in zip(a, b))
             for k in b[0] if k not in ("step", "wall_seconds", "test_images")}
    return {**diffs, "worst": max(diffs.values()), "rows": len(b), "history": ours}


def replay_prefix(run: Path, steps: int, out: Path, data: str | None = None, reference: str | None = None) -> dict:
    """Re-run the first ``steps`` steps of the finished run in ``run`` on the CPU (``_replay``) and compare
    the history rows up to ``steps`` with ``reference`` in the run (default: its ``cpu_prefix.csv`` if it
    has one, else its history). Returns {column: largest absolute difference}, ``worst`` (the largest),
    ``rows`` (how many were compared) and ``history`` (the replay's). A code change that alters the
    numbers shows here, until the runs are published again."""
    reference = reference or (CPU_PREFIX if (Path(run) / CPU_PREFIX).is_file() else "history.csv")
    return _compare(_replay(run, steps, out, data), Path(run) / reference, steps)


def _own_fingerprint(run: Path) -> Path:
    """Where this kind of CPU keeps its own fingerprint of the run (``record_cpu_fingerprint``)."""
    return Path(run) / f"fingerprint-{cpu_signature()}.csv"


def fingerprint_of(run: Path) -> Path:
    """The fingerprint this CPU replays the run against: its own (``fingerprint-<cpu_signature>.csv``,
    ``record_cpu_fingerprint``) where there is one, else the one recorded when the run was published."""
    own = _own_fingerprint(run)
    return own if own.is_file() else Path(run) / FINGERPRINT


def fingerprint_kind(run: Path) -> str:
    """The kind of CPU (``cpu_signature``) that recorded the run's ``fingerprint.csv``: the one the run was
    made on (``record_fingerprint`` keeps it only after an exact replay of the run's history, which only
    that kind gives). ``FIRST_KIND`` for a run made on a GPU or published before provenance recorded the
    signature: those fingerprints all came from that kind (each replays exactly there, 2026-12-02)."""
    prov = read_json(Path(run) / "provenance.json")
    return (prov.get("cpu_signature") if prov["device"].startswith("cpu") else None) or FIRST_KIND


def kinds_spread(run: Path) -> float:
    """How far rounding alone moves the run's fingerprint: the largest difference between its
    ``fingerprint.csv`` and the fingerprints that other kinds of CPU recorded (``record_cpu_fingerprint``);
    0 where there are none."""
    steps, ref = SHORT[experiment_of(run)][0], Path(run) / FINGERPRINT
    return max((_compare(own, ref, steps)["worst"] for own in sorted(Path(run).glob("fingerprint-*.csv"))),
               default=0.0)


def _keep_short_replay(run: Path, path: Path, data: str | None = None) -> Path:
    """Replay the run's first ``SHORT`` steps (rows every few steps) and keep that history as ``path``."""
    import tempfile
    steps, overrides = SHORT[experiment_of(run)]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(_replay(run, steps, Path(tmp), data, **overrides), path)
    return path


def replay_fingerprint(run: Path, out: Path, data: str | None = None) -> dict:
    """The quick check of a published run: its first steps (``SHORT``), with rows every few steps, replayed
    and compared with ``fingerprint_of`` the run (same return as replay_prefix, and ``reference``, the
    file). A few dozen steps instead of hundreds: the code that gave the fingerprint also gave the full check."""
    steps, overrides = SHORT[experiment_of(run)]
    reference = fingerprint_of(run)
    if not reference.is_file():
        raise FileNotFoundError(f"no {FINGERPRINT} in {run}: record it with effcifar.train.record_fingerprint")
    return {**_compare(_replay(run, steps, out, data, **overrides), reference, steps), "reference": reference}


def record_fingerprint(run: Path, data: str | None = None) -> Path:
    """Replay the run's first ``PREFIX`` steps against its history (or its ``cpu_prefix.csv``, for a run made
    on a GPU: record that first) and, only if they agree to 1e-6, keep the short replay of ``SHORT`` as
    ``fingerprint.csv``, which CI then checks in seconds (``replay_fingerprint``)."""
    import tempfile
    run, experiment = Path(run), experiment_of(run)
    with tempfile.TemporaryDirectory() as tmp:
        full = replay_prefix(run, PREFIX[experiment], Path(tmp) / "full", data)
        worst = full["worst"]
        if not worst <= 1e-6:
            raise ValueError(f"{run}: this code replays its first {PREFIX[experiment]} steps up to {worst:.2e} "
                             f"off its history; publish the run again with this code, or go back to the code that made it")
    return _keep_short_replay(run, run / FINGERPRINT, data)


def record_cpu_fingerprint(run: Path, data: str | None = None) -> Path:
    """The run's fingerprint as this kind of CPU replays it (``fingerprint-<cpu_signature>.csv``), for a CPU
    whose rounding differs from the one that recorded ``fingerprint.csv``. It checks nothing itself: record
    it only with code that replays ``fingerprint.csv`` exactly on a CPU of that first kind (a commit CI
    passed there), so that the check carries over to this kind unchanged."""
    return _keep_short_replay(Path(run), _own_fingerprint(run), data)


def record_cpu_prefix(run: Path, steps: int, data: str | None = None) -> Path:
    """For a run made on a GPU: replay its first ``steps`` on the CPU and keep that history in the run as
    ``cpu_prefix.csv``, the reference that CI's replay must match to 1e-6. (A CPU replay of a GPU run has
    the same random draws but not the same rounding, which a GAN amplifies within a few hundred steps.)"""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(_replay(run, steps, Path(tmp), data), Path(run) / CPU_PREFIX)
    return Path(run) / CPU_PREFIX
