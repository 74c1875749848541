import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from conftest import SHARED
from effcifar import data as cifar
from effcifar.fixtures import fine_label_names


def test_loader_reads_the_real_pickle_format(cifar_root):
    train, test = cifar.load_cifar100(cifar_root, verify=False, download=False)
    assert train.images.shape == (1000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (300, 3, 32, 32)
    assert train.labels.dtype == torch.int64 and 0 <= train.labels.min() and train.labels.max() <= 99
    assert train.classes == fine_label_names()
    with open(os.path.join(cifar_root, "cifar-100-python", "train"), "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    # rows are 1024 red, then 1024 green, then 1024 blue values, row-major: CHW after reshape
    first = np.asarray(raw["data"][0]).reshape(3, 32, 32)
    assert np.array_equal(train.images[0].numpy(), first)
    assert train.labels.tolist() == raw["fine_labels"]


def test_subset(cifar_root):
    train, test = cifar.load_cifar100(cifar_root, verify=False, download=False, subset=200)
    assert len(train) == 200 and len(test) == 40


def test_checksums_are_checked_by_default(cifar_root):
    with pytest.raises(cifar.DataError, match="md5.*--no-verify"):
        cifar.load_cifar100(cifar_root, download=False)


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(cifar.DataError) as e:
        cifar.load_cifar100(str(tmp_path), download=False)
    msg = str(e.value)
    assert str(tmp_path / "cifar-100-python") in msg and "train, test, meta" in msg and "EFFCIFAR_DATA" in msg


def _copy(cifar_root, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(cifar_root, dst)
    return dst


def test_truncated_file_is_a_clear_error(cifar_root, tmp_path):
    root = _copy(cifar_root, tmp_path)
    path = root / "cifar-100-python" / "train"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(cifar.DataError, match="truncated or corrupt"):
        cifar.load_cifar100(str(root), verify=False, download=False)
    with pytest.raises(cifar.DataError, match="md5"):
        cifar.load_cifar100(str(root), verify=True, download=False)


def test_wrong_format_is_a_clear_error(cifar_root, tmp_path):
    root = _copy(cifar_root, tmp_path)
    with open(root / "cifar-100-python" / "test", "wb") as f:
        pickle.dump({"data": np.zeros((3, 100), np.uint8), "fine_labels": [0, 1, 2]}, f)
    with pytest.raises(cifar.DataError, match="not CIFAR-100|could not be read"):
        cifar.load_cifar100(str(root), verify=False, download=False)


def _authors_diffaug(x, u):
    """DiffAugment "color,translation,cutout" as in the authors' code (mit-han-lab/data-efficient-gans,
    DiffAugment_pytorch.py), with its torch.rand/randint draws replaced by the draws ``u``."""
    n, _, h, w = x.shape
    x = x + (u[:, 0].view(n, 1, 1, 1) - 0.5)
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (u[:, 1].view(n, 1, 1, 1) * 2) + m
    m = x.mean(dim=[1, 2, 3], keepdim=True)
    x = (x - m) * (u[:, 2].view(n, 1, 1, 1) + 0.5) + m
    shift_x, shift_y = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
    translation_x = (u[:, 3] * (2 * shift_x + 1)).long().view(n, 1, 1) - shift_x
    translation_y = (u[:, 4] * (2 * shift_y + 1)).long().view(n, 1, 1) - shift_y
    grid_batch, grid_x, grid_y = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(w), indexing="ij")
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, h + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, w + 1)
    x_pad = torch.nn.functional.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    x = x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)
    cutout_size = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    offset_x = (u[:, 5] * (h + (1 - cutout_size[0] % 2))).long().view(n, 1, 1)
    offset_y = (u[:, 6] * (w + (1 - cutout_size[1] % 2))).long().view(n, 1, 1)
    grid_batch, grid_x, grid_y = torch.meshgrid(torch.arange(n), torch.arange(cutout_size[0]),
                                                torch.arange(cutout_size[1]), indexing="ij")
    grid_x = torch.clamp(grid_x + offset_x - cutout_size[0] // 2, min=0, max=h - 1)
    grid_y = torch.clamp(grid_y + offset_y - cutout_size[1] // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype)
    mask[grid_batch, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


def test_diffaug_is_the_authors_and_differentiable():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(256, 3, 32, 32, generator=g) * 2 - 1).requires_grad_()
    u = cifar.diffaug_draws(256, g)[0]
    out = cifar.diff_augment(x, u, "color,translation,cutout")
    assert torch.allclose(out, _authors_diffaug(x, u), atol=1e-6)
    out.square().sum().backward()
    assert (x.grad != 0).all()   # colour mixes every pixel of an image into its mean
    x.grad = None
    cifar.diff_augment(x, u, "translation,cutout").square().sum().backward()
    assert (x.grad != 0).any() and (x.grad == 0).any()   # pixels cut out or shifted away get no gradient
    assert torch.equal(cifar.diff_augment(x, u, ""), x)
    still = torch.tensor([[0.5, 0.5, 0.5, 4.5 / 9, 4.5 / 9, 0.0, 0.0]]).expand(256, 7)   # no change, but cutout
    kept = cifar.diff_augment(x, still, "color,translation")
    assert torch.allclose(kept, x, atol=1e-6)
    cut = cifar.diff_augment(x, still, "cutout")
    assert ((cut == 0).all(1).sum((1, 2)) == 8 * 8).all()   # a 16x16 square centred on the corner: a quarter


def test_hflip_is_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    y = cifar.random_hflip(x, g)
    flipped = [torch.equal(y[i], x[i].flip(2)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54


def test_crop_pads_with_zeros_and_shifts_at_most_pad():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 32, 32), dtype=torch.uint8)   # no zeros in the images themselves
    y = cifar.random_crop(x, 4, g)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    offsets = set()
    for i in range(64):
        match = [(oy, ox) for oy in range(9) for ox in range(9)
                 if torch.equal(y[i], padded[i, :, oy:oy + 32, ox:ox + 32])]
        assert len(match) == 1
        offsets.add(match[0])
    assert len(offsets) > 20                      # offsets vary per image
    assert (y == 0).any()                         # the padding is zeros


def test_batches_are_a_function_of_seed_and_step():
    s1, s2 = cifar.BatchSampler(1000, 128, seed=3), cifar.BatchSampler(1000, 128, seed=3)
    epoch = torch.cat([s1.indices(k) for k in range(7)])
    assert len(set(epoch.tolist())) == 7 * 128                       # without replacement in an epoch
    assert torch.equal(s2.indices(9), s1.indices(9))                 # no hidden state
    assert not torch.equal(cifar.BatchSampler(1000, 128, seed=4).indices(0), s1.indices(0))


def test_scalings():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    assert torch.equal(cifar.to_unit_range(x)[0, 0, 0], torch.tensor([-1.0, 1.0]))
    assert torch.equal(cifar.to_uint8(cifar.to_unit_range(x)), x)


@pytest.mark.skipif(not (SHARED / "cifar-100-python" / "train").is_file(),
                    reason="real CIFAR-100 not in ../shared/data (see its README)")
def test_real_cifar100():
    train, test = cifar.load_cifar100(str(SHARED), verify=True, download=False)   # md5 verification passes
    assert train.images.shape == (50000, 3, 32, 32) and test.images.shape == (10000, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [500] * 100
    assert torch.bincount(test.labels).tolist() == [100] * 100
    assert train.labels[0] == 19 and train.classes[19] == "cattle"
    assert len(set(train.classes)) == 100 and train.classes[0] == "apple" and train.classes[-1] == "worm"


def test_cutout_zeroes_one_square_per_image_and_nothing_else():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 32, 32), dtype=torch.uint8)
    y = cifar.cutout(x, 8, g)
    holes = (y == 0).all(1)   # n,h,w: pixels zeroed in every channel
    assert torch.equal(y[~holes[:, None].expand_as(y)], x[~holes[:, None].expand_as(x)])   # the rest untouched
    sizes = holes.sum((1, 2))
    assert sizes.max() == 64 and sizes.min() > 0 and (sizes < 64).any()   # cut at the borders sometimes
    for i in range(64):
        rows, cols = holes[i].any(1).nonzero(), holes[i].any(0).nonzero()
        assert int(holes[i].sum()) == len(rows) * len(cols)   # a rectangle (a square but at the borders)
        assert len(rows) <= 8 and len(cols) <= 8
    assert torch.equal(cifar.cutout(x, 8, torch.Generator().manual_seed(0)), y)
