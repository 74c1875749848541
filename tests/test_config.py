import re
import tomllib
from pathlib import Path

import pytest

from effcifar.__main__ import main
from effcifar.config import ONE_CHANGE_OF, VARIANTS, ConfigError, baseline_of, make_config, parse_value, speed_levers

ROOT = Path(__file__).resolve().parents[1]


def test_paper_profile_is_the_papers_budget():
    c = make_config("classifier", "paper")
    assert (c.steps, c.batch_size) == (10_000, 128)
    g = make_config("dcgan", "paper")
    assert g.steps == 50_000 and 46_000 % g.snapshot_every == 0 and (g.nz, g.ngf, g.ndf) == (100, 46, 46)
    assert (g.lr, g.beta1, g.batch_size) == (2e-4, 0.5, 128)
    f = make_config("fid", "paper")
    assert f.n_samples == 10_000 and f.n_reference == 0 and f.snapshots == "46000,50000"


def test_unknown_names_are_errors():
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        make_config("classifier", "fast")
    with pytest.raises(ConfigError, match="unknown classifier config field 'stepz'.*steps"):
        make_config("classifier", "quick", stepz=3)
    with pytest.raises(ConfigError, match="unknown experiment"):
        make_config("vae", "quick")
    with pytest.raises(ConfigError, match="must be int"):
        make_config("classifier", "quick", steps="10")
    with pytest.raises(ConfigError, match="multiple"):
        make_config("classifier", "quick", eval_every=300, ckpt_every=1000)
    with pytest.raises(ConfigError, match="precision must be 'fp32' or 'bf16'"):
        make_config("dcgan", "quick", precision="fp16")
    for bad in ("128,64", "128,x,64", "128,128,64,32,16", "128,0,64"):
        with pytest.raises(ConfigError, match="g_widths is G's channels"):
            make_config("dcgan", "quick", g_widths=bad)
    for bad in ("64,128", "64,128,160,32", "64,x,160"):
        with pytest.raises(ConfigError, match="d_widths is D's channels at 16x16, 8x8 and 4x4"):
            make_config("dcgan", "quick", d_widths=bad)
    with pytest.raises(ConfigError, match="d_steps is the number of D updates per step"):
        make_config("dcgan", "quick", d_steps=0)


def test_parse_value():
    assert parse_value("dcgan", "steps", "46000") == 46000
    assert parse_value("classifier", "hflip", "false") is False
    assert parse_value("classifier", "lr", "3e-4") == 3e-4
    with pytest.raises(ConfigError, match="must be int"):
        parse_value("dcgan", "steps", "many")


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    assert main(["train-classifier", "--profile", "smoke", "--set", "stepz=3"]) == 2
    assert "unknown classifier config field 'stepz'" in capsys.readouterr().err
    assert main(["train-dcgan", "--profile", "smoke", "--data", str(tmp_path), "--no-download",
                 "--out", str(tmp_path)]) == 2
    assert "cifar-100-python" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train-classifier", "--profile", "fast"])


def test_cli_trains_on_a_cifar_format_dataset(cifar_root, tmp_path, capsys):
    assert main(["train-classifier", "--profile", "smoke", "--data", cifar_root, "--no-verify", "--no-download",
                 "--out", str(tmp_path), "--seed", "3"]) == 0
    run = tmp_path / "classifier-smoke-seed3"
    assert {"config.json", "history.csv", "metrics.json", "provenance.json", "checkpoint.pt", "model.pt"} \
        <= {p.name for p in run.iterdir()}


def _pins_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(d.split("==") for d in deps)


def test_pins_agree_between_pyproject_and_environment_yml():
    pins = _pins_pyproject()
    assert all(v for v in pins.values())
    env = (ROOT / "environment.yml").read_text()
    env_pins = dict(re.findall(r"^\s+- ([A-Za-z0-9_.\-]+)==(\S+)\s*$", env, re.M))
    assert env_pins == pins
    assert "python=3.11" in env
    for name, version in {"torch": "2.14.1", "torchvision": "0.29.1", "pytorch-fid": "0.3.0",
                          "jupyter-book": "1.0.4.post1"}.items():
        assert pins[name] == version


def test_a_variant_is_a_named_set_of_fields_with_its_own_run_folder(monkeypatch):
    cfg = make_config("classifier", "paper", variant="onecycle", seed=2)
    assert (cfg.lr_schedule, cfg.lr, cfg.run_name) == ("onecycle", 4e-3, "classifier-paper-onecycle-seed2")
    assert make_config("classifier", "paper", variant="onecycle", lr=1e-2).lr == 1e-2   # fields win
    assert make_config("classifier", "paper").run_name == "classifier-paper-seed0"
    assert make_config("fid", "paper", variant="guard").run_name == "fid-paper-guard-seed0"
    with pytest.raises(ConfigError, match="unknown classifier variant 'fast'.*onecycle"):
        make_config("classifier", "paper", variant="fast")
    with pytest.raises(ConfigError, match="lr_schedule must be"):
        make_config("classifier", "paper", lr_schedule="step")
    # the paper's recipe with speed levers only: in the ablation, never its best change
    assert (speed_levers("classifier"), speed_levers("dcgan"), speed_levers("fid")) == ({"bf16_compile"}, {"bf16"},
                                                                                        set())
    # a change of the recipe made with levers is measured against the levers alone, not the fp32 recipe
    assert [baseline_of("classifier", v) for v in ("late_bf16_compile", "late", "bf16_compile", "")] == [
        "bf16_compile", "", "", ""]
    # a one-change row on another variant is measured against that variant
    assert baseline_of("classifier", "strong_lr8_k5_bf16_compile") == "strong_lr8_bf16_compile"
    assert baseline_of("dcgan", "hires_d2") == "hires_ema_flip_bf16"
    for experiment, parents in ONE_CHANGE_OF.items():   # each pair exists and rounds alike: the row shows the change
        for variant, parent in parents.items():
            child, base = (make_config(experiment, "paper", variant=v) for v in (variant, parent))
            assert (child.precision, child.compile) == (base.precision, base.compile), variant
            assert child.__dict__ != {**base.__dict__, "variant": variant}, variant
    with pytest.raises(ConfigError, match="no speed-lever variant"):   # levers without their own lever row
        monkeypatch.setitem(VARIANTS["dcgan"], "late_compile", dict(ngf=40, compile=True))
        baseline_of("dcgan", "late_compile")


def test_learning_rate_schedules():
    from effcifar.steps import lr_at
    const, cos, one, lin = (make_config("classifier", "paper", lr_schedule=s, lr=1e-3)
                            for s in ("constant", "cosine", "onecycle", "linear"))
    assert [lr_at(lin, s) for s in (0, 2500, 10_000)] == pytest.approx([1e-3, 7.5e-4, 0])
    assert lr_at(lin, 2500, lr=4e-3) == pytest.approx(3e-3)   # another peak (the DCGAN's lr_D), same shape
    assert {lr_at(const, s) for s in (0, 5000, 9999)} == {1e-3}
    assert lr_at(cos, 0) == pytest.approx(1e-3) and lr_at(cos, 5000) == pytest.approx(5e-4)
    assert lr_at(cos, 10_000) == pytest.approx(0, abs=1e-12)
    assert lr_at(one, 0) == pytest.approx(1e-3 / 25) and lr_at(one, 3000) == pytest.approx(1e-3)
    assert lr_at(one, 10_000) == pytest.approx(1e-3 / 25 / 1e4)
    rates = [lr_at(one, s) for s in range(0, 10_000, 100)]
    assert max(rates) == pytest.approx(1e-3) and rates.index(max(rates)) == 30


def test_warm_up_and_cosine():
    from effcifar.steps import lr_at
    cfg = make_config("classifier", "paper", lr_schedule="warmcos", lr=4e-3)
    assert lr_at(cfg, 0) == pytest.approx(4e-3 / 500) and lr_at(cfg, 499) == pytest.approx(4e-3)
    rates = [lr_at(cfg, s) for s in range(10_000)]
    assert max(rates) == pytest.approx(4e-3) and rates.index(max(rates)) == 499
    assert all(a >= b for a, b in zip(rates[499:], rates[500:])) and rates[-1] == pytest.approx(0, abs=1e-12)


def test_round_two_fields_are_checked():
    for bad in (dict(kernel=4), dict(kernel=0), dict(stem=-1), dict(cutout=-8), dict(tta_shift=-1),
                dict(lr_schedule="warmup"), dict(kernel_blocks="10"), dict(kernel_blocks="a"), dict(bn_lr=0),
                dict(whiten=True), dict(whiten=True, stem=25), dict(whiten=True, stem=56)):
        with pytest.raises(ConfigError):
            make_config("classifier", "paper", **bad)
