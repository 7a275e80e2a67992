"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates"; the torch-lr-finder / fastai recipe).

On a copy of the model and optimizer (the run is never touched), the learning rate grows exponentially from
``start_lr`` to ``end_lr`` over ``num_steps`` training steps on batches the run has seen; the loss of each
step is smoothed by an exponential moving average (bias-corrected), the sweep stops once the smoothed loss
exceeds ``diverge_factor`` × its lowest value, and the suggested rate is the one where the smoothed loss
falls fastest per decade of η (the steepest negative slope of loss against log η), skipping the first and
last few points whose slopes are unreliable. The "LR too small / too large" verdicts point here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ravine.diagnose._sandbox import copy_run, sandboxed
from ravine.diagnose._trials import Batch, LossFn
from ravine.errors import ConfigError

__all__ = ["LRRangeResult", "lr_range_test"]


@dataclass(frozen=True)
class LRRangeResult:
    """What :func:`lr_range_test` measured.

    Attributes:
        lrs: Learning rate of each step taken.
        losses: Raw loss of each step.
        smoothed: Bias-corrected EMA of the losses.
        suggested_lr: η at the steepest descent of the smoothed loss (NaN if the sweep was too short).
        min_loss_lr: η at the lowest smoothed loss.
        diverged_at: η at which the smoothed loss exceeded ``diverge_factor`` × its minimum (NaN if never).
        current_lr: The run's own learning rate, for comparison.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggested_lr: float
    min_loss_lr: float
    diverged_at: float
    current_lr: float

    def advice(self) -> str:
        """One line comparing the run's rate with the suggested one."""
        if not math.isfinite(self.suggested_lr):
            return "the sweep was too short to suggest a rate"
        ratio = self.current_lr / self.suggested_lr if self.suggested_lr > 0 else math.nan
        where = (
            (f"{1 / ratio:.3g}× below" if ratio < 1 else f"{ratio:.3g}× above")
            if math.isfinite(ratio) and ratio > 0
            else "unrelated to"
        )
        return (
            f"suggested η ≈ {self.suggested_lr:.3g} (steepest descent); the run's η {self.current_lr:.3g} is "
            f"{where} it"
        )


def _suggest(lrs: Sequence[float], smoothed: Sequence[float], skip_start: int, skip_end: int) -> float:
    logs = [math.log10(lr) for lr in lrs]
    lo, hi = skip_start, len(lrs) - skip_end
    if hi - lo < 3:
        return math.nan
    best, where = math.inf, math.nan
    for i in range(lo + 1, hi - 1):
        slope = (smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1])
        if slope < best:
            best, where = slope, lrs[i]
    return where


def lr_range_test(
    model: nn.Module,
    optimizer: Any,
    loss_fn: LossFn,
    batches: Sequence[Batch],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smooth: float = 0.05,
    diverge_factor: float = 5.0,
    skip_start: int = 5,
    skip_end: int = 3,
    seed: int = 0,
) -> LRRangeResult:
    """Sweep η exponentially on a copy and suggest a rate (see the module docstring).

    Args:
        model: The user's model (read only).
        optimizer: Its optimizer (copied with its state; every param group's lr is swept together, keeping
            their ratios to the first group).
        loss_fn: ``loss_fn(model(inputs), targets)``.
        batches: Batches the run has seen, cycled in order.
        start_lr: First η.
        end_lr: Last η.
        num_steps: Steps of the sweep (at most).
        smooth: EMA weight of each new loss (0 < smooth ≤ 1).
        diverge_factor: Stop when the smoothed loss exceeds this × its minimum.
        skip_start: Points skipped at the start when looking for the steepest slope.
        skip_end: Points skipped at the end.
        seed: Seed of dropout during the sweep.

    Example:
        >>> import torch
        >>> torch.manual_seed(0) and None
        >>> model = torch.nn.Linear(8, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=1e-6)
        >>> x = torch.randn(256, 8)
        >>> batches = [(x, x @ torch.ones(8, 1))]
        >>> result = lr_range_test(model, opt, torch.nn.functional.mse_loss, batches, num_steps=60)
        >>> 1e-3 < result.suggested_lr < 1.0, math.isfinite(result.diverged_at)
        (True, True)
    """
    if not (0 < start_lr < end_lr) or not math.isfinite(end_lr):
        raise ConfigError(f"lr_range_test: need 0 < start_lr < end_lr, got {start_lr=}, {end_lr=}")
    if num_steps < 2:
        raise ConfigError(f"lr_range_test: num_steps must be >= 2, got {num_steps=}")
    if not 0 < smooth <= 1:
        raise ConfigError(f"lr_range_test: smooth must be in (0, 1], got {smooth=}")
    if diverge_factor <= 1:
        raise ConfigError(f"lr_range_test: diverge_factor must be > 1, got {diverge_factor=}")
    batches = list(batches)
    if not batches:
        raise ConfigError(
            "lr_range_test: batches is empty; pass batches the run has seen (monitor.recent_batches)"
        )
    if optimizer is None or not getattr(optimizer, "param_groups", None):
        raise ConfigError("lr_range_test: needs the run's optimizer (a torch.optim.Optimizer)")
    current = float(optimizer.param_groups[0]["lr"])
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    diverged = math.nan
    with sandboxed():
        clone, twin = copy_run(model, optimizer)
        ratios = [float(g["lr"]) / current if current > 0 else 1.0 for g in twin.param_groups]
        torch.manual_seed(seed)
        average = 0.0
        best = math.inf
        growth = (end_lr / start_lr) ** (1.0 / (num_steps - 1))
        for t in range(num_steps):
            lr = start_lr * growth**t
            for group, ratio in zip(twin.param_groups, ratios, strict=True):
                group["lr"] = lr * ratio
            x, y = batches[t % len(batches)]
            twin.zero_grad(set_to_none=True)
            loss = loss_fn(clone(x), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                diverged = lr
                break
            lrs.append(lr)
            losses.append(value)
            average = (1 - smooth) * average + smooth * value
            corrected = average / (1 - (1 - smooth) ** (t + 1))
            smoothed.append(corrected)
            best = min(best, corrected)
            if corrected > diverge_factor * best:
                diverged = lr
                break
            loss.backward()
            try:
                twin.step()
            except Exception:  # an optimizer that refuses non-finite gradients
                diverged = lr
                break
    low = min(range(len(smoothed)), key=smoothed.__getitem__) if smoothed else None
    return LRRangeResult(
        tuple(lrs),
        tuple(losses),
        tuple(smoothed),
        _suggest(lrs, smoothed, skip_start, skip_end),
        lrs[low] if low is not None else math.nan,
        diverged,
        current,
    )
