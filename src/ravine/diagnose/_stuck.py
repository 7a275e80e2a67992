"""The rules for a flat loss: what explains it, or "stalled, cause not determined" with what was measured.

In order: dead units / a constant predictor; vanishing or exploding gradients through depth; a critical point
(the gradient of the objective the optimizer minimises is small — relative to its history, or scale-free:
‖g_obj‖·‖θ‖ ≪ |L| — then saddle or minimum-like by the Hessian); noise-dominated, from the gradient noise
scale B_simple = tr Σ/‖G‖² (McCandlish et al. 2018; ratio of sums over recent probes) against the batch
size; a ravine oscillation at the edge of stability (the optimizer-scaled sharpness at its limit, Cohen et
al. 2021/2022); otherwise stalled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
from ravine.diagnose._terms import OptimizerTerms
from ravine.diagnose._window import WindowStats
from ravine.diagnose._window import median as _median

__all__ = ["Context", "dead_units", "flat_verdict", "latest_probes", "noise_scale"]


def latest_probes(probes: Sequence[ProbeRecord], since: int) -> list[ProbeRecord]:
    """The probes at or after step ``since`` (probes are oldest first: read back from the newest)."""
    first = len(probes)
    while first > 0 and probes[first - 1].step >= since:
        first -= 1
    return list(probes[first:])


def _scale_text(scale: float) -> str:
    return (
        f"≈ {scale:.3g}" if math.isfinite(scale) else "unresolved (the summed signal ‖G‖² is below its noise)"
    )


def noise_scale(probes: Sequence[ProbeRecord]) -> tuple[float, float, int]:
    """(B_simple, batch size, probes used): Σ tr Σ / Σ ‖G‖² over the probes that measured both (a ratio of
    sums: one noisy ‖G‖² estimate below zero does not make it negative; inf when the summed signal is ≤ 0)."""
    used = [p for p in probes if math.isfinite(p.trace_sigma) and math.isfinite(p.signal)]
    if not used:
        return math.nan, math.nan, 0
    trace = sum(p.trace_sigma for p in used)
    signal = sum(p.signal for p in used)
    scale = trace / signal if signal > 0 else math.inf
    return scale, float(used[-1].batch_size), len(used)


@dataclass(frozen=True)
class Context:
    """What the flat-loss rules read."""

    stats: WindowStats
    recent: list[ProbeRecord]
    critical_points: Sequence[CriticalPointRecord]
    sharpness: Sequence[SharpnessRecord]
    terms: OptimizerTerms
    th: Thresholds
    base_evidence: tuple[Evidence, ...]
    last: int
    weight_norm: float
    zero_layers: tuple[str, ...]

    def objective_grad(self) -> float:
        """‖g + λθ‖ (median of recent probes) with coupled weight decay, else the window's ‖g‖ median."""
        if self.terms.coupled_decay > 0:
            values = [p.objective_grad_norm for p in self.recent]
            value = _median(values)
            if math.isfinite(value):
                return value
        return self.stats.grad_median

    def sensitivity(self) -> float:
        """‖g_obj‖·‖θ‖/|L|: the first-order loss change, as a share of the loss, of scaling θ by 1 ± 1."""
        level = abs(self.stats.loss_level)
        if not (math.isfinite(self.weight_norm) and level > 0):
            return math.nan
        return self.objective_grad() * self.weight_norm / level

    def small_gradient(self) -> bool:
        """The objective's gradient is small: absolutely, against its history, or scale-free."""
        stats, th = self.stats, self.th
        grad = self.objective_grad()
        if grad <= th.small_grad_abs:
            return True
        if math.isfinite(stats.grad_max_ever) and grad <= th.small_grad_ratio * stats.grad_max_ever:
            return True
        sensitivity = self.sensitivity()
        return math.isfinite(sensitivity) and sensitivity < th.small_sensitivity

    def recent_sharpness(self) -> SharpnessRecord | None:
        if self.sharpness and self.sharpness[-1].step >= self.stats.first_step:
            return self.sharpness[-1]
        return None

    def evidence(self, name: str, value: float, detail: str = "") -> Evidence:
        return Evidence(name, value, self.stats.first_step, self.stats.last_step, detail)


def dead_units(ctx: Context) -> Verdict | None:
    """The dead-units verdict when the units are dead and the loss is at (not far above) the constant
    predictor's level; a loss far above it is a blow-up whose units died, not a collapse."""
    dead = _dead(ctx)
    if dead is None or not dead.confirmed:
        return None
    probe = next(p for p in reversed(ctx.recent) if math.isfinite(p.probe_loss))
    limit = probe.constant_loss * (1 + 10 * ctx.th.constant_margin) + 1e-8
    return dead if probe.probe_loss <= limit else None


def flat_verdict(ctx: Context) -> Verdict:
    """The verdict for a flat loss (the module docstring gives the order)."""
    dead = _dead(ctx)
    if dead is not None and dead.confirmed:
        return dead  # at the constant predictor's loss with the units dead: the mechanism is measured
    depth = _depth(ctx)
    if depth is not None:
        return depth
    if ctx.small_gradient():
        # A constant output with live units can be a symmetric saddle (all-zero weights): the Hessian decides.
        critical = _critical(ctx)
        if dead is None or critical.kind is VerdictKind.SADDLE_POINT or critical.wants:
            return critical
        return dead
    for rule in (_noise, _ravine):
        verdict = rule(ctx)
        if verdict is not None:
            return verdict
    return _stalled(ctx)


def _dead(ctx: Context) -> Verdict | None:
    """Dead/saturated units (confirmed), or outputs collapsed to a constant predictor (not confirmed: a
    symmetric saddle also has constant outputs; the caller lets the Hessian decide)."""
    probes = [p for p in ctx.recent if math.isfinite(p.output_spread) and math.isfinite(p.probe_loss)]
    if not probes:
        return None
    p = probes[-1]
    margin = ctx.th.constant_margin * abs(p.constant_loss) + 1e-8
    # No better than the best constant (fitted to this very batch, so slightly optimistic for the model).
    at_constant = math.isfinite(p.constant_loss) and p.probe_loss >= p.constant_loss - margin
    dead = math.isfinite(p.dead_share) and p.dead_share >= ctx.th.dead_share
    if not (dead or at_constant):
        return None
    layers = ", ".join(f"{name} {share:.0%}" for name, share in p.dead_layers[:6])
    evidence = [
        *ctx.base_evidence,
        Evidence("loss on the probe batch", p.probe_loss, p.step, p.step),
        Evidence(
            "best constant predictor's loss", p.constant_loss, p.step, p.step, "ln C, or Var(y) for MSE"
        ),
        Evidence(
            "output spread / RMS", p.output_spread, p.step, p.step, "0: the same output for every input"
        ),
    ]
    if ctx.zero_layers:
        names = ", ".join(ctx.zero_layers[:8])
        evidence.append(ctx.evidence("parameters with zero gradient", float(len(ctx.zero_layers)), names))
    evidence.append(Evidence("dead or saturated units", p.dead_share, p.step, p.step, layers))
    if at_constant:
        what = (
            f"{p.dead_share:.0%} of the units pass no gradient"
            if dead
            else "the output barely depends on the input"
        )
        summary = (
            f"collapsed to a constant predictor: loss {p.probe_loss:.3g} vs the constant predictor's "
            f"{p.constant_loss:.3g}, {what}"
        )
    else:
        summary = (
            f"{p.dead_share:.0%} of the units are dead or saturated (pass no gradient on any sample): loss "
            f"{p.probe_loss:.3g}, the constant predictor's {p.constant_loss:.3g}"
        )
    return Verdict(
        VerdictKind.DEAD_UNITS,
        summary,
        ctx.last,
        tuple(evidence),
        _remedies(VerdictKind.DEAD_UNITS),
        confirmed=dead,
    )


def _depth(ctx: Context) -> Verdict | None:
    profiles = [p.depth_profile for p in ctx.recent if len(p.depth_profile) >= 3]
    if not profiles:
        return None
    ratios = []
    for profile in profiles:
        first, last = profile[0][1], profile[-1][1]
        if math.isfinite(first) and math.isfinite(last) and last > 0 and first > 0:
            ratios.append(first / last)
        elif first == 0 and last > 0:
            ratios.append(0.0)
    ratio = _median(ratios)
    if not math.isfinite(ratio) or 1.0 / ctx.th.depth_ratio < ratio < ctx.th.depth_ratio:
        return None
    profile = profiles[-1]
    word = "vanishing" if ratio < 1 else "exploding"
    detail = ", ".join(f"{name} {value:.1e}" for name, value in profile)
    return Verdict(
        VerdictKind.GRADIENT_DEPTH,
        f"{word} gradients through depth: the first layer's relative gradient ‖g‖/‖θ‖ is {ratio:.1e}× the "
        f"last layer's ({len(profile)} weight layers)",
        ctx.last,
        (
            *ctx.base_evidence,
            Evidence("first/last layer ‖g‖/‖θ‖", ratio, ctx.recent[0].step, ctx.recent[-1].step, detail),
        ),
        _remedies(VerdictKind.GRADIENT_DEPTH),
    )


def _critical(ctx: Context) -> Verdict:
    stats, th, last = ctx.stats, ctx.th, ctx.last
    evidence: tuple[Evidence, ...] = (
        *ctx.base_evidence,
        ctx.evidence("objective gradient ‖g + λθ‖", ctx.objective_grad(), "λ: the optimizer's coupled decay"),
        ctx.evidence("‖g_obj‖·‖θ‖/|L|", ctx.sensitivity(), "scale-free gradient size"),
    )
    points = ctx.critical_points
    if not points or points[-1].step < last - th.classification_max_age:
        return Verdict(
            VerdictKind.CRITICAL_POINT,
            f"loss flat and gradient small (‖g_obj‖ {ctx.objective_grad():.2g}): a critical point; give loss_fn "
            "and batch to classify it",
            last,
            evidence,
            _remedies(VerdictKind.CRITICAL_POINT),
            wants=("classify",),
        )
    point = points[-1]
    decay = ctx.terms.coupled_decay  # L + λ‖θ‖²/2 has Hessian H + λI
    lam_min, lam_max = point.lambda_min + decay, point.lambda_max + decay
    source = point.source + (f", shifted by the weight decay λ = {decay:g}" if decay else "")
    evidence = (
        *evidence,
        Evidence("λ_min", lam_min, point.step, point.step, source),
        Evidence("λ_max", lam_max, point.step, point.step, source),
    )
    if point.kind == "saddle" and lam_min < 0:
        escape = ""
        if math.isfinite(point.escape_loss_drop):
            escape = (
                f"; a trial step along the escape direction lowers the loss by {point.escape_loss_drop:.3g}"
            )
        top = sorted(point.escape_norms, key=lambda item: -item[1])[:3]
        detail = ", ".join(f"{name} {norm:.2f}" for name, norm in top)
        return Verdict(
            VerdictKind.SADDLE_POINT,
            f"loss flat, gradient small, Hessian has λ_min = {lam_min:.3g} < 0: a saddle{escape}",
            last,
            (
                *evidence,
                Evidence("escape direction (largest layers)", lam_min, point.step, point.step, detail),
                Evidence("escape trial loss drop", point.escape_loss_drop, point.step, point.step),
            ),
            _remedies(VerdictKind.SADDLE_POINT),
            confirmed=True,
        )
    if point.kind in {"minimum-like", "inconclusive", "saddle"}:
        return Verdict(
            VerdictKind.LOCAL_MINIMUM_LIKE,
            f"loss flat at {stats.loss_level:.3g}, gradient small, no negative curvature found "
            f"(λ_min = {lam_min:.2g}, λ_max = {lam_max:.3g})"
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


def _noise(ctx: Context) -> Verdict | None:
    stats, th = ctx.stats, ctx.th
    if ctx.recent and ctx.recent[-1].full_batch:
        return None  # the same batch every step: there is no gradient noise to dominate
    scale, batch, used = noise_scale(ctx.recent)
    strongly_anti = math.isfinite(stats.cos_mean) and stats.cos_mean <= 2 * th.cos_anti
    at_floor = math.isfinite(stats.progress) and stats.progress >= th.noise_floor_progress
    if used < 2 and not math.isfinite(scale) and not at_floor:
        # Stuck in noise needs more than one probe whose signal came out ≤ 0 (e.g. before full batch is known);
        # after progress, a vanishing signal is what a converged run shows.
        used = 0
    if used:
        # Stuck in noise: the batch is below the noise scale. At the floor after progress, noise comparable to
        # the signal (SNR up to 2) already explains a flat loss: SGD fluctuating around its minimum.
        limit = batch / (2 * th.snr_noise) if at_floor else batch / th.snr_noise
        if strongly_anti or not (scale > limit):
            return None
        evidence = (
            *ctx.base_evidence,
            Evidence(
                "gradient noise scale B_simple = tr Σ/‖G‖²",
                scale,
                ctx.recent[0].step,
                ctx.recent[-1].step,
                f"{used} probes; the batch size is {batch:g}",
            ),
            Evidence("batch size / B_simple (SNR)", batch / scale, ctx.recent[0].step, ctx.recent[-1].step),
        )
        if at_floor:
            return Verdict(
                VerdictKind.HEALTHY,
                f"converged to its noise floor: loss {stats.loss_level:.3g} is flat, {stats.progress:.0%} below "
                f"its start, and the batch ({batch:g}) is below the noise scale B_simple {_scale_text(scale)}; decay η "
                "or grow the batch to go lower",
                ctx.last,
                (*evidence, ctx.evidence("share of the starting loss removed", stats.progress)),
            )
        return Verdict(
            VerdictKind.NOISE_DOMINATED,
            f"loss flat and the batch gradient is mostly noise: batch {batch:g} below the noise scale B_simple "
            f"{_scale_text(scale)}; a larger batch (or a lower η) averages it out",
            ctx.last,
            evidence,
            _remedies(VerdictKind.NOISE_DOMINATED),
        )
    if math.isfinite(stats.cos_mean) and abs(stats.cos_mean) < th.cos_uncorrelated and not at_floor:
        notes = {p.noise_note for p in ctx.recent if p.noise_note}
        why = next(iter(notes)) if notes else "pass loss_fn and batch= for a noise probe"
        return Verdict(
            VerdictKind.NOISE_DOMINATED,
            f"loss flat, gradient not small, successive updates uncorrelated (cos {stats.cos_mean:.2f}); "
            f"weak evidence: {why}",
            ctx.last,
            (*ctx.base_evidence, ctx.evidence("cosine of successive updates (mean)", stats.cos_mean)),
            _remedies(VerdictKind.NOISE_DOMINATED),
        )
    return None


def _ravine(ctx: Context) -> Verdict | None:
    stats, th = ctx.stats, ctx.th
    overshoot = _median([p.overshoot for p in ctx.recent])
    anti = math.isfinite(stats.cos_mean) and stats.cos_mean <= th.cos_anti
    bouncing = anti or (math.isfinite(overshoot) and overshoot >= th.overshoot)
    edge = ctx.recent_sharpness()
    evidence = [*ctx.base_evidence, ctx.evidence("cosine of successive updates (mean)", stats.cos_mean)]
    if math.isfinite(overshoot):
        evidence.append(
            ctx.evidence("step / 1-D optimum along the update", overshoot, "2 = bouncing in place")
        )
    if edge is not None:
        what = "preconditioned sharpness λ_max(P⁻¹H)" if edge.preconditioned else "η·λ_max"
        evidence.append(
            Evidence(
                what,
                edge.sharpness,
                edge.step,
                edge.step,
                f"stability limit {edge.threshold:.3g}: {edge.rule}",
            )
        )
        if edge.ratio >= th.edge_ratio:
            return Verdict(
                VerdictKind.RAVINE_OSCILLATION,
                f"loss flat at the edge of stability: {what} = {edge.sharpness:.3g} vs its limit "
                f"{edge.threshold:.3g} ({edge.rule}); updates bounce across the steepest direction "
                f"(cos {stats.cos_mean:.2f})",
                ctx.last,
                tuple(evidence),
                _remedies(VerdictKind.RAVINE_OSCILLATION),
                confirmed=True,
            )
        return None
    if not bouncing:
        return None
    if ctx.terms.adaptive:
        # The 1-D overshoot assumes plain SGD's step; an adaptive one needs the preconditioned sharpness.
        return Verdict(
            VerdictKind.STALLED,
            f"loss flat, updates bounce (cos {stats.cos_mean:.2f}); the edge-of-stability test needs loss_fn "
            "and batch= (preconditioned sharpness)",
            ctx.last,
            tuple(evidence),
            _remedies(VerdictKind.STALLED),
            wants=("sharpness",),
        )
    return Verdict(
        VerdictKind.RAVINE_OSCILLATION,
        f"loss flat while ‖g‖ ≈ {stats.grad_median:.3g} stays large; updates bounce (cos {stats.cos_mean:.2f}"
        + (f", step/optimum {overshoot:.2f}" if math.isfinite(overshoot) else "")
        + "); the sharpness test needs loss_fn and batch=",
        ctx.last,
        tuple(evidence),
        _remedies(VerdictKind.RAVINE_OSCILLATION),
        wants=("sharpness",),
    )


def _stalled(ctx: Context) -> Verdict:
    stats = ctx.stats
    scale, batch, used = noise_scale(ctx.recent)
    evidence = [
        *ctx.base_evidence,
        ctx.evidence("cosine of successive updates (mean)", stats.cos_mean),
        ctx.evidence("update/weight ratio (median)", stats.update_ratio_median),
        ctx.evidence("‖g_obj‖·‖θ‖/|L|", ctx.sensitivity(), "scale-free gradient size"),
        ctx.evidence("share of the starting loss removed", stats.progress),
    ]
    if used:
        evidence.append(ctx.evidence("gradient noise scale B_simple", scale, f"batch size {batch:g}"))
    edge = ctx.recent_sharpness()
    if edge is not None:
        evidence.append(
            Evidence("sharpness / its stability limit", edge.ratio, edge.step, edge.step, edge.rule)
        )
    return Verdict(
        VerdictKind.STALLED,
        f"loss flat at {stats.loss_level:.3g} ({max(stats.fell, 0.0):.2%} lower over the last half window), "
        f"gradient ‖g‖ ≈ {stats.grad_median:.3g} not small, no rule explains it: cause not determined",
        ctx.last,
        tuple(evidence),
        _remedies(VerdictKind.STALLED),
        wants=("sharpness",),
    )
