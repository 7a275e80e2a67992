"""Verdicts as data, and the rules that turn a monitor's history into one.

The lectures' lesson is that *training stuck ≠ small gradient*: a flat loss can come with a large gradient (the
parameters bounce between the walls of a ravine, the learning rate is too high for the steep direction) or
with a small one (a critical point: a saddle, escapable along a negative-curvature direction, or a
minimum-like point). The rules below tell these apart from cheap per-step signals (loss, gradient norm,
update size, the cosine between successive updates) and from amortised probes (curvature along the update
direction, gradient noise, and — on a small-gradient plateau — the Hessian's extreme eigenvalues).

The rules, in order of priority (the first that fires wins):

1. **diverging** — a NaN/Inf loss or gradient in the window, or the loss blowing up (``≥ blowup_factor`` × its
   lowest value, rising, gradient rising).
2. **adaptive-LR bursts** — a loss spike (``≥ spike_factor`` × the median of the steps before) that recovers,
   preceded by an effective step ‖Δθ‖/‖g‖ far above its usual value (σ became small, η/σ large).
3. On a **plateau** (the loss fell by less than ``plateau_tol`` of its level over the window):
   a. small gradient → **saddle point** or **local-minimum-like**, from the Hessian's λ_min (or an
      unclassified critical point when no loss/batch was given);
   b. gradient noise dominates (probe SNR < ``snr_noise``) → **noise-dominated** if the loss has hardly
      fallen from its start (< ``noise_floor_progress``); otherwise SGD has reached its *noise floor* around a
      minimum — the expected gradient is ~0 and what is left is batch noise — which is **healthy** (converged);
   c. successive updates anti-aligned (mean cosine ≤ ``cos_anti``) or the step overshoots the 1-D optimum
      along its direction (ratio ≥ ``overshoot``, i.e. curvature·η ≳ 2) → **ravine oscillation**;
   d. uncorrelated updates without a noise probe → **noise-dominated** (weak evidence; same noise-floor rule).
4. **LR too small** — the loss keeps falling but negligibly, the update/weight ratio is tiny (or the step is
   far shorter than the 1-D optimum along its direction) and successive updates are aligned.
5. otherwise **healthy**.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ravine.diagnose._config import Thresholds
from ravine.diagnose._records import (
    CriticalPointRecord,
    Evidence,
    ProbeRecord,
    Verdict,
    VerdictKind,
)
from ravine.diagnose._remedies import remedies as _remedies
from ravine.diagnose._window import WindowStats, history_totals, loss_bursts, window_stats
from ravine.diagnose._window import finite as _finite
from ravine.diagnose._window import median as _median

__all__ = ["judge"]


def _latest_probes(probes: Sequence[ProbeRecord], since: int) -> list[ProbeRecord]:
    """The probes at or after step ``since`` (probes are oldest first: read back from the newest)."""
    first = len(probes)
    while first > 0 and probes[first - 1].step >= since:
        first -= 1
    return list(probes[first:])


def _nonfinite(columns: dict[str, list[float]], steps: list[int], lo: int) -> int | None:
    for index in range(lo, len(steps)):
        if not (math.isfinite(columns["loss"][index]) and math.isfinite(columns["grad_norm"][index])):
            return steps[index]
    return None


def judge(
    columns: dict[str, list[float]],
    steps: list[int],
    *,
    probes: Sequence[ProbeRecord] = (),
    critical_points: Sequence[CriticalPointRecord] = (),
    thresholds: Thresholds | None = None,
) -> Verdict:
    """Apply the rules (see the module docstring) to a history and return a verdict.

    Args:
        columns: Per-step signals by name (``loss``, ``grad_norm``, ``update_ratio``, ``cos_prev``, ``eff_lr``,
            ...), one float per recorded step, NaN where not measured.
        steps: The optimizer step of each recorded row.
        probes: Amortised probes, oldest first.
        critical_points: Hessian classifications, oldest first.
        thresholds: The rules' numbers.
    """
    th = thresholds or Thresholds()
    n = len(steps)
    if n == 0:
        return Verdict(VerdictKind.HEALTHY, "no steps recorded yet", -1)
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
        return Verdict(VerdictKind.HEALTHY, f"only {n} steps recorded: too early to judge", last)

    # Blow-up: loss far above its best, still rising, gradient rising.
    best = totals.best_loss
    best_scale = max(abs(best), 1e-12)
    window_grad = columns["grad_norm"][lo:]
    half = len(window_grad) // 2
    grad_rising = _median(window_grad[half:]) > 2.0 * _median(window_grad[:half])
    # Still high: the latest losses are within blowup_factor of the window's peak (a spike that came back
    # down is not divergence; the burst rule below looks at it).
    window_losses = _finite(columns["loss"][lo:])
    still_high = _median(window_losses[-5:]) * th.blowup_factor >= max(window_losses)
    if (
        stats.loss_level - best > th.blowup_factor * best_scale
        and stats.relative_decrease < 0
        and grad_rising
        and still_high
    ):
        return Verdict(
            VerdictKind.DIVERGING,
            f"loss {stats.loss_level:.3g} is {stats.loss_level / best_scale:.0f}× its best {best:.3g} and rising",
            last,
            (
                Evidence("loss level", stats.loss_level, stats.first_step, stats.last_step),
                Evidence("best loss", best, steps[0], last),
                Evidence("gradient norm median", stats.grad_median, stats.first_step, stats.last_step),
            ),
            _remedies(VerdictKind.DIVERGING),
        )

    bursts = loss_bursts(columns, steps, probes, th, totals)
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

    recent = _latest_probes(probes, stats.first_step)
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

    if stats.converged and stats.relative_decrease > -th.plateau_tol:
        return Verdict(
            VerdictKind.HEALTHY,
            f"converged: loss {stats.loss_level:.3g} is below {th.converged_fraction:g}× its start",
            last,
            base_evidence,
        )

    # LR too small: falling, but negligibly; tiny steps; aligned.
    undershoots = [p.overshoot for p in recent if math.isfinite(p.overshoot) and p.overshoot > 0]
    undershoot = _median(undershoots) if undershoots else math.nan
    tiny_step = (
        math.isfinite(undershoot)
        and undershoot < th.undershoot
        and stats.update_ratio_median < 100 * th.tiny_update_ratio
    ) or (not undershoots and stats.update_ratio_median < th.tiny_update_ratio)
    aligned = (math.isfinite(stats.cos_mean) and stats.cos_mean >= th.cos_aligned) or (
        math.isfinite(undershoot) and undershoot < th.undershoot
    )
    if (
        stats.relative_decrease < 5 * th.plateau_tol
        and stats.relative_decrease > -th.plateau_tol
        and tiny_step
        and aligned
        and not stats.small_grad
    ):
        evidence = [
            *base_evidence,
            Evidence(
                "update/weight ratio (median)", stats.update_ratio_median, stats.first_step, stats.last_step
            ),
            Evidence(
                "cosine of successive updates (mean)", stats.cos_mean, stats.first_step, stats.last_step
            ),
        ]
        if undershoots:
            evidence.append(
                Evidence(
                    "step / 1-D optimum along the update",
                    undershoot,
                    recent[0].step,
                    recent[-1].step,
                    "1 = the best step along this direction",
                )
            )
        return Verdict(
            VerdictKind.LR_TOO_SMALL,
            f"loss falls only {max(stats.relative_decrease, 0):.2%} per {th.window} steps with aligned, tiny "
            f"updates (Δθ/θ {stats.update_ratio_median:.1e})",
            last,
            tuple(evidence),
            _remedies(VerdictKind.LR_TOO_SMALL),
        )
    if stats.plateau and stats.small_grad:
        return _critical_verdict(stats, critical_points, th, base_evidence, last)
    snrs = [p.snr for p in recent if math.isfinite(p.snr)]
    overshoots = [p.overshoot for p in recent if not math.isnan(p.overshoot)]
    overshoot = _median(overshoots) if overshoots else math.nan
    strongly_anti = math.isfinite(stats.cos_mean) and stats.cos_mean <= 2 * th.cos_anti
    slow = stats.relative_decrease < 5 * th.plateau_tol
    if stats.plateau or (slow and strongly_anti):
        at_floor = math.isfinite(stats.progress) and stats.progress >= th.noise_floor_progress
        if snrs and _median(snrs) < th.snr_noise and not strongly_anti:
            snr = _median(snrs)
            snr_evidence = Evidence("gradient SNR (median of probes)", snr, recent[0].step, recent[-1].step)
            if at_floor:
                return _noise_floor_verdict(stats, (*base_evidence, snr_evidence), last, f"SNR {snr:.2g}")
            return Verdict(
                VerdictKind.NOISE_DOMINATED,
                f"loss flat and the batch gradient is mostly noise (SNR {snr:.2g} < {th.snr_noise:g})",
                last,
                (
                    *base_evidence,
                    snr_evidence,
                    Evidence(
                        "noise scale tr Σ/‖g‖²",
                        _median([p.noise_scale for p in recent]),
                        recent[0].step,
                        recent[-1].step,
                        "batch size at which noise equals signal",
                    ),
                ),
                _remedies(VerdictKind.NOISE_DOMINATED),
            )
        anti = math.isfinite(stats.cos_mean) and stats.cos_mean <= th.cos_anti
        if anti or (math.isfinite(overshoot) and overshoot >= th.overshoot):
            evidence = [
                *base_evidence,
                Evidence(
                    "cosine of successive updates (mean)", stats.cos_mean, stats.first_step, stats.last_step
                ),
            ]
            if overshoots:
                probe = recent[-1]
                evidence.append(
                    Evidence(
                        "step / 1-D optimum along the update (η·λ_d)",
                        overshoot,
                        recent[0].step,
                        probe.step,
                        "2 = bouncing between the walls",
                    )
                )
                evidence.append(
                    Evidence(
                        "curvature along update vs 2/η",
                        probe.curvature,
                        probe.step,
                        probe.step,
                        f"2/η = {probe.stability_limit:.3g}",
                    )
                )
            return Verdict(
                VerdictKind.RAVINE_OSCILLATION,
                f"loss flat while ‖g‖ ≈ {stats.grad_median:.3g} stays large; updates bounce "
                f"(cos {stats.cos_mean:.2f}"
                + (f", η·λ_d {overshoot:.2f}" if math.isfinite(overshoot) else "")
                + ")",
                last,
                tuple(evidence),
                _remedies(VerdictKind.RAVINE_OSCILLATION),
            )
        if math.isfinite(stats.cos_mean) and abs(stats.cos_mean) < th.cos_uncorrelated and not snrs:
            cos_evidence = Evidence(
                "cosine of successive updates (mean)", stats.cos_mean, stats.first_step, stats.last_step
            )
            if at_floor:
                return _noise_floor_verdict(
                    stats,
                    (*base_evidence, cos_evidence),
                    last,
                    f"updates uncorrelated, cos {stats.cos_mean:.2f}",
                )
            return Verdict(
                VerdictKind.NOISE_DOMINATED,
                f"loss flat, gradient not small, successive updates uncorrelated (cos {stats.cos_mean:.2f}); "
                "weak evidence: pass loss_fn and batch for a noise probe",
                last,
                (
                    *base_evidence,
                    Evidence(
                        "cosine of successive updates (mean)",
                        stats.cos_mean,
                        stats.first_step,
                        stats.last_step,
                    ),
                ),
                _remedies(VerdictKind.NOISE_DOMINATED),
            )

    return Verdict(
        VerdictKind.HEALTHY,
        f"loss falling {max(stats.relative_decrease, 0):.1%} per {th.window} steps",
        last,
        base_evidence,
    )


def _critical_verdict(
    stats: WindowStats,
    critical_points: Sequence[CriticalPointRecord],
    th: Thresholds,
    base_evidence: tuple[Evidence, ...],
    last: int,
) -> Verdict:
    # Classifications are oldest first: a recent one exists when the newest is recent.
    if not critical_points or critical_points[-1].step < last - th.classification_max_age:
        return Verdict(
            VerdictKind.CRITICAL_POINT,
            f"loss flat and gradient small (‖g‖ {stats.grad_median:.2g}): a critical point; give loss_fn and "
            "batch to classify it",
            last,
            base_evidence,
            _remedies(VerdictKind.CRITICAL_POINT),
        )
    point = critical_points[-1]
    evidence = (
        *base_evidence,
        Evidence("λ_min", point.lambda_min, point.step, point.step, point.source),
        Evidence("λ_max", point.lambda_max, point.step, point.step, point.source),
    )
    if point.kind == "saddle":
        escape = ""
        if math.isfinite(point.escape_loss_drop):
            escape = (
                f"; a trial step along the escape direction lowers the loss by {point.escape_loss_drop:.3g}"
            )
        top = sorted(point.escape_norms, key=lambda item: -item[1])[:3]
        detail = ", ".join(f"{name} {norm:.2f}" for name, norm in top)
        return Verdict(
            VerdictKind.SADDLE_POINT,
            f"loss flat, gradient small, Hessian has λ_min = {point.lambda_min:.3g} < 0: a saddle{escape}",
            last,
            (
                *evidence,
                Evidence(
                    "escape direction (largest layers)", point.lambda_min, point.step, point.step, detail
                ),
                Evidence("escape trial loss drop", point.escape_loss_drop, point.step, point.step),
            ),
            _remedies(VerdictKind.SADDLE_POINT),
        )
    if point.kind in {"minimum-like", "inconclusive"}:
        return Verdict(
            VerdictKind.LOCAL_MINIMUM_LIKE,
            f"loss flat at {stats.loss_level:.3g}, gradient small, no negative curvature found "
            f"(λ_min = {point.lambda_min:.2g}, λ_max = {point.lambda_max:.3g})"
            + (" — inconclusive: λ_min is within round-off of 0" if point.kind == "inconclusive" else ""),
            last,
            evidence,
            _remedies(VerdictKind.LOCAL_MINIMUM_LIKE),
        )
    return Verdict(
        VerdictKind.CRITICAL_POINT,
        f"loss flat, gradient small, Hessian classification: {point.kind}",
        last,
        evidence,
        _remedies(VerdictKind.CRITICAL_POINT),
    )


def _noise_floor_verdict(
    stats: WindowStats, evidence: tuple[Evidence, ...], last: int, noise: str
) -> Verdict:
    """Healthy: the loss fell, then flattened where what is left of the batch gradient is mostly noise.

    Around a minimum the expected gradient vanishes and SGD's iterates fluctuate at a loss floor set by η and
    the batch noise: converged, not stuck. Decaying η or growing the batch lowers the floor."""
    return Verdict(
        VerdictKind.HEALTHY,
        f"converged to its noise floor: loss {stats.loss_level:.3g} is flat, {stats.progress:.0%} below its "
        f"start, and the batch gradient is mostly noise ({noise}); decay η or grow the batch to go lower",
        last,
        (
            *evidence,
            Evidence("share of the starting loss removed", stats.progress, 0, stats.last_step),
        ),
    )
