"""Summary statistics of the monitor's last window of steps, shared by the rules and the monitor."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ravine.diagnose._records import Thresholds

__all__ = ["WindowStats", "finite", "median", "window_stats"]


@dataclass(frozen=True)
class WindowStats:
    """Summary of the last ``window`` steps, shared by the rules and the monitor."""

    first_step: int
    last_step: int
    loss_level: float
    relative_decrease: float
    decreasing_share: float
    grad_median: float
    grad_max_ever: float
    cos_mean: float
    update_ratio_median: float
    plateau: bool
    small_grad: bool
    converged: bool
    progress: float


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def median(values: Sequence[float]) -> float:
    kept = finite(values)
    return statistics.median(kept) if kept else math.nan


def window_stats(
    columns: dict[str, list[float]], steps: list[int], thresholds: Thresholds
) -> WindowStats | None:
    """Statistics of the last window; None when fewer than half a window of finite losses is recorded."""
    n = len(steps)
    w = min(thresholds.window, n)
    if w < max(10, thresholds.window // 2):
        return None
    loss = columns["loss"][n - w :]
    grad = columns["grad_norm"][n - w :]
    finite_loss = finite(loss)
    if len(finite_loss) < w // 2:
        return None
    half = len(finite_loss) // 2
    first, second = statistics.fmean(finite_loss[:half]), statistics.fmean(finite_loss[half:])
    level = statistics.fmean(finite_loss)
    scale = max(abs(level), 1e-300)
    # Halves' means are a half window apart: scale to a whole window.
    relative_decrease = 2.0 * (first - second) / scale
    diffs = [b - a for a, b in itertools.pairwise(finite_loss)]
    decreasing_share = sum(d < 0 for d in diffs) / max(len(diffs), 1)
    grad_median = median(grad)
    grad_max_ever = max(finite(columns["grad_norm"]) or [math.nan])
    cos_mean_values = finite(columns["cos_prev"][n - w :])
    cos_mean = statistics.fmean(cos_mean_values) if cos_mean_values else math.nan
    update_ratio_median = median(columns["update_ratio"][n - w :])
    var_first = statistics.pvariance(finite_loss[:half]) if half > 1 else 0.0
    var_second = statistics.pvariance(finite_loss[half:]) if len(finite_loss) - half > 1 else 0.0
    standard_error = math.sqrt(var_first / max(half, 1) + var_second / max(len(finite_loss) - half, 1))
    # A plateau: the decrease is below the tolerance, or not significantly above it given the batch noise.
    plateau = (first - second) < thresholds.plateau_tol * scale / 2.0 + thresholds.plateau_z * standard_error
    small_grad = grad_median <= thresholds.small_grad_abs or (
        math.isfinite(grad_max_ever) and grad_median <= thresholds.small_grad_ratio * grad_max_ever
    )
    start_losses = finite(columns["loss"][: max(5, min(20, n // 10))])
    start_level = statistics.fmean(start_losses) if start_losses else math.nan
    converged = math.isfinite(start_level) and abs(level) <= thresholds.converged_fraction * abs(start_level)
    # Share of the starting loss removed so far (0: no progress; NaN when the start is unknown or zero).
    progress = 1.0 - level / start_level if math.isfinite(start_level) and start_level > 0 else math.nan
    return WindowStats(
        first_step=steps[n - w],
        last_step=steps[-1],
        loss_level=level,
        relative_decrease=relative_decrease,
        decreasing_share=decreasing_share,
        grad_median=grad_median,
        grad_max_ever=grad_max_ever,
        cos_mean=cos_mean,
        update_ratio_median=update_ratio_median,
        plateau=plateau,
        small_grad=small_grad,
        converged=converged,
        progress=progress,
    )
