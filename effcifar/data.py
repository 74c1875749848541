"""CIFAR-100 through ``torchvision.datasets.CIFAR100``, held as uint8 tensors on the training device.

Augmentation (random crop with zero padding, horizontal flip) runs on whole batches on that device.
Every failure (missing, truncated, wrong checksum, wrong format) is a ``DataError`` that says what to do.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import socket
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.datasets import CIFAR100

FOLDER = CIFAR100.base_folder  # "cifar-100-python"
FILES = {name: md5 for name, md5 in CIFAR100.train_list + CIFAR100.test_list}
FILES[CIFAR100.meta["filename"]] = CIFAR100.meta["md5"]   # train, test, meta
ARCHIVE_URL, ARCHIVE_MD5 = CIFAR100.url, CIFAR100.tgz_md5

MEAN = (0.5071, 0.4865, 0.4409)   # CIFAR-100 training-set channel means and stds
STD = (0.2673, 0.2564, 0.2762)


class DataError(RuntimeError):
    pass


def _howto(root: str) -> str:
    return (f"Get the CIFAR-100 python version ({ARCHIVE_URL}, md5 {ARCHIVE_MD5}) and extract it so that "
            f"{os.path.join(root, FOLDER)} holds train, test and meta; or run once online, where it is "
            f"downloaded; or point --data / EFFCIFAR_DATA at a folder that holds {FOLDER}/.")


def md5sum(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def ensure_cifar100(root: str, verify: bool = True, download: bool = True) -> str:
    """Make sure ``root/cifar-100-python/{train,test,meta}`` exist (downloading if allowed) and, with
    ``verify``, that they have the canonical md5 sums. Returns the folder."""
    folder = os.path.join(root, FOLDER)
    missing = [n for n in FILES if not os.path.isfile(os.path.join(folder, n))]
    if missing and download:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(60)
        try:
            CIFAR100(root, download=True)
        except Exception as e:  # offline, proxy, disk full: say so plainly
            raise DataError(f"CIFAR-100 is not in {folder} (missing: {', '.join(missing)}) and the "
                            f"download failed ({type(e).__name__}: {e}). {_howto(root)}") from None
        finally:
            socket.setdefaulttimeout(old)
        missing = [n for n in FILES if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise DataError(f"CIFAR-100 is not in {folder}: missing {', '.join(missing)} "
                        f"(downloads are off). {_howto(root)}")
    if verify:
        for name, expected in FILES.items():
            got = md5sum(os.path.join(folder, name))
            if got != expected:
                raise DataError(
                    f"{os.path.join(folder, name)} has md5 {got}, not the canonical {expected}: the file is "
                    f"truncated or corrupt, or not the official release. Delete it and download again "
                    f"({ARCHIVE_URL}); if it is your own copy in the CIFAR-100 format, pass --no-verify.")
    return folder


class _CIFAR100(CIFAR100):
    """torchvision's CIFAR100 with its md5 checks switched off: ``ensure_cifar100`` did them (or was
    told not to); torchvision's reading of the pickles is kept."""
    train_list = [[n, None] for n, _ in CIFAR100.train_list]
    test_list = [[n, None] for n, _ in CIFAR100.test_list]
    meta = dict(CIFAR100.meta, md5=None)


@dataclass
class Split:
    images: torch.Tensor   # uint8, N x 3 x 32 x 32
    labels: torch.Tensor   # int64, N
    classes: list[str]

    def to(self, device) -> Split:
        return Split(self.images.to(device), self.labels.to(device), self.classes)

    def __len__(self) -> int:
        return len(self.labels)


def load_split(root: str, train: bool, verify: bool = True, download: bool = True) -> Split:
    """One CIFAR-100 split as uint8 CHW tensors, read by torchvision's CIFAR100."""
    folder = ensure_cifar100(root, verify=verify, download=download)
    name = "train" if train else "test"
    try:
        ds = _CIFAR100(root, train=train, download=False)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, IndexError, AttributeError,
            UnicodeDecodeError, RuntimeError) as e:
        raise DataError(f"{os.path.join(folder, name)} (or meta) could not be read as a CIFAR-100 python "
                        f"pickle ({type(e).__name__}: {e}): it is truncated or corrupt. Delete it and "
                        f"download again. {_howto(root)}") from None
    data, labels = ds.data, ds.targets
    if data.ndim != 4 or data.shape[1:] != (32, 32, 3) or len(labels) != len(data) or len(ds.classes) != 100:
        raise DataError(f"{os.path.join(folder, name)} is not CIFAR-100: images {data.shape}, "
                        f"{len(labels)} labels, {len(ds.classes)} classes in meta. {_howto(root)}")
    images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(labels, dtype=torch.int64)
    if labels.numel() and (labels.min() < 0 or labels.max() >= 100):
        raise DataError(f"{os.path.join(folder, name)} has labels outside 0..99. {_howto(root)}")
    return Split(images, labels, list(ds.classes))


def load_cifar100(root: str, verify: bool = True, download: bool = True, subset: int = 0):
    """(train, test) splits; ``subset`` > 0 keeps the first ``subset`` train and ``subset // 5`` test images."""
    train = load_split(root, True, verify, download)
    test = load_split(root, False, verify=False, download=False)  # already verified with the train call
    if subset:
        train = Split(train.images[:subset], train.labels[:subset], train.classes)
        test = Split(test.images[:max(1, subset // 5)], test.labels[:max(1, subset // 5)], test.classes)
    return train, test


# ---------------------------------------------------------------------------------------------------
# batches: a pure function of (seed, step), so a resumed run draws exactly what an uninterrupted one does

def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """The CPU generator of one training step. Its draws are made on the CPU whatever the device, so a
    run on a GPU sees the same crops, flips and noise as on the CPU, and differs only by arithmetic.
    ``stream`` > 0 gives other draws for the same step (a DCGAN restarted after a collapse)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step + stream * 2 ** 40) % (2 ** 63))


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """A CPU-drawn tensor on ``device``. To a GPU through pinned memory without blocking: a copy from
    ordinary (pageable) memory waits for the GPU to finish its queue, which made every step wait for the
    last one. The values are the same either way."""
    device = torch.device(device)
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class BatchSampler:
    """Shuffled epochs without replacement (the last partial batch of an epoch is dropped)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < batch_size:
            raise DataError(f"the training set has {n} images, fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[i * self.batch_size:(i + 1) * self.batch_size]


def random_crop(x: torch.Tensor, pad: int, g: torch.Generator) -> torch.Tensor:
    """Per-image random crop of the zero-padded batch (torchvision RandomCrop(size, padding=pad))."""
    if pad == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = to_device(torch.randint(0, 2 * pad + 1, (n, 1), generator=g), x.device)
    ox = to_device(torch.randint(0, 2 * pad + 1, (n, 1), generator=g), x.device)
    rows = (oy + torch.arange(h, device=x.device))[:, None, :, None]   # n,1,h,1
    cols = (ox + torch.arange(w, device=x.device))[:, None, None, :]   # n,1,1,w
    idx = torch.arange(n, device=x.device)[:, None, None, None]
    ch = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[idx, ch, rows, cols]


def random_hflip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = to_device(torch.rand(x.shape[0], generator=g) < 0.5, x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Per-image cutout (DeVries & Taylor 2017): a ``size`` x ``size`` square (cut at the borders) around a
    random centre set to 0."""
    n, _, h, w = x.shape
    top = to_device(torch.randint(0, h, (n, 1, 1), generator=g), x.device) - size // 2
    left = to_device(torch.randint(0, w, (n, 1, 1), generator=g), x.device) - size // 2
    ys, xs = torch.arange(h, device=x.device)[None, :, None], torch.arange(w, device=x.device)[None, None, :]
    hole = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)   # n,h,w
    return x.masked_fill(hole[:, None], 0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float, standardised with the CIFAR-100 channel statistics (classifier input)."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1] (DCGAN input, the range of the generator's Tanh)."""
    return x.float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 (as saving a PNG would)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


# ---------------------------------------------------------------------------------------------------
# DiffAugment (Zhao et al., 2020): differentiable augmentation of every image the discriminator sees,
# real and generated, so that D cannot memorise the training set. The random draws are made per step on
# the CPU (``diffaug_draws``), like every other draw, and the augmentation itself is a differentiable
# function of the images and those draws (so gradients reach G, a graphed step replays it, and a resumed
# run repeats it).

DIFFAUG_OPS = ("color", "translation", "cutout")


def diffaug_draws(n: int, g: torch.Generator) -> torch.Tensor:
    """Uniform draws for three augmentations of ``n`` images each (D's real batch, D's generated batch,
    G's generated batch): shape (3, n, 7)."""
    return torch.rand(3, n, 7, generator=g)


def diff_augment(x: torch.Tensor, u: torch.Tensor, policy: str) -> torch.Tensor:
    """DiffAugment of images ``x`` (n, 3, h, w) in [-1, 1] with draws ``u`` (n, 7) in [0, 1), as the
    authors' code: ``color`` (brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5]),
    ``translation`` (up to 1/8 of the size, zero fill), ``cutout`` (a zeroed square of half the size)."""
    ops = [op for op in policy.split(",") if op]
    n, _, h, w = x.shape
    u = u.to(x.dtype).view(n, 7, 1, 1, 1)
    if "color" in ops:
        x = x + (u[:, 0] - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (u[:, 1] * 2) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (u[:, 2] + 0.5) + mean
    if "translation" in ops:
        sy, sx = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
        dy = (u[:, 3, 0, 0] * (2 * sy + 1)).long() - sy           # (n, 1) shifts in -s..s
        dx = (u[:, 4, 0, 0] * (2 * sx + 1)).long() - sx
        rows = (torch.arange(h, device=x.device) + dy + 1).clamp(0, h + 1)   # into the image padded by 1
        cols = (torch.arange(w, device=x.device) + dx + 1).clamp(0, w + 1)
        idx = torch.arange(n, device=x.device)[:, None, None]
        x = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if "cutout" in ops:
        ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        cy = (u[:, 5, 0, 0] * (h + 1 - ch % 2)).long() - ch // 2   # (n, 1) first row of the square
        cx = (u[:, 6, 0, 0] * (w + 1 - cw % 2)).long() - cw // 2
        r, c = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        inside = ((r >= cy) & (r < cy + ch))[:, :, None] & ((c >= cx) & (c < cx + cw))[:, None, :]
        x = x * (~inside).to(x.dtype)[:, None]
    return x
