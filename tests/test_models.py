import pytest
import torch
from torch import nn

from effcifar.config import BUDGET, OVER_BUDGET, VARIANTS, make_config, to_dict
from effcifar.data import normalize, to_uint8
from effcifar.models import (
    Classifier,
    Discriminator,
    DSConv,
    Generator,
    build_classifier,
    build_dcgan,
    classifier_macs,
    count_params,
    dcgan_init,
    layer_table,
    whitening_filters,
)


def test_parameter_counts_exact():
    assert count_params(Classifier()) == 94_005          # paper: 98,068 (see models.py docstring)
    assert count_params(Classifier()) < 100_000
    assert count_params(Generator(nz=100, ngf=46)) == 635_812
    assert count_params(Discriminator(ndf=46)) == 344_264
    assert count_params(Generator()) + count_params(Discriminator()) == 980_076


def test_classifier_structure_is_depthwise_separable():
    model = Classifier()
    dsconvs = [m for m in model.modules() if isinstance(m, DSConv)]
    assert len(dsconvs) == 20                              # 10 blocks x 2
    for ds in dsconvs:
        dw, pw = ds[0], ds[1]
        assert dw.kernel_size == (3, 3) and dw.groups == dw.in_channels == dw.out_channels
        assert pw.kernel_size == (1, 1) and pw.groups == 1
    widths = [b.bn2.num_features for b in model.blocks]
    assert widths == [42] * 8 + [128] * 2
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert model.fc.in_features == 128 and model.fc.out_features == 100


def test_layer_table_adds_up():
    for model in (Classifier(), Generator(), Discriminator(), Generator(ngf=45, num_classes=100)):
        assert sum(r["params"] for r in layer_table(model)) == count_params(model)
    rows = layer_table(Classifier())
    assert [r["output"] for r in (rows[3], rows[4], rows[8], rows[10])] == ["42x32x32", "42x16x16", "128x8x8", "100"]
    assert layer_table(Generator())[-1]["output"] == "3x32x32" and layer_table(Discriminator())[-1]["output"] == "1x1x1"


def test_downsampling_saves_compute():
    ratio = classifier_macs(Classifier(downsample_blocks=())) / classifier_macs(Classifier())
    assert 3.5 < ratio < 4.0


def test_shapes_and_ranges():
    torch.manual_seed(0)
    x = torch.randn(5, 3, 32, 32)
    assert Classifier()(x).shape == (5, 100)
    g = Generator()
    g.apply(dcgan_init)
    img = g(torch.randn(5, 100))
    assert img.shape == (5, 3, 32, 32) and img.abs().max() <= 1
    p = Discriminator()(img)
    assert p.shape == (5,) and ((p > 0) & (p < 1)).all()


def test_generator_widths_spend_the_budget_at_high_resolution():
    """`g_widths`: G's channels per resolution; a fourth width adds a 32x32 stage and a 3x3 conv to RGB."""
    paper = Generator()
    assert Generator(widths=(184, 92, 46)).state_dict().keys() == paper.state_dict().keys()   # snapshots load
    assert count_params(Generator(widths=(184, 92, 46))) == count_params(paper)
    g = Generator(widths=(128, 128, 64, 32))
    assert count_params(g) == 632_352 and count_params(g.main[0]) == 100 * 128 * 16   # paper: 100 * 184 * 16
    assert [r["output"] for r in layer_table(g)][-2:] == ["3x32x32", "3x32x32"]
    g.apply(dcgan_init)
    assert g(torch.randn(2, 100)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="channel counts"):
        Generator(widths=(128, 64))


def test_discriminator_widths_reshape_d_and_the_papers_widths_are_the_paper():
    """`d_widths`: D's channels at 16x16, 8x8, 4x4 (the paper's: ndf, 2 ndf, 4 ndf); the conditional
    projection takes the 4x4 stage's width."""
    paper = Discriminator()
    assert Discriminator(widths=(46, 92, 184)).state_dict().keys() == paper.state_dict().keys()
    assert count_params(Discriminator(widths=(46, 92, 184))) == count_params(paper) == 344_264
    d = Discriminator(widths=(64, 128, 158))
    assert count_params(d) == 460_828 and count_params(d.main[0]) == 3 * 64 * 16
    assert d(torch.randn(2, 3, 32, 32)).shape == (2,)
    cond = Discriminator(widths=(64, 128, 158), num_classes=100)
    assert cond.embed.weight.shape == (100, 158) and cond(torch.randn(2, 3, 32, 32), torch.tensor([0, 5])).shape == (2,)
    with pytest.raises(ValueError, match="channel counts"):
        Discriminator(widths=(64, 128))


def test_dcgan_init():
    torch.manual_seed(0)
    g = Generator()
    g.apply(dcgan_init)
    conv = g.main[0].weight
    assert abs(conv.mean().item()) < 1e-3 and abs(conv.std().item() - 0.02) < 1e-3
    bn = g.main[1]
    assert abs(bn.weight.mean().item() - 1) < 0.01 and abs(bn.weight.std().item() - 0.02) < 0.01
    assert (bn.bias == 0).all()


def test_every_variant_keeps_the_papers_parameter_budget_except_the_references_over_it():
    """Beyond the paper: at most 100,000 classifier parameters and 980,076 for G + D; the references that
    OVER_BUDGET names are over it (so that the tables can leave them out of the verdicts)."""
    clf = {name: count_params(build_classifier(to_dict(make_config("classifier", variant=name))))
           for name in ["", *VARIANTS["classifier"]]}
    over = OVER_BUDGET["classifier"]
    assert max(v for k, v in clf.items() if k not in over) <= BUDGET["classifier"] == 100_000, clf
    assert min(clf[k] for k in over) > 100_000 and clf["strong_lr8_wide_bf16_compile"] == 181_889
    assert clf["se"] == 99_373 and clf["strong_lr8_k5_bf16_compile"] == 98_133
    gan = {name: sum(count_params(net) for net in build_dcgan(to_dict(make_config("dcgan", variant=name))))
           for name in ["", *VARIANTS["dcgan"]]}
    over = OVER_BUDGET["dcgan"]
    assert max(v for k, v in gan.items() if k not in over) <= BUDGET["dcgan"] == 980_076, gan
    assert min(gan[k] for k in over) > 980_076 and gan["hires_wide_all"] == 1_141_425 + 684_060 == 1_825_485
    assert gan["wide_g"] == 971_296
    assert gan["hires_ema_flip_bf16"] == gan["hires_d2"] == gan["hires_slow_d"] == gan["hires_b256"] == 976_616
    assert gan["hires_big_d"] == 515_552 + 460_828 == 976_380
    assert gan["hires_wide_hr"] == 628_836 + 344_264 == 973_100


def test_conditional_dcgan_uses_the_labels():
    torch.manual_seed(0)
    G, D = build_dcgan(to_dict(make_config("dcgan", variant="conditional")))
    G.apply(dcgan_init)
    D.apply(dcgan_init)
    z = torch.randn(1, 100).repeat(3, 1)
    with torch.no_grad():
        x = G.eval()(z, torch.tensor([0, 0, 7]))
        assert torch.equal(x[0], x[1]) and not torch.equal(x[0], x[2])       # same noise, other class
        assert torch.equal(G(z), G(z, torch.tensor([0, 1, 2])))            # no labels: classes in turn
        assert not torch.equal(D.eval()(x, torch.tensor([0, 0, 0])), D(x, torch.tensor([5, 5, 5])))
    with pytest.raises(ValueError, match="labels"):
        D(x)


class _LabelPainter(nn.Module):
    """A stand-in conditional generator whose image is a flat grey that spells the label it was given."""
    nz, num_classes = 100, 100

    def forward(self, z, y):
        return (y.float() / 99 * 2 - 1).view(-1, 1, 1, 1).expand(len(z), 3, 32, 32)


class _LabelReader(nn.Module):
    """A stand-in classifier that reads _LabelPainter's label back (normalised input), off by ``shift``
    for the classes below ``wrong_below``."""
    def __init__(self, shift: int = 0, wrong_below: int = 0):
        super().__init__()
        self.shift, self.wrong_below = shift, wrong_below

    def forward(self, x):
        from effcifar.data import MEAN, STD
        y = ((x[:, 0, 0, 0] * STD[0] + MEAN[0]) * 99).round().long()
        y = torch.where(y < self.wrong_below, (y + self.shift) % 100, y)
        return nn.functional.one_hot(y, 100).float()


def test_a_conditional_generator_is_scored_on_the_classes_in_turn_whatever_the_batch():
    from effcifar.fid import generate
    from effcifar.report import label_agreement
    images = generate(_LabelPainter(), 250, seed=0, batch_size=64)        # 64: not a multiple of 100
    named = _LabelReader()(normalize(images)).argmax(1)
    assert torch.equal(named, torch.arange(250) % 100)
    assert label_agreement(_LabelPainter(), _LabelReader(), n=1000)["agreement"] == 1.0
    half = label_agreement(_LabelPainter(), _LabelReader(shift=1, wrong_below=50), n=1000)
    assert half["agreement"] == 0.5 and half["per_class"] == [0.0] * 50 + [1.0] * 50


def test_class_grid_varies_the_label_along_columns_of_shared_noise():
    from effcifar.report import class_grid
    torch.manual_seed(0)
    G = build_dcgan(to_dict(make_config("dcgan", variant="conditional")))[0]
    G.apply(dcgan_init)
    noise = torch.randn(3, 100)
    grid = class_grid(G, noise, [4, 30]).view(2, 3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(grid[1, 2], to_uint8(G.eval()(noise[2:3], torch.tensor([30])))[0])
    assert not torch.equal(grid[0, 2], grid[1, 2])
    with pytest.raises(ValueError, match="conditional"):
        class_grid(Generator(), noise, [4, 30])


@pytest.mark.parametrize("variant", ["conditional", "conditional_stable"])
def test_conditional_discriminator_starts_unsaturated(variant):
    """At initialisation the projection term must not swamp the score: D(x) away from 0 and 1 (with
    nn.Embedding's default N(0, 1) the scores were about +-200 and the BCE losses of the first 1,000
    steps averaged 30-44)."""
    torch.manual_seed(0)
    D = build_dcgan(to_dict(make_config("dcgan", variant=variant)))[1]
    D.apply(dcgan_init)
    y = torch.arange(64) % 100
    with torch.no_grad():
        score = D.train()(torch.rand(64, 3, 32, 32) * 2 - 1, y)
        score = score if D.logits else torch.logit(score.double())
    assert score.abs().max() < 10, score.abs().max()


def test_spectral_norm_discriminator_is_initialised_and_normalised():
    torch.manual_seed(0)
    d = Discriminator(46, spectral_norm=True, logits=True)
    d.apply(dcgan_init)
    raw = d.main[0].parametrizations.weight.original
    assert abs(raw.std().item() - 0.02) < 0.005               # DCGAN init reaches the raw weight
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    for _ in range(30):                                       # power iteration runs in training mode
        d(torch.randn(4, 3, 32, 32))
    for conv in (m for m in d.modules() if isinstance(m, nn.Conv2d)):
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
        assert abs(sigma - 1) < 0.05


def test_round_two_options_count_and_shape():
    """A stem (full 3x3 conv of RGB), the depthwise kernel and identity init (issue 44)."""
    assert count_params(Classifier(stem=24)) == 97_452   # strong_stem's network
    assert count_params(Classifier(stem=24, zero_init=True)) == 97_452
    assert count_params(Classifier(kernel=5)) == 94_005 + 16 * sum(
        m.in_channels for m in Classifier().modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
    assert count_params(Classifier(kernel=5, kernel_blocks=(0, 1, 2, 3))) == 98_133   # strong_lr8_k5's network
    k5 = Classifier(kernel=5, kernel_blocks=(0, 3))
    assert [b.conv1[0].kernel_size[0] for b in k5.blocks] == [5, 3, 3, 5] + [3] * 6
    assert [b.conv2[0].kernel_size[0] for b in k5.blocks] == [5, 3, 3, 5] + [3] * 6
    x = torch.randn(2, 3, 32, 32)
    for kw in (dict(stem=24), dict(kernel=5), dict(kernel=5, stem=16, zero_init=True)):
        assert Classifier(**kw)(x).shape == (2, 100)
    assert Classifier(stem=24).blocks[0].conv1[0].in_channels == 24
    assert isinstance(Classifier().stem, nn.Identity)   # the paper's network: no stem, its weights' names as before


def test_identity_init_starts_each_block_as_its_shortcut():
    torch.manual_seed(0)
    model = Classifier(zero_init=True).eval()
    x = torch.relu(torch.randn(2, 42, 32, 32))   # a block's input is a ReLU's output
    for block in model.blocks[1:4]:   # identity shortcuts
        assert torch.equal(block(x), x)
    assert not torch.equal(Classifier().eval().blocks[1](x), x)
    assert all(not b.bn2.weight.detach().any() for b in model.blocks)


def test_whitening_filters_decorrelate_the_patches_to_unit_variance():
    g = torch.Generator().manual_seed(0)
    images = torch.nn.functional.avg_pool2d(torch.randn(64, 3, 18, 18, generator=g), 3, 1)   # correlated pixels
    w = whitening_filters(images, 24, eps=1e-9)
    assert w.shape == (24, 3, 3, 3) and torch.equal(w[12:], -w[:12])
    out = torch.nn.functional.conv2d(images.double(), w[:12].double()).transpose(0, 1).reshape(12, -1)
    moments = out @ out.T / out.shape[1]   # uncentred, as the filters are: each patch's own second moments
    assert torch.allclose(moments, torch.eye(12, dtype=torch.float64), atol=1e-3)
    strongest = w[0].flatten() @ w[0].flatten()   # the first filter has the largest variance: the smallest weights
    assert strongest < w[11].flatten() @ w[11].flatten()
    for bad in (23, 0, 56):
        with pytest.raises(ValueError, match="even number of channels"):
            whitening_filters(images, bad)
