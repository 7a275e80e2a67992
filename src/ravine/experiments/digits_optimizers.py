"""A small real demo: every preset trains the same MLP on scikit-learn's ``load_digits`` (shipped offline)."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from ravine.errors import ConfigError

__all__ = ["DEMO_LEARNING_RATES", "DigitsComparison", "PresetRun", "compare_on_digits"]

DEMO_LEARNING_RATES: dict[str, float] = {
    "sgd": 0.2,
    "momentum": 0.05,
    "adagrad": 0.05,
    "rmsprop": 1e-3,
    "adam": 3e-3,
    "adamw": 3e-3,
    "radam": 3e-3,
}
"""Learning rates used by :func:`compare_on_digits` (hand-picked for this problem, not tuned per seed)."""


@dataclasses.dataclass(frozen=True)
class PresetRun:
    """One preset's run: training loss per step and the final numbers."""

    name: str
    lr: float
    losses: list[float]
    final_train_loss: float
    val_accuracy: float
    effective_lr_median: float
    """Median over all weights of η_t/σ_t at the last step."""


@dataclasses.dataclass(frozen=True)
class DigitsComparison:
    """All presets' runs on the digits data."""

    steps: int
    batch_size: int
    seed: int
    hidden: int
    runs: list[PresetRun]


def _digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    split = int(0.8 * len(y))
    return x[:split], y[:split], x[split:], y[split:]


def compare_on_digits(
    *,
    steps: int = 300,
    presets: Sequence[str] | None = None,
    batch_size: int = 64,
    hidden: int = 32,
    seed: int = 0,
) -> DigitsComparison:
    """Train a 64-``hidden``-10 MLP with each preset from the same initial weights and mini-batches.

    Args:
        steps: updates per preset (≥ 1).
        presets: names from :data:`ravine.optim.PRESETS` (default: all).
        batch_size: mini-batch size.
        hidden: width of the hidden layer.
        seed: seeds the split, the initial weights and the batch order.

    Runs with one torch thread (restored afterwards): this model is far too small to gain from more, and
    on a loaded machine extra threads only contend.
    """

    names = list(presets) if presets is not None else list(DEMO_LEARNING_RATES)
    unknown = [n for n in names if n not in DEMO_LEARNING_RATES]
    if unknown:
        raise ConfigError(
            f"compare_on_digits: unknown presets {unknown}; choose from {list(DEMO_LEARNING_RATES)}"
        )
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"compare_on_digits: steps must be an integer >= 1, got {steps=}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _compare(names, steps, batch_size, hidden, seed)
    finally:
        torch.set_num_threads(threads)


def _compare(names: list[str], steps: int, batch_size: int, hidden: int, seed: int) -> DigitsComparison:
    from ravine.optim import _presets

    x_train, y_train, x_val, y_val = _digits(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    batches = torch.randint(0, len(y_train), (steps, batch_size), generator=generator)
    torch.manual_seed(seed)
    template = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 10))
    runs = []
    for name in names:
        model = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 10))
        model.load_state_dict(template.state_dict())
        lr = DEMO_LEARNING_RATES[name]
        factory: Any = getattr(_presets, name)
        opt = factory(model.parameters(), lr=lr)
        losses = []
        for idx in batches:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            torch.autograd.backward(loss)
            opt.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            train_loss = float(torch.nn.functional.cross_entropy(model(x_train), y_train))
            accuracy = float((model(x_val).argmax(dim=1) == y_val).double().mean())
        weights = torch.cat([opt.effective_lr(p).flatten() for p in model.parameters()])
        runs.append(
            PresetRun(
                name=name,
                lr=lr,
                losses=losses,
                final_train_loss=train_loss,
                val_accuracy=accuracy,
                effective_lr_median=statistics.median(weights.double().tolist()),
            )
        )
    return DigitsComparison(steps=steps, batch_size=batch_size, seed=seed, hidden=hidden, runs=runs)
