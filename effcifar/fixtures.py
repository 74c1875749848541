"""A small synthetic dataset written in the real CIFAR-100 python pickle format (train, test, meta).

For tests, CI and offline demos: the real loader reads it (pass ``verify=False`` / ``--no-verify``, its
md5 sums are not the canonical ones). Each class has its own colour pattern plus noise, so a model can
learn it and training visibly lowers the loss. It is *not* CIFAR-100: results on it are labelled so.
"""
from __future__ import annotations

import os
import pickle

import numpy as np

from .data import FOLDER

COARSE = 20


def fine_label_names() -> list[str]:
    return [f"class_{i:02d}" for i in range(100)]


def _images(rng, labels, patterns):
    base = patterns[labels]                                            # n,3,4,4
    up = base.repeat(8, axis=2).repeat(8, axis=3)                      # n,3,32,32
    noisy = up + rng.normal(0, 25, size=up.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8).reshape(len(labels), 3072)


def write_fake_cifar100(root: str, n_train: int = 2000, n_test: int = 500, seed: int = 0) -> str:
    """Write ``root/cifar-100-python/{train,test,meta}``; returns the folder."""
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(0, 255, size=(100, 3, 4, 4))
    folder = os.path.join(root, FOLDER)
    os.makedirs(folder, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = np.arange(n) % 100
        rng.shuffle(fine)
        entry = {
            "filenames": [f"fake_{name}_{i}.png" for i in range(n)],
            "batch_label": f"{name}ing batch 1 of 1",
            "fine_labels": fine.tolist(),
            "coarse_labels": (fine % COARSE).tolist(),
            "data": _images(rng, fine, patterns),
        }
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(entry, f, protocol=2)
    meta = {"fine_label_names": fine_label_names(),
            "coarse_label_names": [f"superclass_{i:02d}" for i in range(COARSE)]}
    with open(os.path.join(folder, "meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder
