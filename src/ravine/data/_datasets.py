"""Dataset generators: MNIST-1D through its own offline generator, digits from scikit-learn."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ravine.errors import ConfigError

__all__ = ["Dataset", "digits", "mnist1d"]


@dataclass(frozen=True)
class Dataset:
    """A classification data set split into train and test.

    Attributes:
        name: Where the data came from, with its size and seed.
        x_train: Inputs of the training split, float32, shape (n_train, features).
        y_train: Labels of the training split, int64, shape (n_train,).
        x_test: Inputs of the test split, float32.
        y_test: Labels of the test split, int64.
        num_classes: Number of classes.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def num_features(self) -> int:
        """Length of one input vector."""
        return int(self.x_train.shape[1])

    def to(self, dtype: torch.dtype) -> Dataset:
        """The same data with inputs cast to ``dtype`` (labels stay int64)."""
        return Dataset(
            self.name,
            self.x_train.to(dtype),
            self.y_train,
            self.x_test.to(dtype),
            self.y_test,
            self.num_classes,
        )


def _cache_dir() -> Path:
    root = os.environ.get("RAVINE_CACHE") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "ravine"


def mnist1d(*, num_samples: int = 5000, seed: int = 42, train_split: float = 0.8) -> Dataset:
    """MNIST-1D (Greydanus, 2020): ten 1-D digit templates, shifted, scaled, sheared and noised; 40 features.

    Generated offline by the ``mnist1d`` package's ``make_dataset`` (never its downloader) and cached as
    ``.npz`` under ``$RAVINE_CACHE`` (default ``~/.cache/ravine``), since generation takes a few seconds.
    Inputs are standardised with the training split's mean and standard deviation.

    Args:
        num_samples: Total number of samples, train and test together (at least 20).
        seed: Seed of the generator; the same seed gives the same data.
        train_split: Share of the samples used for training, in (0, 1).

    Raises:
        ConfigError: If ``num_samples`` or ``train_split`` is out of range.
    """
    if num_samples < 20:
        raise ConfigError(f"mnist1d: num_samples must be at least 20, got {num_samples=}")
    if not 0.0 < train_split < 1.0:
        raise ConfigError(f"mnist1d: train_split must be in (0, 1), got {train_split=}")
    key = hashlib.sha256(f"{num_samples}-{seed}-{train_split}-v1".encode()).hexdigest()[:16]
    path = _cache_dir() / f"mnist1d-{key}.npz"
    if path.exists():
        arrays = dict(np.load(path))
    else:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = num_samples
        args.seed = seed
        args.train_split = train_split
        raw = make_dataset(args)
        arrays = {name: np.asarray(raw[name]) for name in ("x", "y", "x_test", "y_test")}
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(temporary, **arrays)
        temporary.replace(path)
    x_train = torch.as_tensor(arrays["x"], dtype=torch.float32)
    x_test = torch.as_tensor(arrays["x_test"], dtype=torch.float32)
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    return Dataset(
        name=f"MNIST-1D (n={num_samples}, seed={seed})",
        x_train=(x_train - mean) / std,
        y_train=torch.as_tensor(arrays["y"], dtype=torch.int64),
        x_test=(x_test - mean) / std,
        y_test=torch.as_tensor(arrays["y_test"], dtype=torch.int64),
        num_classes=10,
    )


def digits(*, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8×8 handwritten digits (1,797 images, shipped with the package), scaled to [0, 1].

    Args:
        seed: Seed of the train/test shuffle.
        test_fraction: Share of the samples held out for testing, in (0, 1).

    Raises:
        ConfigError: If ``test_fraction`` is out of range.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"digits: test_fraction must be in (0, 1), got {test_fraction=}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    num_test = round(len(y) * test_fraction)
    test, train = order[:num_test], order[num_test:]
    return Dataset(f"digits (seed={seed})", x[train], y[train], x[test], y[test], num_classes=10)
