"""One typed config per experiment, with named profiles.

``paper`` is the paper's budget, ``quick`` the same code at budgets that finish in about 15 minutes on
2 CPU cores, ``smoke`` runs in seconds (CI). ``make_config("classifier", "quick", steps=500)`` builds one;
an unknown experiment, profile or field name is an error, never ignored.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

PROFILES = ("paper", "quick", "smoke")


def default_data_dir() -> str:
    """``$EFFCIFAR_DATA``, else the user cache directory (``~/.cache/effcifar/data``)."""
    env = os.environ.get("EFFCIFAR_DATA")
    if env:
        return env
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return os.path.join(cache, "effcifar", "data")


@dataclass
class Common:
    profile: str = "paper"
    seed: int = 0
    data: str = field(default_factory=default_data_dir)
    verify: bool = True          # check the canonical CIFAR-100 md5 sums
    download: bool = True        # try to download missing data (online users)
    out: str = "results"         # parent folder; each run writes out/<run_name>
    device: str = "auto"         # auto -> cuda when present, else cpu
    cuda_graph: bool = True      # on CUDA, replay each training step as one captured CUDA graph
    subset: int = 0              # >0: use only the first N training and N//5 test images (labelled in results)
    variant: str = ""            # a named change of the recipe (VARIANTS); part of the run folder's name

    def _name(self, experiment: str) -> str:
        return f"{experiment}-{self.profile}{'-' + self.variant if self.variant else ''}-seed{self.seed}"


@dataclass
class Training(Common):
    """Speed levers of the training steps (benchmarks/cpu_levers.py measures them). Both change the
    arithmetic, so they are part of a run's config: a run made with them is another run."""
    compile: bool = False        # torch.compile the networks (inductor)
    precision: str = "fp32"      # "bf16": autocast the networks to bfloat16, fp32 weights and losses


@dataclass
class ClassifierConfig(Training):
    steps: int = 10_000
    batch_size: int = 128
    lr: float = 1e-3             # Adam default; the paper names Adam and gives no learning rate
    weight_decay: float = 0.0    # decoupled (AdamW: weights shrink by lr * weight_decay per step)
    eval_every: int = 250        # steps between evaluations (a row of history.csv)
    eval_test_images: int = 0    # 0: the whole test set
    ckpt_every: int = 1000       # must be a multiple of eval_every
    crop_pad: int = 4
    hflip: bool = True
    lr_schedule: str = "constant"    # "cosine" or "linear" (to 0), "onecycle" (warm-up to lr over 30 %, then
                                     # down), "warmcos" (linear warm-up over 5 %, then cosine to 0)
    label_smoothing: float = 0.0
    cutout: int = 0              # >0: a square of this side, at a random centre, set to 0 in each training image
    tta_flip: bool = False       # evaluate on each test image and its mirror image (mean of the logits)
    tta_shift: int = 0           # >0: also on each test image moved by +-tta_shift pixels along the diagonal
                                 # (zero fill, as the training crops pad): 3 views, 6 with tta_flip
    widths: str = "42x8,128x2"   # channels of the ten blocks ("42x8": eight blocks of 42)
    downsample: str = "4,8"      # 0-based blocks whose first conv has stride 2 (32 -> 16 -> 8)
    se: int = 0                  # squeeze-excitation with this many hidden units in every block (0: none)
    dropout: float = 0.0         # dropout before the linear layer
    ema: float = 0.0             # >0: evaluate (and save) an exponential moving average of the weights
    stem: int = 0                # >0: a full 3x3 conv of RGB to this many channels (+ BN, ReLU) before the blocks
    kernel: int = 3              # the depthwise convs' kernel size (odd)
    kernel_blocks: str = ""      # 0-based blocks whose depthwise convs take `kernel` (the others 3); "": all
    zero_init: bool = False      # each block's last BN weight starts at 0: the block starts as its shortcut
    whiten: bool = False         # the stem's filters start as a whitening of the training images' 3x3 patches
    bn_lr: float = 1.0           # the batch-norm weights and biases learn at this many times the rate (and,
                                 # decoupled, decay at it)

    @property
    def run_name(self) -> str:
        return self._name("classifier")


@dataclass
class DCGANConfig(Training):
    steps: int = 50_000
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_D: float = 0.0            # the discriminator's learning rate; 0: lr (two learning rates: TTUR)
    lr_schedule: str = "constant"    # as the classifier's: "linear" decays both rates to 0 over the run
    loss: str = "bce"            # "bce" (the paper's) or "hinge" (the discriminator then outputs logits)
    spectral_norm: bool = False  # spectral norm on every conv of D, and no batch norm in D
    ema: float = 0.0             # >0: snapshots and G.pt hold a moving average of the generator's weights
    conditional: bool = False    # class-conditional G (label embedding) and projection D; samples cycle the classes
    diffaug: str = ""            # DiffAugment of every image D sees: "color,translation,cutout" or a part ("": off)
    hflip: bool = False          # mirror each real image with probability 1/2 (x-flips: twice the distinct images)
    nz: int = 100
    ngf: int = 46
    ndf: int = 46
    g_widths: str = ""           # G's channels at 4x4, 8x8, 16x16[, 32x32] ("": ngf*4, ngf*2, ngf, the paper's)
    d_widths: str = ""           # D's channels at 16x16, 8x8, 4x4 ("": ndf, ndf*2, ndf*4, the paper's)
    d_steps: int = 1             # D updates per step (each on its own real batch and noise), then one of G's
    log_every: int = 500         # steps between history rows (means over the window)
    ckpt_every: int = 2000       # must be a multiple of log_every
    snapshot_every: int = 2000   # generator snapshots kept for FID against step (46k vs 50k)
    n_fixed_noise: int = 64      # fixed noise for Figure 4/5 sample grids
    collapse_guard: bool = False     # at each log step, detect a collapse and go back to the last good
                                     # checkpoint with other random draws (train.collapsed)
    collapse_eps: float = 0.02       # collapsed: mean D(x) > 1 - eps and mean D(G(z)) < eps, or ...
    collapse_diversity: float = 0.05  # ... the fixed-noise samples' per-pixel std (in [-1, 1]) below this
    collapse_max_restarts: int = 5   # then stop with an error (the last good checkpoint stays)

    @property
    def run_name(self) -> str:
        return self._name("dcgan")


@dataclass
class FIDConfig(Common):
    n_samples: int = 10_000      # generated images
    n_reference: int = 0         # test images for the reference statistics; 0: all 10,000
    batch_size: int = 0          # Inception batch; 0: 25 on a CPU (the fastest on 2 cores), 200 on a GPU
    dims: int = 2048
    snapshots: str = "46000,50000"   # generator snapshot steps to score; "all" scores every snapshot
    sweep_samples: int = 1000    # >0: also score every snapshot with this many samples (FID against step)
    inception: str = "pytorch-fid"   # "random": randomly initialised InceptionV3 (tests, offline speed);
                                     # "auto": pytorch-fid's weights if present or downloadable, else random
    precision: str = "fp32"      # "bf16": Inception under bfloat16 autocast, ~2x on a CPU with avx512_bf16;
                                 # its FIDs differ from fp32's (benchmarks/fid_precision.py says by how much)
    fold_bn: bool = True         # Inception's batch norms folded into its convolutions: the same function,
                                 # 1.2x on a CPU (benchmarks/fid_inference.py)
    sample_bn: str = "running"   # the generator's batch norms while it draws the samples: "running" (eval
                                 # mode, their running statistics), or "batch" (training mode: each batch of
                                 # the DCGAN's training batch size normalised by its own statistics, as the
                                 # DCGAN tutorial that the paper's code came from draws its samples)
    until: int = 0               # >0: a screen of a run stopped at this step (train-dcgan --until): only the
                                 # sweep (sweep_samples each) of its snapshots up to it, the same numbers as
                                 # the whole run's sweep there (fid.compute_fid)
    # Inference-only fields: they change an FID's rounding, not its value (benchmarks/fid_inference.py
    # measures by how much), so a result made with other values of them is the same result
    NEUTRAL: ClassVar[tuple[str, ...]] = ("batch_size", "fold_bn")

    @property
    def run_name(self) -> str:   # a bf16 or batch-statistics FID never takes the place of the standard one
        screen = f"-screen{self.until // 1000}k" if self.until % 1000 == 0 else f"-screen{self.until}"
        return (self._name("fid") + self.precision_suffix + ("-batchbn" if self.sample_bn == "batch" else "")
                + (screen if self.until else ""))

    @property
    def floor_run_name(self) -> str:   # training against test images (fid.compute_floor): one per profile
        return f"fid_floor-{self.profile}-seed0{self.precision_suffix}"

    @property
    def dcgan_run_name(self) -> str:   # the DCGAN run this FID scores by default
        return self._name("dcgan")

    @property
    def precision_suffix(self) -> str:   # in run folders and the statistics cache: fp32 has none
        return "" if self.precision == "fp32" else f"-{self.precision}"


EXPERIMENTS = {"classifier": ClassifierConfig, "dcgan": DCGANConfig, "fid": FIDConfig}

_PROFILE_OVERRIDES = {
    "classifier": {
        "paper": {},
        "quick": dict(steps=600, eval_every=100, ckpt_every=200, eval_test_images=2000),
        "smoke": dict(steps=12, batch_size=32, eval_every=4, ckpt_every=4, eval_test_images=64),
    },
    "dcgan": {
        "paper": {},
        "quick": dict(steps=2000, log_every=100, ckpt_every=500, snapshot_every=500),
        "smoke": dict(steps=12, batch_size=16, log_every=4, ckpt_every=4, snapshot_every=4,
                      n_fixed_noise=16),
    },
    "fid": {
        "paper": {},
        "quick": dict(n_samples=1000, n_reference=1000, batch_size=20, snapshots="1000,2000", inception="auto",
                      sweep_samples=0),
        "smoke": dict(n_samples=32, n_reference=32, batch_size=16, snapshots="all", inception="random",
                      sweep_samples=16),
    },
}


_STRONG = dict(lr_schedule="onecycle", lr=4e-3, label_smoothing=0.1, tta_flip=True, weight_decay=0.05, se=4,
               ema=0.999)   # see VARIANTS["classifier"]
_CPU_LEVERS = dict(precision="bf16", compile=True, eval_every=1000)   # a paper-length run in one CPU session
_STRONG8_CPU = dict(_STRONG, lr=8e-3, **_CPU_LEVERS)   # round two's best classifier (see VARIANTS["classifier"])
_HIRES = dict(g_widths="128,128,64,32", ema=0.999, hflip=True, precision="bf16")   # see VARIANTS["dcgan"]
_STRONG_STEM = dict(lr_schedule="onecycle", lr=4e-3, label_smoothing=0.1, tta_flip=True, tta_shift=1,
                    weight_decay=0.05, ema=0.999, stem=24, zero_init=True)   # see VARIANTS["classifier"]

# Named changes of the paper's recipe ("Beyond the paper"): `--variant NAME` on the command line, the
# `variant` parameter of the notebooks. Each is a set of config fields; its runs get their own folders.
VARIANTS = {
    "classifier": {
        "cosine": dict(lr_schedule="cosine"),
        "onecycle": dict(lr_schedule="onecycle", lr=4e-3),
        "smooth": dict(label_smoothing=0.1),
        "tta": dict(tta_flip=True),
        "onecycle_smooth_tta": dict(lr_schedule="onecycle", lr=4e-3, label_smoothing=0.1, tta_flip=True),
        # the CPU speed levers (issue 8): the paper recipe in bfloat16, compiled (the fastest classifier
        # step in benchmarks/cpu_levers.py); its runs are compared with the fp32 seed spread
        "bf16_compile": dict(precision="bf16", compile=True),
        "ema": dict(ema=0.999),
        "wd": dict(weight_decay=0.05),
        "dropout": dict(dropout=0.1),
        "se": dict(se=4),
        "late": dict(downsample="6,8"),   # six blocks at 32x32 instead of four (more compute, same weights)
        # `late` with the speed levers, for a CPU session too short for its fp32 run; its baseline is then
        # `bf16_compile` (the paper recipe with the same levers), not the fp32 seeds
        "late_bf16_compile": dict(downsample="6,8", precision="bf16", compile=True),
        # how width is spread over the blocks: channels doubling at each resolution drop (30 at 32x32, 60 at
        # 16x16, 116 at 8x8; 98,997 parameters) instead of 42, 42, 128; with the speed levers (baseline `bf16_compile`)
        "double_bf16_compile": dict(widths="30x4,60x4,116x2", precision="bf16", compile=True),
        # everything above that should help, together; and with the later resolution drop
        "strong": _STRONG,
        "strong_late": dict(_STRONG, downsample="6,8"),
        # round two (issue 44): `strong` with squeeze-excitation's 5,368 parameters (no gain in its own row)
        # spent on a stem (a full 3x3 conv of RGB to 24 channels: the paper's first block sees the colour
        # planes apart, through 3-channel depthwise and pointwise convs), identity init, and test-time shifts
        # of one pixel (+0.24 and +0.81 points on strong's seeds 0 and 1, `evaluate --flip --shift 1`):
        # 97,452 parameters. With the speed levers for a CPU session (baseline `bf16_compile`), and a history
        # row every 1,000 steps (six test views cost 1 min an evaluation on 2 cores)
        "strong_stem": _STRONG_STEM,
        "strong_stem_bf16_compile": dict(_STRONG_STEM, **_CPU_LEVERS),
        # whitening init, one change on that: the stem's 24 filters start as the top 12 directions of the 3x3
        # RGB patches of the first 5,000 training images, scaled to unit variance, and their negatives. Seed 0:
        # 65.99 % (six views; -0.66 against strong_stem's seed 0). Ahead early (22.8 % at 1k against 18.0, 42.6 at
        # 2k against 40.1), behind from 5k: a faster start that the 10,000 steps do not keep; and less fit (74.4 %
        # on the training images, six views, against strong_stem's 77.5)
        "strong_stem_whiten_bf16_compile": dict(_STRONG_STEM, whiten=True, **_CPU_LEVERS),
        # round two's learning-rate sweep on `strong`, with the CPU levers (baseline `bf16_compile`; read them
        # against strong's seeds): 4e-3 had never been swept
        "strong_lr8_bf16_compile": _STRONG8_CPU,
        "strong_lr16_bf16_compile": dict(_STRONG, lr=1.6e-2, **_CPU_LEVERS),   # the sweep's next step (lr8: +2 points)
        # between the two: 4e-3 and 1.6e-2 (seed 0) each fall about 2 points short of 8e-3, which leaves the peak
        # anywhere from ~6e-3 to ~1.1e-2, and every one-change row on lr8 has fallen short of it. Seed 0: 67.73 %
        # (-0.79 against lr8's seed 0; 67.87 with six test views) and less fit (77.9 % on the training images
        # against 79.0): ahead of lr8's seeds at 1k-3k, behind from 5k. The peak lies between 4e-3 and 1.1e-2, near 8e-3
        "strong_lr11_bf16_compile": dict(_STRONG, lr=1.1e-2, **_CPU_LEVERS),
        # one-change rows on the sweep's best, `strong_lr8_bf16_compile` (67.82 % over three seeds, 0.18 short of
        # 68): larger depthwise kernels where the receptive field is smallest, 5x5 in the four 32x32 blocks, paid
        # for with squeeze-excitation's parameters (no gain in its own row; 98,133 parameters); warm-up and
        # cosine instead of one-cycle; heavier augmentation (cutout, 8x8, DeVries & Taylor): tiny networks
        # underfit, so it may as well cost accuracy
        "strong_lr8_k5_bf16_compile": dict(_STRONG8_CPU, se=0, kernel=5, kernel_blocks="0,1,2,3"),
        "strong_lr8_warmcos_bf16_compile": dict(_STRONG8_CPU, lr_schedule="warmcos"),
        "strong_lr8_cutout_bf16_compile": dict(_STRONG8_CPU, cutout=8),
        # a higher learning rate for batch norm (its 2,458 weights and biases at 4x the rate, as fast SGD
        # recipes run their BN biases): BN sets each channel's scale and offset, which Adam moves at most ~lr a step.
        # AdamW's decoupled decay is lr x weight_decay a step, so BN's weights also decay 4x as fast: the row
        # measures the two together (seed 0: -0.93 points, and less fit on the training images, 75.8 % against 79.0)
        "strong_lr8_bnlr_bf16_compile": dict(_STRONG8_CPU, bn_lr=4.0),
        # identity init alone (in strong_stem it came with the stem and the shifts): each block's last BN weight
        # at 0, so that every block starts as its shortcut (Goyal et al. 2017). Seed 0: -0.91 points, slower from
        # the first 1,000 steps (22.8 % against 26.2-26.9) and less fit (77.6 % on the training images against 79.0)
        "strong_lr8_zinit_bf16_compile": dict(_STRONG8_CPU, zero_init=True),
        # half the weight decay: AdamW shrinks each weight by lr x weight_decay a step, so doubling the rate
        # (strong's 4e-3 to 8e-3) doubled the decay too; 0.025 gives back strong's, at lr8's step. The network
        # underfits (79 % on its training images), and decay is a regulariser. Seed 0: ahead of all three baseline
        # seeds from 4k to 9k (60.1 % at 4k against 56.8-59.0), then flat over the last 1,000 steps (67.33 to 67.31)
        # while the baseline seeds gain 1.0-1.3: -0.51 points at the end, and more fit (80.4 % on the training
        # images against 79.0)
        "strong_lr8_halfwd_bf16_compile": dict(_STRONG8_CPU, weight_decay=0.025),
        # the other direction: twice the decay (0.1). Against seed 0 of the baseline (68.52 %: the same data order
        # and initial weights), halving the decay cost 1.21 points; less fit on the training images might buy
        # more on the test images. Seed 0: 63.99 % (-4.53; 63.82 with six views), less fit (71.8 % on the training
        # images against 79.0), behind from 3k and falling from 7k to 9k (61.6 to 59.0 %) while the training loss
        # falls. Both sides of lr8's 0.05 lose: the decay's peak is near it
        "strong_lr8_dblwd_bf16_compile": dict(_STRONG8_CPU, weight_decay=0.1),
        # no label smoothing: a regulariser, and the network fits its training images only to 79 %. Alone on the
        # paper recipe (`smooth`) it cost 1.40 points against the same seed (54.82 % against 56.22); `strong`
        # took it on untested, with the changes that should help. Seed 0: 67.54 % (-0.98 against lr8's seed 0; 68.27
        # with six views, -0.27) and no better fit (79.1 % on the training images against 79.0): behind from 1k on
        "strong_lr8_nosmooth_bf16_compile": dict(_STRONG8_CPU, label_smoothing=0.0),
        # outside the budget, a reference and never a candidate (OVER_BUDGET): lr8 with every block 1.43x as wide
        # (60 and 180 channels for 42 and 128: 181,889 parameters, ~2x the multiply-adds), to measure whether the
        # parameter budget is what holds lr8 at 79 % on its training images and 68 % on the test images. Seed 0:
        # 71.48 % (+2.96 against lr8's seed 0; 72.01 with six views, +3.47), 86.3 % on the training images (lr8:
        # 79.0), ahead from the first evaluation (31.5 % at 1k against 26.6): it binds. 68 min on 2 CPU cores
        "strong_lr8_wide_bf16_compile": dict(_STRONG8_CPU, widths="60x8,180x2"),
    },
    "dcgan": {
        "guard": dict(collapse_guard=True),
        "bf16": dict(precision="bf16"),   # the fastest DCGAN step in benchmarks/cpu_levers.py
        "ema": dict(ema=0.999),
        "ttur": dict(lr=1e-4, lr_D=4e-4),
        # the one change that helped (ema), with both learning rates decaying linearly to 0; and the decay alone
        "ema_decay": dict(ema=0.999, lr_schedule="linear"),
        # a longer average (Yazici et al. 2019). The EMA's warm-up, decay min(0.9999, (1 + t) / (10 + t)), reaches
        # 0.9999 only at step 90,000: at 46k-50k its decay is 0.99980-0.99982, a horizon of ~5,000 steps (~1,000
        # for `ema`). Its averaged batch-norm statistics lag the averaged weights more: the FID with
        # sample_bn=batch shows by how much
        "ema_long": dict(ema=0.9999),
        "decay": dict(lr_schedule="linear"),
        "sn_hinge": dict(spectral_norm=True, loss="hinge"),
        # the usual stabilisers together (SAGAN/BigGAN-style settings: betas 0, 0.9)
        "stable": dict(spectral_norm=True, loss="hinge", lr=1e-4, lr_D=4e-4, beta1=0.0, beta2=0.9, ema=0.999),
        # the paper's per-label idea as one class-conditional GAN; 45 channels keep G + D within 980,076
        "conditional": dict(conditional=True, ngf=45, ndf=45),
        # DiffAugment (Zhao et al.) alone and with the stabilisers: D sees only augmented images
        "diffaug": dict(diffaug="color,translation,cutout"),
        "stable_diffaug": dict(spectral_norm=True, loss="hinge", lr=1e-4, lr_D=4e-4, beta1=0.0, beta2=0.9, ema=0.999,
                               diffaug="color,translation,cutout"),
        "conditional_stable": dict(conditional=True, ngf=45, ndf=45, spectral_norm=True, loss="hinge", lr=1e-4,
                                   lr_D=4e-4, beta1=0.0, beta2=0.9, ema=0.999),
        # the budget moved from D to G (723,100 + 248,196 = 971,296 parameters): in every run D pulls ahead late
        # (D(x) rising to ~0.9) while the FID flattens, and a faster D (ttur) did worse
        "wide_g": dict(ngf=50, ndf=39),
        # `ema` with mirrored real images: D(x) rises late while the FID flattens (128 epochs of the same 50,000
        # images), and x-flips double what D sees at no cost; in bf16, for a CPU session too short for fp32
        # (its baseline is then `bf16`)
        "ema_flip_bf16": dict(ema=0.999, hflip=True, precision="bf16"),
        # G's budget moved from the noise projection to high resolution: the paper's G has 46 % of its weights
        # in its first layer (nz -> 184 x 4x4) and 70,000 at 16x16 and 32x32; this one has 128 channels at 4x4
        # and 8x8, 64 at 16x16, a 32-channel 32x32 stage and a 3x3 conv to RGB (632,352 + 344,264 = 976,616
        # parameters, D the paper's); otherwise `ema_flip_bf16`, so that the pair isolates the G (1.3x the
        # paper's step time; baseline `bf16`)
        "hires_ema_flip_bf16": _HIRES,
        # round two, D against the hires G: the D:G step ratio both ways, two D updates per G update
        # (each on its own batch) or D at half G's learning rate; and the budget moved from G's 4x4 stage to D
        # (G 96 channels at 4x4, 515,552; D 64, 128, 158 channels at 16x16, 8x8, 4x4, 460,828: 976,380)
        "hires_d2": dict(_HIRES, d_steps=2),
        "hires_slow_d": dict(_HIRES, lr_D=1e-4),
        "hires_big_d": dict(_HIRES, g_widths="96,128,64,32", d_widths="64,128,158"),
        # and G's shape carried on, the one change that has paid (-5.2 FID at 46k against `ema_flip_bf16`): more
        # of the 4x4 projection moved up, to 96 channels at 16x16 and 52 at 32x32 (G 96, 128, 96, 52: 628,836 +
        # the paper's D: 973,100; 1.7x hires's G multiply-adds: 3.5 steps/s against hires's 5.5 on 2 CPU cores,
        # `benchmarks/cpu_levers.py --only dcgan --levers bf16 --set g_widths=... --set ema=0.999 --set hflip=true`)
        "hires_wide_hr": dict(_HIRES, g_widths="96,128,96,52"),
        # twice the images per step (batch 256, the paper's 128): the GAN budget bounds parameters and
        # steps, not the batch, and larger batches help GANs (Brock et al. 2019); it costs twice the compute
        # of a step, which the row's compute column shows. Screened (seed 0 to 16k): 1,000-sample FID 70.45 at 16k,
        # +0.72 against hires's seeds there (69.73, 68.46-70.89: inside), level with seed 0 all the way (106.2
        # against 112.4 at 4k, 76.1 against 76.7 at 10k); D(x) / D(G(z)) 0.61 / 0.39 (hires 0.63 / 0.37).
        # Twice the images a step buy nothing by 16k: not carried on
        "hires_b256": dict(_HIRES, batch_size=256),
        # outside the budget, a reference and never a candidate (OVER_BUDGET): hires with every layer of G and D
        # 1.41x as wide (G 181, 181, 90, 45; D 65, 130, 260: 1,141,425 + 684,060 = 1,825,485 parameters, 1.86x the
        # budget; ~2x the multiply-adds), to measure whether the parameter budget is what holds hires at FID 33.
        # Screened (seed 0 to 16k): 1,000-sample FID 68.97 at 16k, -0.76 against hires's seeds there (69.73,
        # 68.46-70.89: inside), level with seed 0 all the way (108.4 against 112.4 at 4k, 76.2 against 76.7 at
        # 10k); D(x) / D(G(z)) 0.62 / 0.38 (hires 0.63 / 0.37). 1.86x the parameters buy nothing by 16k;
        # carried on to 50k, as parameters may pay only late. They do: the whole run (seed 0) scores FID 31.25 at
        # 50k (31.26 at 46k), -2.10 against hires's seed 0 (33.35) and below its seeds' range (32.95-33.37); its
        # 1,000-sample sweep lies below the range of hires's seeds at every snapshot from 20k on: it binds
        "hires_wide_all": dict(_HIRES, g_widths="181,181,90,45", d_widths="65,130,260"),
    },
}
VARIANTS["fid"] = {name: {} for name in VARIANTS["dcgan"]}   # the FID of that DCGAN variant's run
# one-change rows on another variant: the ablation measures each against that variant, not the paper recipe
ONE_CHANGE_OF = {
    "classifier": {
        **{f"strong_lr8_{change}_bf16_compile": "strong_lr8_bf16_compile"
           for change in ("k5", "warmcos", "cutout", "bnlr", "zinit", "halfwd", "dblwd", "nosmooth", "wide")},
        "strong_stem_whiten_bf16_compile": "strong_stem_bf16_compile"},
    "dcgan": {name: "hires_ema_flip_bf16"
              for name in ("hires_d2", "hires_slow_d", "hires_big_d", "hires_wide_hr", "hires_b256", "hires_wide_all")},
}


def batch_bn_fid(profile: str) -> dict:
    """The FID fields of a run's score with batch statistics (``fid-...-batchbn``): the profile's first scored
    snapshot, no sweep. The book's table reads it; the queue scripts score it (``--set`` each)."""
    return dict(sample_bn="batch", sweep_samples=0, snapshots=make_config("fid", profile).snapshots.split(",")[0])


def _lever_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(Training)} - {f.name for f in dataclasses.fields(Common)}
# the parameter budgets of "Beyond the paper" (the paper's own counts: its classifier is under 100,000)
BUDGET = {"classifier": 100_000, "dcgan": 980_076}
# variants over those budgets: references that measure whether the budget binds, listed in the ablation but
# never its best change nor a target's recipe
OVER_BUDGET = {"classifier": {"strong_lr8_wide_bf16_compile"}, "dcgan": {"hires_wide_all"}}


def speed_levers(experiment: str) -> set[str]:
    """The variants that are the paper's recipe with speed levers only (``Training``'s fields: they change
    the rounding, not the recipe): the ablation lists them, but never as its best change."""
    return {name for name, fields in VARIANTS[experiment].items() if fields and set(fields) <= _lever_fields()}


def baseline_of(experiment: str, variant: str) -> str:
    """The variant a variant's ablation row is measured against: the variant it makes one change to
    (``ONE_CHANGE_OF``), else the paper recipe (""), or, for a change of the recipe made with speed levers,
    the speed-lever variant with those same levers (`late_bf16_compile`: `bf16_compile`), so that the row
    shows the change and not the other rounding."""
    if variant in ONE_CHANGE_OF.get(experiment, {}):
        return ONE_CHANGE_OF[experiment][variant]
    fields = VARIANTS[experiment].get(variant, {})
    levers = _lever_fields()
    used = {k: v for k, v in fields.items() if k in levers}
    if not used or set(fields) <= levers:
        return ""
    same = [name for name in speed_levers(experiment) if VARIANTS[experiment][name] == used]
    if not same:
        raise ConfigError(f"{experiment} variant {variant!r} uses the speed levers {used} of no speed-lever variant")
    return same[0]


class ConfigError(ValueError):
    pass


def field_names(experiment: str) -> list[str]:
    return [f.name for f in dataclasses.fields(_cls(experiment))]


def _cls(experiment: str):
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {experiment!r}; choose one of {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[experiment]


def make_config(experiment: str, profile: str = "paper", **overrides):
    """The config of ``experiment`` for ``profile``, with ``overrides`` (None values are ignored)."""
    cls = _cls(experiment)
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    variant = overrides.get("variant")
    if variant and variant not in VARIANTS[experiment]:
        raise ConfigError(f"unknown {experiment} variant {variant!r}; choose one of {sorted(VARIANTS[experiment])}")
    # a smaller profile's sizes win over a variant's (strong_stem_bf16_compile's history row every 1,000 steps)
    values = {**(VARIANTS[experiment][variant] if variant else {}), **_PROFILE_OVERRIDES[experiment][profile],
              "profile": profile}
    names = field_names(experiment)
    for key, value in overrides.items():
        if key not in names:
            raise ConfigError(f"unknown {experiment} config field {key!r}; valid fields: {', '.join(names)}")
        if value is not None:
            values[key] = value
    cfg = cls(**values)
    validate(cfg)
    return cfg


SCHEDULES = ("constant", "cosine", "linear", "onecycle", "warmcos")


def validate(cfg) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        expected = {"int": int, "float": (int, float), "str": str, "bool": bool}[f.type]
        if not isinstance(value, expected) or (f.type == "int" and isinstance(value, bool)):
            raise ConfigError(f"config field {f.name!r} must be {f.type}, got {value!r}")
    if getattr(cfg, "lr_schedule", "constant") not in SCHEDULES:
        raise ConfigError(f"lr_schedule must be one of {', '.join(SCHEDULES)}; got {cfg.lr_schedule!r}")
    if isinstance(cfg, ClassifierConfig) and (cfg.kernel < 1 or cfg.kernel % 2 == 0
                                              or min(cfg.stem, cfg.cutout, cfg.tta_shift) < 0):
        raise ConfigError(f"kernel must be odd and positive, stem, cutout and tta_shift at least 0; got kernel "
                          f"{cfg.kernel}, stem {cfg.stem}, cutout {cfg.cutout}, tta_shift {cfg.tta_shift}")
    if getattr(cfg, "whiten", False) and (cfg.stem % 2 or not 0 < cfg.stem <= 54):
        raise ConfigError(f"whiten starts the stem as + and - the top stem/2 directions of the 27-dimensional "
                          f"3x3 RGB patches: it needs an even stem of 2 to 54 channels; got stem {cfg.stem}")
    if getattr(cfg, "bn_lr", 1.0) <= 0:
        raise ConfigError(f"bn_lr multiplies the learning rate of batch norm's weights and biases (1: the same "
                          f"rate); it must be positive, got {cfg.bn_lr!r}")
    if getattr(cfg, "loss", "bce") not in ("bce", "hinge"):
        raise ConfigError(f"loss must be 'bce' or 'hinge', got {cfg.loss!r}")
    from .data import DIFFAUG_OPS
    if any(op not in DIFFAUG_OPS for op in getattr(cfg, "diffaug", "").split(",") if op):
        raise ConfigError(f"diffaug is a comma-separated list of {', '.join(DIFFAUG_OPS)} ('' for none), "
                          f"got {cfg.diffaug!r}")
    if not 0 <= getattr(cfg, "ema", 0.0) < 1:
        raise ConfigError(f"ema is a decay in [0, 1) (0: off), got {cfg.ema!r}")
    if hasattr(cfg, "widths"):
        from .models import parse_blocks, parse_widths
        try:
            widths, blocks = parse_widths(cfg.widths), parse_blocks(cfg.downsample)
            blocks += parse_blocks(cfg.kernel_blocks)
        except ValueError:
            raise ConfigError(f"widths is like '42x8,128x2', downsample and kernel_blocks like '4,8'; got "
                              f"{cfg.widths!r}, {cfg.downsample!r}, {cfg.kernel_blocks!r}") from None
        if not widths or min(widths) <= 0 or any(not 0 <= b < len(widths) for b in blocks):
            raise ConfigError(f"downsample {cfg.downsample!r} and kernel_blocks {cfg.kernel_blocks!r} must name "
                              f"blocks 0..{len(widths) - 1} of widths {cfg.widths!r}")
    for name, counts, where in (
            ("g_widths", (3, 4), "G's channels at 4x4, 8x8, 16x16 and optionally 32x32, like '128,128,64,32'"),
            ("d_widths", (3,), "D's channels at 16x16, 8x8 and 4x4, like '64,128,160'")):
        if getattr(cfg, name, ""):
            from .models import parse_widths
            try:
                widths = parse_widths(getattr(cfg, name))
            except ValueError:
                widths = ()
            if len(widths) not in counts or min(widths) <= 0:
                raise ConfigError(f"{name} is {where} ('' for the paper's); got {getattr(cfg, name)!r}")
    if getattr(cfg, "d_steps", 1) < 1:
        raise ConfigError(f"d_steps is the number of D updates per step, at least 1; got {cfg.d_steps!r}")
    if isinstance(cfg, FIDConfig) and (cfg.until < 0 or (cfg.until and not cfg.sweep_samples)):
        raise ConfigError(f"until is the step a screened run stopped at (train-dcgan --until; 0: the whole run), "
                          f"scored by its sweep: it needs sweep_samples > 0; got until {cfg.until}, "
                          f"sweep_samples {cfg.sweep_samples}")
    if isinstance(cfg, FIDConfig) and cfg.batch_size < 0:
        raise ConfigError(f"batch_size is the Inception batch (0: chosen by device), got {cfg.batch_size}")
    if getattr(cfg, "sample_bn", "running") not in ("running", "batch"):
        raise ConfigError(f"sample_bn must be 'running' or 'batch', got {cfg.sample_bn!r}")
    if getattr(cfg, "precision", "fp32") not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be 'fp32' or 'bf16', got {cfg.precision!r}")
    every = getattr(cfg, "eval_every", None) or getattr(cfg, "log_every", None)
    if every is not None:
        if every <= 0 or cfg.ckpt_every % every:
            raise ConfigError(f"ckpt_every ({cfg.ckpt_every}) must be a positive multiple of "
                              f"{'eval_every' if hasattr(cfg, 'eval_every') else 'log_every'} ({every})")
        if cfg.steps <= 0 or cfg.batch_size <= 0:
            raise ConfigError("steps and batch_size must be positive")


def parse_value(experiment: str, key: str, text: str):
    """Parse ``text`` for field ``key`` (used by ``--set key=value`` on the command line)."""
    types = {f.name: f.type for f in dataclasses.fields(_cls(experiment))}
    if key not in types:
        raise ConfigError(f"unknown {experiment} config field {key!r}; valid fields: {', '.join(types)}")
    kind = types[key]
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        return {"int": int, "float": float, "str": str}[kind](text)
    except ValueError:
        raise ConfigError(f"config field {key!r} must be {kind}, got {text!r}") from None


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
