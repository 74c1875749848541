"""What both training loops share: the run's lifecycle (reuse a finished run, resume a checkpoint, hold the
folder's lock), the optimizer and its learning-rate schedule, the weights' moving average, the speed levers
(torch.compile, bf16 autocast) and a training step captured as one CUDA graph.

Every run writes ``cfg.out/<run_name>/``: config.json, history.csv, metrics.json, provenance.json,
checkpoint.pt (every ``ckpt_every`` steps and at the end) and its weights. ``resume=True`` continues from
checkpoint.pt and ends with the same weights as an uninterrupted run (bitwise on CPU): each batch, crop, flip
and noise vector is a pure function of (seed, step), and checkpoints fall on evaluation boundaries. A
finished run of the same config is reused unless ``force=True``.
"""
from __future__ import annotations

import copy
import math
import shutil
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from .config import to_dict
from .results import cached, comparable, run_dir, run_lock, shown, write_csv, write_json


class ResumeError(RuntimeError):
    pass


def run_training(cfg, resume: bool, force: bool, reuse_only: bool, loop) -> Path:
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
            print(f"[effcifar] no checkpoint in {shown(d)}; starting from step 0", file=sys.stderr)
            return _fresh(d, cfg), None
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        # a schedule spans the run
        free = {"steps"} if getattr(cfg, "lr_schedule", "constant") == "constant" else set()
        old, new = comparable(state["config"], ignore=free), comparable(to_dict(cfg), ignore=free)
        if old != new:
            diff = {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}
            raise ResumeError(f"cannot resume {d}: its config differs in {diff} (saved, requested); "
                              f"{'only steps may change' if free else 'with a learning-rate schedule, not even steps'}"
                              ". "
                              f"Use another --out, or drop --resume to start over.")
        if state["step"] > cfg.steps:
            raise ResumeError(f"{d} is already at step {state['step']} > requested steps {cfg.steps}")
        write_json(d / "config.json", to_dict(cfg))
        return d, state
    if not force and cached(cfg):
        print(f"[effcifar] reusing finished run {shown(d)} (same config); force=True retrains", file=sys.stderr)
        return None, None
    return _fresh(d, cfg), None


def _fresh(d: Path, cfg) -> Path:
    for name in ("checkpoint.pt", "metrics.json", "history.csv", "snapshots"):
        p = d / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", to_dict(cfg))
    return d


def progress_bar(cfg, start: int, progress: bool, desc: str, until: int = 0):
    """Steps so far of the run, out of its ``steps`` (of ``until``, where it stops there)."""
    return tqdm(total=min(until, cfg.steps) if until else cfg.steps, initial=start, desc=desc,
                disable=not progress, mininterval=5, dynamic_ncols=True, file=sys.stderr)


def capturable(device) -> bool:
    """Adam keeps its state on the GPU on CUDA, so that the step can be graphed, and graphed and eager
    steps do the same arithmetic."""
    return device.type == "cuda"


def adam(params, cfg, device, betas=(0.9, 0.999), lr: float | None = None):
    """Adam with the config's learning rate (or ``lr``), ``capturable`` on CUDA; a schedule on CUDA keeps
    the learning rate in a tensor, which a graphed step reads at each replay. A weight decay is
    decoupled (AdamW). A parameter group with an ``lr_scale`` learns at that many times the rate (of the
    schedule too: ``set_lr``)."""
    lr = cfg.lr if lr is None else lr
    if getattr(cfg, "lr_schedule", "constant") != "constant" and capturable(device):
        lr = torch.tensor(lr, device=device)
    wd = getattr(cfg, "weight_decay", 0.0)
    opt = torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd, decoupled_weight_decay=wd > 0,
                           capturable=capturable(device))
    for group in opt.param_groups:
        if "lr_scale" in group:   # a new number (or tensor: the groups must not share one)
            group["lr"] = group["lr"] * group["lr_scale"]
    return opt


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
    over the first 30 % of the steps, then down to lr / 1e5. warmcos: straight up from 0 to lr over the
    first 5 % of the steps, then cosine down to 0 at the last step."""
    lr, t = cfg.lr if lr is None else lr, step / cfg.steps
    if cfg.lr_schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.lr_schedule == "linear":
        return lr * (1 - t)
    if cfg.lr_schedule == "warmcos":
        warm = 0.05 * cfg.steps   # step 0 already moves: (step + 1) / warm
        if step + 1 < warm:
            return lr * (step + 1) / warm
        return lr * 0.5 * (1 + math.cos(math.pi * (step + 1 - warm) / (cfg.steps - warm)))
    if cfg.lr_schedule == "onecycle":
        start, end, peak = lr / 25, lr / 25 / 1e4, 0.3

        def anneal(a, b, x):
            return b + (a - b) * 0.5 * (1 + math.cos(math.pi * x))
        return anneal(start, lr, t / peak) if t < peak else anneal(lr, end, (t - peak) / (1 - peak))
    return lr


def set_lr(opt, lr: float) -> None:
    """Each parameter group's rate: ``lr``, times the group's ``lr_scale`` where it has one (see ``adam``)."""
    for group in opt.param_groups:
        rate = lr * group.get("lr_scale", 1.0)
        if isinstance(group["lr"], torch.Tensor):   # a graphed step reads it from the tensor
            group["lr"].fill_(rate)
        else:
            group["lr"] = rate


def uses_graph(cfg, device) -> bool:
    return cfg.cuda_graph and device.type == "cuda"


def load_optimizer(opt, state: dict, device) -> None:
    opt.load_state_dict(state)
    for group in opt.param_groups:   # a checkpoint may come from another device
        group["capturable"] = capturable(device)


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



def stopped(d: Path, history: list, step: int, cfg) -> bool:
    """True for a run stopped before its end (``until``): its history is written, nothing else."""
    if step < cfg.steps:
        write_csv(d / "history.csv", history)
        return True
    return False

