"""Summary statistics of the history, shared by the rules and the monitor.

Two kinds: those of the last window of steps (:func:`window_stats`, O(window) work), and the few the rules
take over the whole history — the best loss, the largest gradient norm, the median effective step and the
rows where a loss spike starts (:func:`history_totals`). The latter are folded in once per row and kept on
the history's :class:`~ravine.diagnose._history.Columns`, so that a verdict costs the same at any run length;
only the newest :data:`MARGIN` rows (which a monitor may still rewrite) are read again at each verdict.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from ravine.diagnose._config import Thresholds
from ravine.diagnose._history import Columns
from ravine.diagnose._records import ProbeRecord

__all__ = [
    "MARGIN",
    "HistoryTotals",
    "WindowStats",
    "finite",
    "history_totals",
    "loss_bursts",
    "median",
    "window_stats",
]

MARGIN = 16
"""Newest rows left out of the running summary and read again at each verdict (a monitor reopens its newest
row to merge micro-batches; dropping more rows than this makes the next verdict rebuild the summary)."""

BLOCK = 10
"""The robust best loss is the lowest median of consecutive blocks of this many rows (a single lucky batch
does not set it)."""

SPIKE_LOOKBACK = 20
"""A loss spike is measured against the median of this many steps before it."""


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
    fell: float
    start_level: float


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def median(values: Sequence[float]) -> float:
    kept = finite(values)
    return statistics.median(kept) if kept else math.nan


def window_stats(
    columns: dict[str, list[float]],
    steps: list[int],
    thresholds: Thresholds,
    *,
    grad_max_ever: float | None = None,
) -> WindowStats | None:
    """Statistics of the last window; None when fewer than half a window of finite losses is recorded.

    ``grad_max_ever`` is the largest finite gradient norm of the whole history (NaN if none) when the caller
    keeps it (see :func:`history_totals`); None rescans the column for it."""
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
    if grad_max_ever is None:
        grad_max_ever = max(finite(columns["grad_norm"]) or [math.nan])
    cos_mean_values = finite(columns["cos_prev"][n - w :])
    cos_mean = statistics.fmean(cos_mean_values) if cos_mean_values else math.nan
    update_ratio_median = median(columns["update_ratio"][n - w :])
    var_first = statistics.pvariance(finite_loss[:half]) if half > 1 else 0.0
    var_second = statistics.pvariance(finite_loss[half:]) if len(finite_loss) - half > 1 else 0.0
    standard_error = math.sqrt(var_first / max(half, 1) + var_second / max(len(finite_loss) - half, 1))
    # A plateau: the decrease is below the tolerance, or not significantly above it given the batch noise —
    # but the noise allowance is capped: a window whose loss fell by 5× the tolerance is never flat, however
    # noisy its batches (a healthy noisy run falling 20% per window is not a plateau).
    tolerance = thresholds.plateau_tol * scale / 2.0
    plateau = (first - second) < tolerance + min(thresholds.plateau_z * standard_error, 4.0 * tolerance)
    if plateau and n >= 2 * w and first - second > -tolerance:
        # Noisy batches can hide a slow fall inside one window: a window that is not rising is not flat either if
        # the window before it was significantly higher (by more than the tolerance plus z standard errors).
        before = finite(columns["loss"][n - 2 * w : n - w])
        if len(before) > 1:
            drop = statistics.fmean(before) - level
            spread = math.sqrt(
                statistics.pvariance(before) / len(before)
                + statistics.pvariance(finite_loss) / len(finite_loss)
            )
            plateau = drop < 2 * tolerance + thresholds.plateau_z * spread
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
        fell=(first - second) / first if first > 0 else math.nan,
        start_level=start_level,
    )


def effective_step(eff_lr: float, lr: float) -> float:
    """The measured effective step ‖Δθ‖/‖g‖ relative to the learning rate (as it is when η is unknown)."""
    return eff_lr / lr if math.isfinite(lr) and lr > 0 else eff_lr


def spike_starts(loss: Sequence[float], index: int, spike_factor: float) -> bool:
    """Whether a loss spike starts at ``index`` (≥ :data:`SPIKE_LOOKBACK`): the loss is ``≥ spike_factor`` ×
    the median of the steps before."""
    before = finite(loss[index - SPIKE_LOOKBACK : index])
    value = loss[index]
    if not before or not math.isfinite(value):
        return False
    base = statistics.median(before)
    return value > spike_factor * max(abs(base), 1e-300) and value > base + 1e-30


class _SortedFloats:
    """A sorted multiset of floats kept in chunks: cheap insertion, slices by rank."""

    _LOAD = 512

    def __init__(self) -> None:
        self._chunks: list[list[float]] = []
        self._maxes: list[float] = []
        self._starts: list[int] | None = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, value: float) -> None:
        self._size += 1
        self._starts = None
        if not self._chunks:
            self._chunks.append([value])
            self._maxes.append(value)
            return
        i = bisect.bisect_left(self._maxes, value)
        if i == len(self._chunks):
            i -= 1
            self._chunks[i].append(value)
            self._maxes[i] = value
        else:
            bisect.insort(self._chunks[i], value)
        chunk = self._chunks[i]
        if len(chunk) > 2 * self._LOAD:
            half = len(chunk) // 2
            self._chunks[i : i + 1] = [chunk[:half], chunk[half:]]
            self._maxes[i : i + 1] = [chunk[half - 1], chunk[-1]]

    def ranks(self, lo: int, hi: int) -> list[float]:
        """The values of rank ``lo`` to ``hi - 1``, in order."""
        if self._starts is None:
            self._starts = list(itertools.accumulate((len(c) for c in self._chunks), initial=0))
        out: list[float] = []
        i = bisect.bisect_right(self._starts, lo) - 1
        while lo < hi:
            offset = lo - self._starts[i]
            part = self._chunks[i][offset : offset + hi - lo]
            out.extend(part)
            lo += len(part)
            i += 1
        return out

    def median_with(self, extra: Sequence[float]) -> float:
        """``statistics.median`` of these values and ``extra`` together (NaN when both are empty)."""
        total = self._size + len(extra)
        if total == 0:
            return math.nan
        upper = total // 2
        lower = upper if total % 2 else upper - 1
        # Ranks below `start` or above `upper` of the union come from this set alone.
        start = max(0, lower - len(extra))
        middle = sorted(self.ranks(start, min(self._size, upper + 1)) + list(extra))
        if total % 2:
            return middle[upper - start]
        return (middle[lower - start] + middle[upper - start]) / 2


@dataclass
class _Scan:
    """What rows ``[lo, hi)`` contribute to the whole-history totals."""

    best_loss: float = math.inf
    grad_max: float = -math.inf
    effs: list[float] = field(default_factory=list)
    spikes: list[int] = field(default_factory=list)


def _scan(columns: dict[str, list[float]], lo: int, hi: int, spike_factor: float) -> _Scan:
    loss, grad, eff_lr, lr = columns["loss"], columns["grad_norm"], columns["eff_lr"], columns["lr"]
    scan = _Scan()
    for i in range(lo, hi):
        value = loss[i]
        if math.isfinite(value) and value < scan.best_loss:
            scan.best_loss = value
        g = grad[i]
        if math.isfinite(g) and g > scan.grad_max:
            scan.grad_max = g
        e = effective_step(eff_lr[i], lr[i])
        if math.isfinite(e):
            scan.effs.append(e)
        if i >= SPIKE_LOOKBACK and spike_starts(loss, i, spike_factor):
            scan.spikes.append(i)
    return scan


class _Summary:
    """Running totals of rows ``[0, settled)`` of one set of columns under one set of thresholds."""

    def __init__(self, columns: dict[str, list[float]], thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self.sources = tuple(columns[name] for name in ("loss", "grad_norm", "eff_lr", "lr"))
        self.settled = 0
        self.best_loss = math.inf
        self.grad_max = -math.inf
        self.effs = _SortedFloats()
        self.spikes: list[int] = []
        self.blocks = 0
        self.best_block = math.inf

    def fits(self, columns: dict[str, list[float]], thresholds: Thresholds, low_water: int | None) -> bool:
        """Whether these totals still describe the columns' first ``settled`` rows."""
        names = ("loss", "grad_norm", "eff_lr", "lr")
        return (
            (self.thresholds is thresholds or self.thresholds == thresholds)
            and all(source is columns[name] for source, name in zip(self.sources, names, strict=True))
            and len(self.sources[0]) >= self.settled
            and (low_water is None or low_water >= self.settled)
        )

    def fold(self, columns: dict[str, list[float]], upto: int) -> None:
        if upto <= self.settled:
            return
        scan = _scan(columns, self.settled, upto, self.thresholds.spike_factor)
        self.best_loss = scan.best_loss if scan.best_loss < self.best_loss else self.best_loss
        self.grad_max = scan.grad_max if scan.grad_max > self.grad_max else self.grad_max
        for e in scan.effs:
            self.effs.add(e)
        self.spikes.extend(scan.spikes)
        self.settled = upto
        self.blocks, self.best_block = _blocks(columns["loss"], self.blocks, upto, self.best_block)


def _blocks(loss: Sequence[float], done: int, upto: int, best: float) -> tuple[int, float]:
    """Fold complete blocks ``done, done + 1, ...`` of rows below ``upto`` into the lowest block median."""
    while (done + 1) * BLOCK <= upto:
        value = median(loss[done * BLOCK : (done + 1) * BLOCK])
        best = min(best, value)
        done += 1
    return done, best


@dataclass(frozen=True)
class HistoryTotals:
    """The whole-history quantities the rules use.

    Attributes:
        best_loss: The lowest finite loss (inf if none).
        grad_max: The largest finite gradient norm (NaN if none).
        eff_median: The median finite effective step ‖Δθ‖/(η‖g‖) (NaN if none).
        spike_rows: Rows from ``since`` on where a loss spike starts (:func:`spike_starts`), ascending.
        best_smooth: The lowest median of a block of :data:`BLOCK` consecutive rows (inf if none).
    """

    best_loss: float
    grad_max: float
    eff_median: float
    spike_rows: list[int]
    best_smooth: float = math.inf


def history_totals(columns: dict[str, list[float]], thresholds: Thresholds, since: int) -> HistoryTotals:
    """The whole-history totals, from the running summary kept on :class:`Columns` (brought up to date by
    folding in the rows appended since the last call), or from one pass over plain columns."""
    n = len(columns["loss"])
    summary: _Summary | None = None
    if isinstance(columns, Columns):
        kept = columns.summary
        if isinstance(kept, _Summary) and kept.fits(columns, thresholds, columns.low_water):
            summary = kept
        columns.low_water = None
    if summary is None:
        summary = _Summary(columns, thresholds)
        if isinstance(columns, Columns):
            columns.summary = summary
    summary.fold(columns, n - MARGIN)
    tail = _scan(columns, summary.settled, n, thresholds.spike_factor)
    best = tail.best_loss if tail.best_loss < summary.best_loss else summary.best_loss
    grad_max = tail.grad_max if tail.grad_max > summary.grad_max else summary.grad_max
    settled_spikes = summary.spikes[bisect.bisect_left(summary.spikes, since) :]
    return HistoryTotals(
        best_loss=best,
        grad_max=grad_max if math.isfinite(grad_max) else math.nan,
        eff_median=summary.effs.median_with(tail.effs),
        spike_rows=settled_spikes + [i for i in tail.spikes if i >= since],
        best_smooth=_blocks(columns["loss"], summary.blocks, n, summary.best_block)[1],
    )


def _probe_growth(probes: Sequence[ProbeRecord], peak_step: int) -> float:
    """The optimizer's η/σ at the last probe up to ``peak_step`` over its first value (0 when fewer than two
    probes up to then read it). Probes are oldest first."""
    first = next((i for i, p in enumerate(probes) if math.isfinite(p.effective_lr_max)), None)
    if first is None or not probes[first].effective_lr_max > 0:
        return 0.0
    for i in range(len(probes) - 1, first, -1):
        probe = probes[i]
        if probe.step <= peak_step and math.isfinite(probe.effective_lr_max):
            return probe.effective_lr_max / probes[first].effective_lr_max
    return 0.0


def loss_bursts(
    columns: dict[str, list[float]],
    steps: list[int],
    probes: Sequence[ProbeRecord],
    thresholds: Thresholds,
    totals: HistoryTotals,
) -> tuple[list[int], float] | None:
    """Loss spikes that recover, after the effective learning rate grew (σ became small).

    A spike starts at a loss ``≥ spike_factor`` × the median of the 20 steps before; it peaks within 100 steps
    and has recovered once the loss is back ``spike_factor`` times below its peak (seen as soon as it happens,
    not only when the loss regains its pre-spike level). The adaptive evidence is either the per-element η/σ
    read from the optimizer (probes) having grown ``≥ burst_lr_factor`` × its first value, or the measured
    effective step ‖Δθ‖/(η‖g‖) around the spike ``≥ burst_lr_factor`` × its median over the history. The rows
    where spikes start (from the last ``burst_memory`` steps on) and that median come with ``totals``. Returns
    (spike steps, growth factor)."""
    n = len(steps)
    loss, eff_lr, lr = columns["loss"], columns["eff_lr"], columns["lr"]
    eff_reference = totals.eff_median
    spikes: list[int] = []
    growth_max = 0.0
    index = max(20, n - thresholds.burst_memory)
    for start in totals.spike_rows:
        if start < index:
            continue
        index = start
        # Follow the spike to its peak, then look for the recovery after it.
        end = min(n, index + 101)
        peak_index = index
        recovered_at = None
        for j in range(index, end):
            if not math.isfinite(loss[j]):
                break
            if loss[j] > loss[peak_index]:
                peak_index = j
            elif loss[j] < loss[peak_index] / thresholds.spike_factor:
                recovered_at = j
                break
        if recovered_at is None:
            index += 1
            continue
        growth = _probe_growth(probes, steps[peak_index])
        eff_at = finite([effective_step(eff_lr[i], lr[i]) for i in range(index, peak_index + 1)])
        if eff_at and math.isfinite(eff_reference) and eff_reference > 0:
            growth = max(growth, max(eff_at) / eff_reference)
        if growth >= thresholds.burst_lr_factor:
            spikes.append(steps[index])
            growth_max = max(growth_max, growth)
        index = recovered_at + 1
    return (spikes, growth_max) if spikes else None
