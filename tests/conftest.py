from pathlib import Path

import pytest

from effcifar.fixtures import write_fake_cifar100

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> str:
    """A small dataset in the real CIFAR-100 python pickle format (train, test, meta)."""
    root = tmp_path_factory.mktemp("cifar")
    write_fake_cifar100(str(root), n_train=1000, n_test=300, seed=0)
    return str(root)


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path, monkeypatch):
    """Tests never download, and never touch the user's caches."""
    monkeypatch.setenv("EFFCIFAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("EFFCIFAR_DATA", raising=False)


def fixture_overrides(root: str, out, device: str = "cpu") -> dict:
    """Config fields for a run on the fixture; CPU by default, where runs are bitwise reproducible."""
    return dict(data=root, verify=False, download=False, out=str(out), device=device)
