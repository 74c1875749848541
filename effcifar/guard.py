"""The DCGAN's collapse guard (``--set collapse_guard=true``): the two signs of a mode collapse, read at
every log step of a run (``collapsed``) or off a finished run after the fact (``collapse_audit``)."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from .data import to_unit_range
from .results import read_csv, run_config


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
    from .dcgan import fixed_samples  # dcgan's loop imports this module
    cfg, history = run_config(run), read_csv(Path(run) / "history.csv")
    div = {s: spread(to_unit_range(x)) for s, x in sorted(fixed_samples(run).items())}
    low, armed = [s for s, v in div.items() if v < cfg["collapse_diversity"]], armed_at(div, cfg["collapse_diversity"])
    return {"log_steps": len(history), "eps": cfg["collapse_eps"], "min_diversity": cfg["collapse_diversity"],
            "d_wins": [int(r["step"]) for r in history if d_wins(r, cfg["collapse_eps"])],
            "max_D_x": max(float(r["D_x"]) for r in history), "min_D_G_z": min(float(r["D_G_z1"]) for r in history),
            "diversity": div, "low_diversity": low, "armed_at": armed,
            "restarts": [s for s in low if armed is not None and s > armed]}


