"""The classifier's training loop (``train_classifier``), its evaluation, and a finished run's model."""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from .config import to_dict
from .data import (
    BatchSampler,
    Split,
    cutout,
    load_cifar100,
    md5sum,
    normalize,
    random_crop,
    random_hflip,
    step_generator,
    to_device,
)
from .models import Classifier, build_classifier, count_params, whitening_filters
from .results import provenance, read_json, resolve_device, run_config, save_checkpoint, write_csv, write_json
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

EVAL_BATCH = 128   # test accuracy's +- is the std over batches of 128, as in the paper


@torch.no_grad()
def evaluate(model, split: Split, n: int = 0, chunk: int = 0, flip: bool = False, shift: int = 0) -> dict:
    """Loss and accuracy on the first ``n`` images of ``split`` (all when 0); accuracy's std is over
    full batches of 128. Forward passes take ``chunk`` images at a time; by default 1,024 on a GPU (fewer
    launches) and 32 on a CPU (3.2x faster than 256 on 2 cores, with the same numbers; bigger chunks spend
    their time in the kernel, allocating memory: measured with the test set and strong's model; see also
    benchmarks/eval_cost.py). Test-time augmentation: ``flip``: the logits are the mean over each image and
    its mirror image; ``shift``: also over the image moved by +-shift pixels along the diagonal (zero fill,
    as the training crops pad): 3 views, 6 with ``flip``."""
    was_training = model.training
    model.eval()
    images, labels = (split.images[:n], split.labels[:n]) if n else (split.images, split.labels)
    chunk = chunk or (32 if images.device.type == "cpu" else 8 * EVAL_BATCH)
    losses, hits = [], []
    for i in range(0, len(labels), chunk):
        views = [normalize(translate(images[i:i + chunk], d)) for d in ((0, shift, -shift) if shift else (0,))]
        views += [x.flip(3) for x in views] if flip else []
        logits = sum(model(x) for x in views) / len(views)
        y = labels[i:i + chunk]
        losses.append(F.cross_entropy(logits, y, reduction="sum"))
        hits.append((logits.argmax(1) == y).float())
    model.train(was_training)
    hits, total = torch.cat(hits), len(labels)
    full = total // EVAL_BATCH
    acc_std = hits[:full * EVAL_BATCH].view(full, EVAL_BATCH).mean(1).std().item() if full > 1 else float("nan")
    return {"loss": torch.stack(losses).sum().item() / total, "acc": hits.mean().item(),
            "acc_std": acc_std, "n": total}


def translate(x: torch.Tensor, d: int) -> torch.Tensor:
    """Images moved ``d`` pixels right and down (left and up when negative), zero-filled."""
    if d == 0:
        return x
    h, w, p = x.shape[2], x.shape[3], abs(d)
    return F.pad(x, (p, p, p, p))[:, :, p - d:p - d + h, p - d:p - d + w]


def classifier_batch(train: Split, sampler: BatchSampler, cfg, step: int, device):
    """The augmented, normalised training batch of ``step`` (random crop with zero pad, flip)."""
    g = step_generator(cfg.seed, step)
    idx = to_device(sampler.indices(step), device)
    x = random_crop(train.images[idx], cfg.crop_pad, g)
    if cfg.hflip:
        x = random_hflip(x, g)
    if cfg.cutout:   # after the draws of the paper's augmentation, which stay as they were
        x = cutout(x, cfg.cutout, g)
    return normalize(x), train.labels[idx]


WHITEN_IMAGES = 5000   # the first training images, whose patches a whitened stem starts from


def classifier_setup(cfg, device, train: Split | None = None):
    """The classifier of ``cfg`` and its Adam optimizer. Memory format by device, as measured:
    channels_last is ~20% faster on a CPU; on an H100 the graphed step runs 115 steps/s in the default
    format against 75 in channels_last (benchmarks/variants.py). Same maths either way. With ``cfg.whiten``,
    the stem starts as a whitening of the first ``WHITEN_IMAGES`` images of ``train`` (no random draw)."""
    fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    model = build_classifier(to_dict(cfg)).to(device, memory_format=fmt)
    if cfg.whiten:
        if train is None:
            raise ValueError("a whitened stem starts from the training images: pass train")
        stem = model.stem[0]
        with torch.no_grad():
            stem.weight.copy_(whitening_filters(normalize(train.images[:WHITEN_IMAGES]), stem.out_channels))
    return model, adam(param_groups(model, cfg.bn_lr), cfg, device)


def param_groups(model, bn_lr: float = 1.0):
    """``model``'s parameters for the optimizer: all in one group, or, with ``bn_lr`` != 1, the batch-norm
    weights and biases in a second group that learns at ``bn_lr`` times the rate."""
    if bn_lr == 1:
        return model.parameters()
    bn = {id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    return [{"params": [p for p in model.parameters() if id(p) not in bn]},
            {"params": [p for p in model.parameters() if id(p) in bn], "lr_scale": bn_lr}]


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
    return run_training(cfg, resume, force, reuse_only, partial(_classifier_loop, progress=progress, until=until))



def _classifier_loop(cfg, d: Path, state: dict | None, progress: bool, until: int = 0) -> Path:
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train, test = load_cifar100(cfg.data, verify=cfg.verify, download=cfg.download, subset=cfg.subset)
    train, test = train.to(device), test.to(device)
    model, opt = classifier_setup(cfg, device, train)
    ema = EMA(model, cfg.ema) if cfg.ema else None
    step, history, wall_before = 0, [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        load_optimizer(opt, state["optimizer"], device)
        if ema:
            ema.model.load_state_dict(state["ema"])
        step, history, wall_before = state["step"], state["history"], state["wall_seconds"]
    sampler = BatchSampler(len(train), cfg.batch_size, cfg.seed)
    net = compiled(cfg, model)
    judged = ema.model if ema else net   # the network that is evaluated and saved
    update = GraphedStep(partial(classifier_step, net, opt, label_smoothing=cfg.label_smoothing),
                         uses_graph(cfg, device))
    t0 = time.perf_counter()
    win_loss, win_acc = [], []
    model.train()
    with progress_bar(cfg, step, progress, "classifier", until) as bar:
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
                ev = evaluate(judged, test, cfg.eval_test_images, flip=cfg.tta_flip, shift=cfg.tta_shift)   # in fp32
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
    if stopped(d, history, step, cfg):
        return d
    wall = wall_before + time.perf_counter() - t0
    final = evaluate(judged, test, flip=cfg.tta_flip, shift=cfg.tta_shift)
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
                 save: bool = False, shift: int = 0, split: str = "test") -> dict:
    """A finished classifier run's saved model (model.pt, the weights it evaluated) on its test set again,
    with or without the flip (and shifts) at test time. Evaluation draws no random numbers and leaves the
    weights as they were, so ``flip`` and ``shift`` give what the run's final evaluation would have given
    with ``tta_flip`` and ``tta_shift``. ``split="train"``: on the 50,000 training images instead, as they
    are (no crop, no mirror, no cutout): how well the network fits what it was trained on.
    ``save``: also write the result, with the md5 of the weights and provenance, to the run's
    ``evaluation_file`` (read back by ``saved_evaluation``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    run = Path(run)
    if not (run / "model.pt").is_file() or not (run / "config.json").is_file():
        raise FileNotFoundError(f"no model.pt and config.json in {run}: give the folder of a finished classifier run")
    cfg, device, start = run_config(run), resolve_device(device), time.time()
    images = dict(zip(SPLITS, load_cifar100(data or cfg["data"], verify=cfg["verify"], download=False,
                                            subset=cfg["subset"])))[split]
    model = load_classifier(run, device)
    out = {"run": str(run), "split": split, "flip": flip, "shift": shift,
           **evaluate(model, images.to(device), flip=flip, shift=shift)}
    if save:
        write_json(evaluation_file(run, flip, shift, split), {
            **out, "model_md5": md5sum(run / "model.pt"),
            "provenance": provenance(SimpleNamespace(**cfg), device, time.time() - start)})
    return out


SPLITS = ("train", "test")   # in load_cifar100's order


def evaluation_file(run: Path, flip: bool, shift: int = 0, split: str = "test") -> Path:
    return Path(run) / (f"evaluation{'-train' if split == 'train' else ''}{'-flip' if flip else ''}"
                        f"{f'-shift{shift}' if shift else ''}.json")


def saved_evaluation(run: Path, flip: bool, shift: int = 0, split: str = "test") -> dict | None:
    """What ``evaluate_run(run, flip=flip, shift=shift, save=True, split=split)`` wrote, or None where it has
    not been run, or was run on other weights than the run's model.pt now holds (a run trained again since)."""
    f = evaluation_file(run, flip, shift, split)
    if not f.is_file():
        return None
    saved = read_json(f)
    return saved if saved["model_md5"] == md5sum(Path(run) / "model.pt") else None


