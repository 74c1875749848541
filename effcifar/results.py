"""Results folders: config, history CSV, metrics JSON, checkpoints and provenance."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
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


# the vector extensions that decide which kernels oneDNN, MKL and ATen pick on an x86 CPU
_ISA = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
        "amx_tile", "amx_bf16", "amx_int8")


def cpu_signature() -> str:
    """The kind of CPU as float rounding sees it: architecture, threads and a hash of the vector extensions
    that pick PyTorch's kernels. Replays on two machines of one signature agree bitwise (seen here); on two
    signatures they may not (a DCGAN's first 50 steps differed by 1e-2 between two kinds of this project's
    machines), so a published run's fingerprint belongs to a signature."""
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        flags = next((set(line.split(":", 1)[1].split()) for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), set())
    isa = " ".join(f for f in _ISA if f in flags)
    return f"{platform.machine()}-t{torch.get_num_threads()}-{hashlib.md5(isa.encode()).hexdigest()[:8]}"


def git_commit() -> str:
    """HEAD (``-dirty`` with uncommitted changes), or $EFFCIFAR_GIT_COMMIT where the caller knows better:
    a copy of the tree on another machine (scripts/gpu_runs.sh), whose git metadata may be stale or absent."""
    if os.environ.get("EFFCIFAR_GIT_COMMIT"):
        return os.environ["EFFCIFAR_GIT_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


# The code this process runs is the code of the commit checked out when it loaded effcifar; commits that land
# while a run or benchmark goes on (hours on a CPU) change HEAD but not the code in memory.
CODE_COMMIT = git_commit()


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def provenance(cfg, device: torch.device, wall_seconds: float, **extra) -> dict:
    return {"git_commit": CODE_COMMIT, "versions": versions(), "device": device_name(device),
            "platform": platform.platform(), "cpu_signature": cpu_signature(), "seed": cfg.seed, "profile": cfg.profile,
            "wall_seconds": round(wall_seconds, 2), **extra}


def shown(path) -> str:
    """A path as messages and pages show it: relative to the working directory where it lies below it
    (``results/classifier-paper-seed0``), so that a built page never names the machine it was built on."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def write_json(path, obj) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_json(path):
    return json.loads(Path(path).read_text())


def read_csv(path) -> list[dict]:
    """The rows of a CSV that ``write_csv`` wrote, as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


STOPPED = 3.0   # a logged interval this many times a run's median interval is one in which it was stopped


def stopped_seconds(run) -> float:
    """Seconds of a run's recorded wall time in which it did not train, estimated from its ``history.csv``: its
    process stopped (paused while its machine ran something else, a CI run on the same 2 cores, say). Its rows
    are logged every so many steps, so each interval between them longer than ``STOPPED`` times their median
    counts as the median, the rest as stopped; the first interval runs from the start (wall time 0), so a pause
    before the first row counts too. 0 where none stands out, or the history has no wall times."""
    rows = read_csv(Path(run) / "history.csv")
    walls = [0.0] + [float(r["wall_seconds"]) for r in rows if r.get("wall_seconds")]
    gaps = [b - a for a, b in zip(walls, walls[1:])]
    if len(gaps) < 2:
        return 0.0
    median = statistics.median(gaps)
    return sum(g - median for g in gaps if g > STOPPED * median)


def training_minutes(run, wall_seconds: float) -> float:
    """A run's compute in minutes: ``wall_seconds`` (recorded with it) less the time it was stopped."""
    return (wall_seconds - stopped_seconds(run)) / 60


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


def experiment_of(run) -> str:
    """The experiment a run folder belongs to, from its name: classifier-paper-seed0 -> classifier."""
    return Path(run).name.split("-")[0]


# fields that may differ between a cached or resumed run and the request without changing its numbers
_NEUTRAL = {"out", "data", "download", "device", "cuda_graph"}


_ADDED = {"compile": False, "precision": "fp32", "variant": "", "lr_schedule": "constant", "label_smoothing": 0.0,
          "tta_flip": False, "collapse_guard": False, "collapse_eps": 0.02, "collapse_diversity": 0.05,
          "collapse_max_restarts": 5, "widths": "42x8,128x2", "downsample": "4,8", "se": 0, "dropout": 0.0,
          "ema": 0.0, "beta2": 0.999, "lr_D": 0.0, "loss": "bce", "spectral_norm": False,
          # hflip: the DCGAN's (the classifier's was always there)
          "conditional": False, "diffaug": "", "hflip": False, "sample_bn": "running", "g_widths": "",
          "cutout": 0, "tta_shift": 0, "stem": 0, "kernel": 3, "kernel_blocks": "", "zero_init": False,
          "d_widths": "", "d_steps": 1, "bn_lr": 1.0,
          "whiten": False, "until": 0}   # fields added later, at the values that older runs used


def run_config(run) -> dict:
    """A run's config.json, with the fields added since it was made at the values it used."""
    return {**_ADDED, **read_json(Path(run) / "config.json")}


def comparable(cfg_dict: dict, ignore=()) -> dict:
    """The fields of a config that decide its numbers (``_NEUTRAL`` ones do not)."""
    full = {**_ADDED, **cfg_dict}
    return {k: v for k, v in full.items() if k not in _NEUTRAL and k not in ignore}


def same_config(saved: dict, cfg, ignore=()) -> bool:
    """Whether a saved config.json and ``cfg`` decide the same numbers: equal but for ``_NEUTRAL`` fields,
    the experiment's own inference-only ones (``NEUTRAL``, e.g. the FID's) and ``ignore``."""
    ignore = (*ignore, *getattr(cfg, "NEUTRAL", ()))
    return comparable(saved, ignore) == comparable(to_dict(cfg), ignore)


def cached(cfg) -> Path | None:
    """The run folder if it holds a finished run of exactly this config (same numbers), else None."""
    d = run_dir(cfg)
    if (d / "metrics.json").is_file() and (d / "config.json").is_file():
        if same_config(read_json(d / "config.json"), cfg):
            return d
    return None


class RunLockedError(RuntimeError):
    pass


def lock_holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (Unix time), from Linux's /proc; None where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()   # after "pid (name)"
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")   # field 22, starttime, in clock ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def alive(holder: dict) -> bool:
    """Whether the lock's process still runs; a process on another host is assumed to (we cannot ask). A
    process with the lock's pid that started after the lock was written is another one (the pid reused
    after the holder was killed, as when a machine's session ends mid-run): the holder is gone."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # it exists, under another user
        return True
    started, written = _process_start(int(holder["pid"])), holder.get("written")
    return started is None or written is None or started <= written + 1   # /proc's clock ticks, time's rounding


@contextlib.contextmanager
def run_lock(d: Path):
    """Hold ``d/run.lock`` while a run writes into ``d``. A second run of the same folder stops with an
    error naming the holder (pid, host, start, command) instead of overwriting its checkpoint; a lock
    whose process is gone (killed, crashed) is taken over. The lock is written whole and then linked
    into place, so no one ever reads a half-written lock."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "run.lock"
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
          "written": time.time(), "command": " ".join(sys.argv)}
    tmp = d / f"run.lock.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(me) + "\n")
    try:
        for _ in range(3):
            try:
                os.link(tmp, path)
                break
            except FileExistsError:
                holder = lock_holder(path)
                if holder and alive(holder):
                    raise RunLockedError(
                        f"{d} is in use by process {holder['pid']} on {holder['host']} since {holder['started']} "
                        f"({holder['command']}): wait for it to finish, or give this run another --out or --seed. "
                        f"If that process is gone (another machine sharing this folder), delete {path}.") from None
                print(f"[effcifar] taking over the lock of a process that is gone: {holder}", file=sys.stderr)
                path.unlink(missing_ok=True)
        else:
            raise RunLockedError(f"could not take {path}: other processes keep taking it")
    finally:
        tmp.unlink(missing_ok=True)
    try:
        yield path
    finally:
        if (lock_holder(path) or {}).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)
