"""Verdicts as data, and the rules that turn a monitor's history into one.

The lectures' lesson is that *training stuck ≠ small gradient*: a flat loss can come with a large gradient (the
parameters bounce between the walls of a ravine, the learning rate is too high for the steep direction) or
with a small one (a critical point: a saddle, escapable along a negative-curvature direction, or a
minimum-like point), and a network can also be dead, collapsed to a constant predictor, or blown up. The
rules tell these apart from cheap per-step signals (loss, gradient norm, update size, the cosine between
successive updates), amortised probes (curvature along the update, gradient noise, dead units, the constant
predictor's loss, relative gradients through depth) and measurements taken on demand (the Hessian's extreme
eigenvalues, the preconditioned sharpness against the optimizer's stability limit).

The rules, in order of priority (the first that fires wins):

1. **diverging** — a NaN/Inf loss or gradient in the window, or the loss far above its (robust) best and
   still rising.
2. **diverged and stuck** — the loss far above its best (``blowup_factor``) or its start (``stuck_factor``)
   and not coming back down, whatever the gradient does.
3. **adaptive-LR bursts** — loss spikes that recover, after the effective step η/σ grew.
4. **healthy** when converged (the loss is a ``converged_fraction`` of its start).
5. **LR too small** — the loss falls, but negligibly, with tiny steps that successive updates *agree* on
   (their measured cosine; the optimizer's own weight decay is part of the gradient judged).
6. **healthy** when the loss is falling (not a plateau; the plateau test allows batch noise, capped, and a
   window falling from a significantly higher one before it is not flat).
7. A flat (or rising) loss is never healthy; in order (:mod:`ravine.diagnose._stuck`): dead units / constant predictor,
   vanishing/exploding gradients through depth, a critical point (small gradient of the optimizer's
   objective: saddle or minimum-like by the Hessian), noise-dominated (the gradient noise scale B_simple
   above the batch size) or at its noise floor, ravine oscillation (the edge of stability: η·λ_max, or the
   preconditioned sharpness, at its limit), and otherwise **stalled (cause not determined)** with what was
   measured.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Sequence

from ravine.diagnose._config import Thresholds
from ravine.diagnose._records import (
    CriticalPointRecord,
    Evidence,
    ProbeRecord,
    SharpnessRecord,
    Verdict,
    VerdictKind,
)
from ravine.diagnose._remedies import remedies as _remedies
from ravine.diagnose._stuck import Context, dead_units, flat_verdict, latest_probes
from ravine.diagnose._terms import OptimizerTerms
from ravine.diagnose._window import finite as _finite
from ravine.diagnose._window import history_totals, loss_bursts, window_stats
from ravine.diagnose._window import median as _median

__all__ = ["judge"]


def _nonfinite(columns: dict[str, list[float]], steps: list[int], lo: int) -> int | None:
    for index in range(lo, len(steps)):
        # NaN loss = not given (loss=None); the monitor stores a given non-finite loss as +inf.
        if math.isinf(columns["loss"][index]) or not math.isfinite(columns["grad_norm"][index]):
            return steps[index]
    return None


def judge(
    columns: dict[str, list[float]],
    steps: list[int],
    *,
    probes: Sequence[ProbeRecord] = (),
    critical_points: Sequence[CriticalPointRecord] = (),
    sharpness: Sequence[SharpnessRecord] = (),
    terms: OptimizerTerms | None = None,
    thresholds: Thresholds | None = None,
    layer_grad_norms: Iterable[Sequence[float]] | None = None,
    layer_names: Sequence[str] | None = None,
) -> Verdict:
    """Apply the rules (see the module docstring) to a history and return a verdict.

    Args:
        columns: Per-step signals by name (``loss``, ``grad_norm``, ``update_ratio``, ``cos_prev``, ``eff_lr``,
            ...), one float per recorded step, NaN where not measured.
        steps: The optimizer step of each recorded row.
        probes: Amortised probes, oldest first.
        critical_points: Hessian classifications, oldest first.
        sharpness: Edge-of-stability measurements, oldest first.
        terms: The optimizer's hyper-parameters (weight decay, momentum, adaptive); None: plain SGD assumed.
        thresholds: The rules' numbers.
        layer_grad_norms: Per-row per-parameter gradient norms (for zero-gradient layers), if recorded.
        layer_names: The parameters' names, for the evidence.
    """
    th = thresholds or Thresholds()
    n = len(steps)
    if n == 0:
        return Verdict(VerdictKind.HEALTHY, "no steps recorded yet", -1, provisional=True)
    last = steps[-1]
    lo = max(0, n - th.window)
    bad = _nonfinite(columns, steps, lo)
    if bad is not None:
        return Verdict(
            VerdictKind.DIVERGING,
            f"non-finite loss or gradient at step {bad}",
            last,
            (Evidence("first non-finite step", float(bad), bad, bad, "loss or gradient norm is NaN/Inf"),),
            _remedies(VerdictKind.DIVERGING),
        )
    totals = history_totals(columns, th, max(20, n - th.burst_memory))
    stats = window_stats(columns, steps, th, grad_max_ever=totals.grad_max)
    if stats is None:
        return Verdict(
            VerdictKind.HEALTHY, f"only {n} steps recorded: too early to judge", last, provisional=True
        )

    recent = latest_probes(probes, stats.first_step)
    base_evidence = (
        Evidence(
            "relative loss decrease over window",
            stats.relative_decrease,
            stats.first_step,
            stats.last_step,
            f"plateau below {th.plateau_tol:g}",
        ),
        Evidence("gradient norm (median)", stats.grad_median, stats.first_step, stats.last_step),
    )
    ctx = Context(
        stats=stats,
        recent=recent,
        critical_points=critical_points,
        sharpness=sharpness,
        terms=terms or OptimizerTerms("unknown", known=False),
        th=th,
        base_evidence=base_evidence,
        last=last,
        weight_norm=_latest_finite(columns.get("weight_norm", [])),
        zero_layers=_zero_layers(layer_grad_norms, layer_names, n - lo),
    )
    # Blow-up: the loss far above its robust best (lowest block median) or its start.
    # The start is the first recorded loss when it is lower than the first rows' mean (a blow-up in the
    # first steps would hide in the mean); the best is the lowest 10-row median, or the start if lower.
    first_loss = columns["loss"][0]
    start = min(stats.start_level, first_loss) if math.isfinite(first_loss) else stats.start_level
    best = totals.best_smooth if math.isfinite(totals.best_smooth) else totals.best_loss
    best = min(best, start) if math.isfinite(start) else best
    best_scale = max(abs(best), 1e-12)
    above_best = stats.loss_level - best > th.blowup_factor * best_scale
    above_start = math.isfinite(start) and start > 0 and stats.loss_level > th.stuck_factor * start
    window_grad = columns["grad_norm"][lo:]
    half = len(window_grad) // 2
    grad_rising = _median(window_grad[half:]) > 2.0 * _median(window_grad[:half])
    window_losses = _finite(columns["loss"][lo:])
    # Still high: the latest losses are within blowup_factor of the window's peak (a spike that came back
    # down is not divergence; the burst rule looks at it).
    still_high = _median(window_losses[-5:]) * th.blowup_factor >= max(window_losses)
    blown = (above_best or above_start) and still_high
    blow_evidence = (
        Evidence("loss level", stats.loss_level, stats.first_step, stats.last_step),
        Evidence("best loss (lowest 10-step median)", best, steps[0], last),
        Evidence("starting loss", start, steps[0], steps[0]),
        Evidence("gradient norm median", stats.grad_median, stats.first_step, stats.last_step),
    )
    if blown and stats.relative_decrease < 0 and grad_rising:
        return Verdict(
            VerdictKind.DIVERGING,
            f"loss {stats.loss_level:.3g} is {stats.loss_level / best_scale:.0f}× its best {best:.3g} and rising",
            last,
            blow_evidence,
            _remedies(VerdictKind.DIVERGING),
        )
    bursts = loss_bursts(columns, steps, probes, th, totals)
    if blown and bursts is None and stats.fell < 0.5:
        dead = dead_units(ctx)
        if dead is not None:
            return dead  # it blew up and the units died: the mechanism is measured
        return Verdict(
            VerdictKind.DIVERGED_STUCK,
            f"loss {stats.loss_level:.3g} is {stats.loss_level / best_scale:.0f}× its best {best:.3g} "
            f"({stats.loss_level / start:.1f}× its start) and not coming back down",
            last,
            (
                *blow_evidence,
                Evidence("share of the loss regained per half window", stats.fell, stats.first_step, last),
            ),
            _remedies(VerdictKind.DIVERGED_STUCK),
        )
    if bursts is not None:
        spikes, jump = bursts
        return Verdict(
            VerdictKind.ADAPTIVE_LR_BURSTS,
            f"{len(spikes)} loss spike(s) with recovery after the effective learning rate η/σ grew ×{jump:.0f}",
            last,
            (
                Evidence("spikes", float(len(spikes)), spikes[0], spikes[-1], f"at steps {spikes[:10]}"),
                Evidence(
                    "effective-LR growth (η/σ)", jump, spikes[0], spikes[-1], "vs its first/median value"
                ),
            ),
            _remedies(VerdictKind.ADAPTIVE_LR_BURSTS),
        )

    if stats.converged and stats.relative_decrease > -th.plateau_tol:
        return Verdict(
            VerdictKind.HEALTHY,
            f"converged: loss {stats.loss_level:.3g} is below {th.converged_fraction:g}× its start",
            last,
            base_evidence,
        )
    small = lr_too_small(ctx)
    if small is not None:
        return small
    # Flat, or slow while the updates bounce straight back (a ravine can hide under a slowly falling tail).
    strongly_anti = math.isfinite(stats.cos_mean) and stats.cos_mean <= 2 * th.cos_anti
    if stats.plateau or (strongly_anti and stats.relative_decrease < 5 * th.plateau_tol):
        return flat_verdict(ctx)
    # A loss falling by 5× the plateau tolerance per window is clear counter-evidence against any stuck regime.
    return Verdict(
        VerdictKind.HEALTHY,
        f"loss falling: {max(stats.fell, 0.0):.1%} lower in the second half of the last {th.window} steps",
        last,
        base_evidence,
        confirmed=stats.relative_decrease >= 5 * th.plateau_tol,
    )


def _latest_finite(values: Sequence[float]) -> float:
    for value in reversed(values[-50:]):
        if math.isfinite(value):
            return value
    return math.nan


def _zero_layers(
    layer_grad_norms: Iterable[Sequence[float]] | None, names: Sequence[str] | None, count: int
) -> tuple[str, ...]:
    """Parameters whose gradient was exactly zero on each of the newest ``count`` rows kept."""
    if layer_grad_norms is None or not names:
        return ()
    rows = list(collections.deque(layer_grad_norms, maxlen=count))
    if len(rows) < max(2, count // 2):
        return ()
    return tuple(name for j, name in enumerate(names) if all(j < len(row) and row[j] == 0.0 for row in rows))


def lr_too_small(ctx: Context) -> Verdict | None:
    """LR too small: the loss falls, but negligibly; tiny steps; successive updates agree."""
    stats, th = ctx.stats, ctx.th
    undershoots = [p.overshoot for p in ctx.recent if math.isfinite(p.overshoot) and p.overshoot > 0]
    undershoot = _median(undershoots) if undershoots else math.nan
    tiny_step = (
        math.isfinite(undershoot)
        and undershoot < th.undershoot
        and stats.update_ratio_median < 100 * th.tiny_update_ratio
    ) or (not undershoots and stats.update_ratio_median < th.tiny_update_ratio)
    # Agreement is read from the updates actually taken: their cosine, or — for noisy small steps — a step far
    # short of the 1-D optimum along it while successive updates do not point against each other.
    far_short = math.isfinite(undershoot) and undershoot < th.undershoot
    if math.isfinite(stats.cos_mean):
        aligned = stats.cos_mean >= th.cos_aligned or (far_short and stats.cos_mean > 0)
    else:
        aligned = far_short
    if not (
        stats.relative_decrease < 5 * th.plateau_tol
        and stats.relative_decrease > -th.plateau_tol
        and tiny_step
        and aligned
        and not ctx.small_gradient()
    ):
        return None
    evidence = [
        *ctx.base_evidence,
        Evidence(
            "update/weight ratio (median)", stats.update_ratio_median, stats.first_step, stats.last_step
        ),
        Evidence("cosine of successive updates (mean)", stats.cos_mean, stats.first_step, stats.last_step),
    ]
    if undershoots:
        evidence.append(
            Evidence(
                "step / 1-D optimum along the update",
                undershoot,
                ctx.recent[0].step,
                ctx.recent[-1].step,
                "1 = the best step along this direction",
            )
        )
    agree = (
        f"successive steps agree (cos {stats.cos_mean:.2f})"
        if stats.cos_mean >= th.cos_aligned
        else f"each step {undershoot:.1e} of the 1-D optimum along it"
    )
    return Verdict(
        VerdictKind.LR_TOO_SMALL,
        f"loss falls only {max(stats.fell, 0.0):.2%} per half window with tiny updates (Δθ/θ "
        f"{stats.update_ratio_median:.1e}); {agree}; ravine.diagnose.lr_range_test suggests a rate",
        ctx.last,
        tuple(evidence),
        _remedies(VerdictKind.LR_TOO_SMALL),
    )
