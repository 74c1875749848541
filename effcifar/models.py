"""The paper's two networks: a <100k-parameter CIFAR-100 classifier and a 32x32 DCGAN.

Classifier design (where the paper is silent, the choice is ours and is stated here)
-----------------------------------------------------------------------------------
The paper fixes: 10 residual blocks ``DSConv -> BN -> ReLU -> DSConv -> BN -> (+ shortcut) -> ReLU``,
a depthwise-separable conv (depthwise 3x3 with ``groups=in_channels``, then pointwise 1x1), 8 blocks
of 42 channels then 2 of 128, global average pooling and one ``Linear(128, 100)``; under 100,000
parameters, reported as 98,068.

That text does not pin the count. No reading we tried gives 98,068 exactly, and every reading in which
a block changes its channel count in its *first* DSConv (the ResNet convention) is over budget: even
with parameter-free (zero-padding) shortcuts it has 105,913 parameters, and with 1x1-conv+BN
projection shortcuts 111,755. So:

* The channel count changes in the block's **second** DSConv (``DSConv(c_in->c_in) -> BN -> ReLU ->
  DSConv(c_in->c_out) -> BN``). Blocks 1 (3->42) and 9 (42->128) change channels this way.
* Where channels change, the shortcut is a **1x1 conv + BN projection** (ResNet option B), which
  keeps the identity shortcut of the paper everywhere else.
* Convolutions have **no bias** (each is followed by BN, which makes a bias redundant).
* Resolution is reduced twice, ResNet-style, by **stride 2 in the depthwise conv** of the first DSConv
  of block 5 (32->16) and of block 9 (16->8); a same-width block that downsamples uses 2x2 average
  pooling as its (parameter-free) shortcut. The paper is silent here; keeping all ten blocks at 32x32
  costs 3.8x the multiply-accumulates (80.5M against 21.0M per image; ``classifier_macs`` measures it).

Exact count: **94,005** parameters (paper: 98,068), asserted in ``tests/test_models.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 100
CLASSIFIER_WIDTHS = (42,) * 8 + (128,) * 2
DOWNSAMPLE_BLOCKS = (4, 8)  # 0-based indices of the blocks that halve the resolution


class DSConv(nn.Sequential):
    """Depthwise ``kernel`` x ``kernel`` (3, the paper's; groups=c_in) followed by pointwise 1x1; no biases
    (BN follows)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, kernel: int = 3):
        super().__init__(
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=kernel // 2, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )


class SqueezeExcite(nn.Module):
    """Squeeze-excitation (Hu et al.): channel weights from the pooled features through a ``hidden``-unit
    bottleneck (a fixed small number, not a ratio, so that it fits the 100k budget at 128 channels)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.down, self.up = nn.Linear(channels, hidden), nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.up(F.relu(self.down(x.mean(dim=(2, 3))))))
        return x * w[:, :, None, None]


class ResidualBlock(nn.Module):
    """``DSConv -> BN -> ReLU -> DSConv -> BN`` (-> squeeze-excitation, if ``se``), plus shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, se: int = 0, kernel: int = 3):
        super().__init__()
        self.conv1 = DSConv(c_in, c_in, stride, kernel)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv2 = DSConv(c_in, c_out, kernel=kernel)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.se = SqueezeExcite(c_out, se) if se else nn.Identity()
        if c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        elif stride != 1:
            self.shortcut = nn.AvgPool2d(stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class Classifier(nn.Module):
    """The paper's CIFAR-100 classifier (see the module docstring for the choices made). The defaults are
    the paper's; "Beyond the paper" varies the widths, where resolution drops, squeeze-excitation (``se``
    hidden units per block, 0: none), dropout before the linear layer, a ``stem`` (a full 3x3 conv of
    RGB to that many channels, BN, ReLU, before the blocks; 0: none, the paper's: its first block's
    depthwise conv sees the three colour planes apart), the depthwise ``kernel`` size (in the blocks of
    ``kernel_blocks``, or all when None; the others keep 3), and ``zero_init``
    (each block's last BN starts at zero weight, so that the block starts as its shortcut: the identity
    init of Goyal et al. 2017)."""

    def __init__(self, widths=CLASSIFIER_WIDTHS, downsample_blocks=DOWNSAMPLE_BLOCKS, se: int = 0,
                 dropout: float = 0.0, num_classes: int = NUM_CLASSES, stem: int = 0, kernel: int = 3,
                 zero_init: bool = False, kernel_blocks=None):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem),
                                  nn.ReLU()) if stem else nn.Identity()
        blocks, c_in = [], stem or 3
        for i, c_out in enumerate(widths):
            k = kernel if kernel_blocks is None or i in kernel_blocks else 3
            blocks.append(ResidualBlock(c_in, c_out, stride=2 if i in downsample_blocks else 1, se=se, kernel=k))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(c_in, num_classes)
        if zero_init:
            for block in blocks:
                nn.init.zeros_(block.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(self.dropout(x.mean(dim=(2, 3))))


def whitening_filters(images: torch.Tensor, channels: int, kernel: int = 3, eps: float = 5e-4) -> torch.Tensor:
    """Conv filters (``channels`` x C x ``kernel`` x ``kernel``) that whiten the ``kernel`` x ``kernel`` patches
    of ``images`` (float, N x C x H x W, as the network sees them): the top ``channels // 2`` eigenvectors of
    the patches' covariance, each divided by the square root of its eigenvalue (+ ``eps``), then the same
    filters negated, so that the ReLU after them passes both signs (as in Page's and Jordan's fast CIFAR-10
    training). Each filter's outputs over these patches then have a mean square of ~1 and are uncorrelated."""
    c, d = images.shape[1], images.shape[1] * kernel * kernel
    if channels % 2 or not 0 < channels // 2 <= d:
        raise ValueError(f"whitening needs an even number of channels, at most {2 * d}; got {channels}")
    cov, n = torch.zeros(d, d, dtype=torch.float64, device=images.device), 0
    for chunk in images.split(500):   # the patches of all the images at once would take gigabytes
        patches = F.unfold(chunk.double(), kernel).transpose(1, 2).reshape(-1, d)
        cov += patches.T @ patches
        n += len(patches)
    values, vectors = torch.linalg.eigh(cov / n)   # ascending
    half = channels // 2
    top = vectors[:, -half:].flip(1).T / (values[-half:].flip(0) + eps).sqrt()[:, None]
    filters = top.reshape(half, c, kernel, kernel)
    return torch.cat([filters, -filters]).float()


def parse_widths(text: str) -> tuple[int, ...]:
    """``"42x8,128x2"`` -> (42,)*8 + (128,)*2 (a config's ``widths``)."""
    out = []
    for part in text.split(","):
        width, _, times = part.strip().partition("x")
        out += [int(width)] * int(times or 1)
    return tuple(out)


def parse_blocks(text: str) -> tuple[int, ...]:
    """``"4,8"`` -> (4, 8) (a config's ``downsample``: 0-based blocks that halve the resolution)."""
    return tuple(int(b) for b in text.split(",") if b.strip())


def build_classifier(cfg: dict) -> Classifier:
    """The classifier of a whole config as a dict (``config.to_dict``; of a run: ``results.run_config``)."""
    return Classifier(parse_widths(cfg["widths"]), parse_blocks(cfg["downsample"]), se=cfg["se"],
                      dropout=cfg["dropout"], stem=cfg["stem"], kernel=cfg["kernel"], zero_init=cfg["zero_init"],
                      kernel_blocks=parse_blocks(cfg["kernel_blocks"]) if cfg["kernel_blocks"] else None)


class Generator(nn.Module):
    """DCGAN generator for 32x32: the PyTorch DCGAN tutorial with one layer fewer (1->4->8->16->32).

    ``num_classes`` > 0: class-conditional (the paper's "one GAN per label" idea in one network): the noise
    is multiplied by a learnt embedding of the label. Called without labels, a conditional generator
    draws the classes in turn (sample i is of class i mod num_classes), so every caller gets a
    class-balanced, reproducible set of samples."""

    def __init__(self, nz: int = 100, ngf: int = 46, num_classes: int = 0, widths: tuple[int, ...] = ()):
        super().__init__()
        self.nz, self.num_classes = nz, num_classes
        if num_classes:
            self.embed = nn.Embedding(num_classes, nz)
        # channels at 4x4, 8x8, 16x16 (the paper's: ngf*4, ngf*2, ngf; a 4x4 transposed conv then makes the
        # 32x32 RGB image); a fourth width adds a 32x32 stage of that many channels and a 3x3 conv to RGB
        w = widths or (ngf * 4, ngf * 2, ngf)
        if len(w) not in (3, 4):
            raise ValueError(f"generator widths {w}: give 3 (4x4, 8x8, 16x16) or 4 (and 32x32) channel counts")
        layers = [nn.ConvTranspose2d(nz, w[0], 4, 1, 0, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(True)]
        for c_in, c_out in zip(w, w[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        if len(w) == 3:
            to_rgb = nn.ConvTranspose2d(w[-1], 3, 4, 2, 1, bias=False)
        else:
            to_rgb = nn.Conv2d(w[-1], 3, 3, 1, 1, bias=False)
        self.main = nn.Sequential(*layers, to_rgb, nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if y is None:
                y = torch.arange(z.shape[0], device=z.device) % self.num_classes
            z = z * self.embed(y)
        return self.main(z.reshape(z.shape[0], self.nz, 1, 1))


class Discriminator(nn.Module):
    """DCGAN discriminator for 32x32: 4 convs (32->16->8->4->1), first without BN, LeakyReLU 0.2, Sigmoid.

    ``spectral_norm``: every conv spectrally normalised (Miyato et al.) and no batch norm (SN-GAN's
    discriminator); ``logits``: no Sigmoid (the hinge loss works on the raw score)."""

    def __init__(self, ndf: int = 46, spectral_norm: bool = False, logits: bool = False, num_classes: int = 0,
                 widths: tuple[int, ...] = ()):
        super().__init__()
        w = widths or (ndf, ndf * 2, ndf * 4)   # channels at 16x16, 8x8, 4x4 (the paper's)
        if len(w) != 3:
            raise ValueError(f"discriminator widths {w}: give 3 (16x16, 8x8, 4x4) channel counts")
        self.logits, self.num_classes = logits, num_classes
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)

        def norm(c):
            return nn.Identity() if spectral_norm else nn.BatchNorm2d(c)
        layers = [
            sn(nn.Conv2d(3, w[0], 4, 2, 1, bias=False)), nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(w[0], w[1], 4, 2, 1, bias=False)), norm(w[1]), nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(w[1], w[2], 4, 2, 1, bias=False)), norm(w[2]), nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(w[2], 1, 4, 1, 0, bias=False)), *([] if logits else [nn.Sigmoid()]),
        ]
        self.main = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])
        if num_classes:   # projection discriminator (Miyato & Koyama): + <embed(y), pooled features>
            embed = nn.Embedding(num_classes, w[2])
            # N(0, 0.02) as the convs (dcgan_init leaves embeddings alone): nn.Embedding's N(0, 1) makes the
            # projection of 16 positions x 4 ndf channels a score of about +-200, a Sigmoid saturated from step 1
            nn.init.normal_(embed.weight, 0.0, 0.02)
            self.embed = sn(embed)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if not self.num_classes:
            return self.main(x).view(-1)
        if y is None:
            raise ValueError("a class-conditional discriminator needs the labels")
        body = self.main if self.logits else self.main[:-1]   # without the Sigmoid
        h = body[:-1](x)
        out = body[-1](h).view(-1) + (self.embed(y) * h.sum(dim=(2, 3))).sum(1)
        return out if self.logits else torch.sigmoid(out)


def build_dcgan(cfg: dict) -> tuple[Generator, Discriminator]:
    """The generator and discriminator of a whole DCGAN config as a dict (as ``build_classifier``)."""
    classes = NUM_CLASSES if cfg["conditional"] else 0
    g_widths = parse_widths(cfg["g_widths"]) if cfg["g_widths"] else ()
    d_widths = parse_widths(cfg["d_widths"]) if cfg["d_widths"] else ()
    return (Generator(cfg["nz"], cfg["ngf"], classes, g_widths),
            Discriminator(cfg["ndf"], spectral_norm=cfg["spectral_norm"], logits=cfg["loss"] == "hinge",
                          num_classes=classes, widths=d_widths))


def dcgan_init(module: nn.Module) -> None:
    """DCGAN weight init (Radford et al.): conv weights N(0, 0.02), BN weight N(1, 0.02), BN bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):   # under spectral norm: the raw weight
        parametrized = nn.utils.parametrize.is_parametrized(module, "weight")
        nn.init.normal_(module.parametrizations.weight.original if parametrized else module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(m: nn.Module) -> str:
    """A short description of one layer (for architecture tables)."""
    if isinstance(m, ResidualBlock):
        return (f"residual block {m.conv1[0].in_channels}->{m.bn2.num_features}, stride {m.conv1[0].stride[0]}, "
                f"shortcut: {type(m.shortcut).__name__.replace('Sequential', '1x1 conv + BN')}")
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        kind = "conv transpose" if isinstance(m, nn.ConvTranspose2d) else "conv"
        groups = f", groups {m.groups}" if m.groups > 1 else ""
        return (f"{kind} {m.in_channels}->{m.out_channels}, {m.kernel_size[0]}x{m.kernel_size[1]}, "
                f"stride {m.stride[0]}, pad {m.padding[0]}{groups}")
    if isinstance(m, nn.BatchNorm2d):
        return f"batch norm ({m.num_features})"
    if isinstance(m, nn.Linear):
        return f"global average pool, linear {m.in_features}->{m.out_features}"
    if isinstance(m, nn.LeakyReLU):
        return f"LeakyReLU ({m.negative_slope})"
    return type(m).__name__


def layer_table(model: nn.Module) -> list[dict]:
    """One row per top-level part (classifier: each block and the head; DCGAN: each layer) with its
    description, output shape for one 32x32 image (or one noise vector) and parameter count."""
    if isinstance(model, Classifier):
        parts = list(model.blocks.named_children()) + [("fc", model.fc)]
        x = torch.zeros(1, 3, 32, 32)
    else:
        parts = list(model.main.named_children())
        x = torch.zeros(1, 3, 32, 32)
        if isinstance(model, Generator):   # a conditional G's label embedding is a part too
            parts = ([("embed", model.embed)] if model.num_classes else []) + parts
            x = torch.zeros(1, model.nz)
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
             for name, m in parts]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(x)
    model.train(was_training)
    for h in hooks:
        h.remove()
    return [{"layer": f"block {int(n) + 1}" if isinstance(model, Classifier) and n != "fc" else n,
             "description": describe(m), "output": "x".join(map(str, shapes[n])), "params": count_params(m)}
            for n, m in parts]


def classifier_macs(model: Classifier, size: int = 32) -> int:
    """Multiply-accumulates of one forward pass of one image (convs and linear), by forward hooks."""
    macs = 0

    def hook(m, inp, out):
        nonlocal macs
        if isinstance(m, nn.Conv2d):
            macs += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            macs += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    model.train(was_training)
    for h in handles:
        h.remove()
    return macs
