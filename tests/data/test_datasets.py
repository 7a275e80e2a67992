"""The shipped and generated data sets: shapes, determinism, caching and bad arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ravine import ConfigError
from ravine.data import digits, mnist1d


def test_digits_split_is_seeded_and_complete() -> None:
    first, again = digits(seed=3), digits(seed=3)
    assert torch.equal(first.y_train, again.y_train)
    assert first.x_train.shape[0] + first.x_test.shape[0] == 1797
    assert first.x_train.shape[1] == 64
    assert float(first.x_train.min()) >= 0.0 and float(first.x_train.max()) <= 1.0
    assert set(first.y_train.tolist()) == set(range(10))
    assert not torch.equal(first.y_train, digits(seed=4).y_train)


def test_mnist1d_generates_offline_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAVINE_CACHE", str(tmp_path))
    data = mnist1d(num_samples=200, seed=7)
    assert data.x_train.shape == (160, 40) and data.x_test.shape == (40, 40)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert torch.allclose(data.x_train.mean(0), torch.zeros(40), atol=1e-5)
    assert len(list((tmp_path / "ravine").glob("mnist1d-*.npz"))) == 1
    cached = mnist1d(num_samples=200, seed=7)
    assert torch.equal(cached.x_train, data.x_train)
    assert data.to(torch.float64).x_test.dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_samples": 5}, "num_samples"), ({"train_split": 1.0}, "train_split")],
)
def test_mnist1d_rejects_bad_arguments(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        mnist1d(**kwargs)  # type: ignore[arg-type]


def test_digits_rejects_bad_fraction() -> None:
    with pytest.raises(ConfigError, match="test_fraction"):
        digits(test_fraction=0.0)
