import re
import tomllib
from pathlib import Path

import pytest

from effcifar.__main__ import main
from effcifar.config import ConfigError, make_config, parse_value

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
