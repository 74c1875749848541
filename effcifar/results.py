"""Results folders: config, history CSV, metrics JSON, checkpoints and provenance."""
from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from .config import to_dict

PACKAGES = ("torch", "torchvision", "pytorch-fid", "numpy", "scipy", "jupyter-book", "papermill")


def resolve_device(name: str = "auto") -> torch.device:
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda":   # full fp32 and deterministic kernels: a GPU run tracks the CPU's arithmetic
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    # a copy of the tree without .git (a remote GPU machine): the commit its caller says it was copied from
    return os.environ.get("EFFCIFAR_GIT_COMMIT", "unknown")


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def provenance(cfg, device: torch.device, wall_seconds: float, **extra) -> dict:
    return {"git_commit": git_commit(), "versions": versions(), "device": device_name(device),
            "platform": platform.platform(), "seed": cfg.seed, "profile": cfg.profile,
            "wall_seconds": round(wall_seconds, 2), **extra}


def write_json(path, obj) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_json(path):
    return json.loads(Path(path).read_text())


def write_csv(path, rows: list[dict]) -> None:
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    os.replace(tmp, path)


def save_checkpoint(path, state: dict) -> None:
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)   # never a half-written checkpoint


def run_dir(cfg) -> Path:
    return Path(cfg.out) / cfg.run_name


# fields that may differ between a cached or resumed run and the request without changing its numbers
_NEUTRAL = {"out", "data", "download", "device", "cuda_graph"}


def comparable(cfg_dict: dict, ignore=()) -> dict:
    return {k: v for k, v in cfg_dict.items() if k not in _NEUTRAL and k not in ignore}


def cached(cfg) -> Path | None:
    """The run folder if it holds a finished run of exactly this config (same numbers), else None."""
    d = run_dir(cfg)
    if (d / "metrics.json").is_file() and (d / "config.json").is_file():
        if comparable(read_json(d / "config.json")) == comparable(to_dict(cfg)):
            return d
    return None
