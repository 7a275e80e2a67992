"""Verdicts as data: what kind, the evidence (numbers with the steps they came from), the remedies; and the
records the monitor's probes leave behind for the rules to read."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CriticalPointRecord",
    "Evidence",
    "ProbeRecord",
    "Regime",
    "Remedy",
    "SharpnessRecord",
    "Verdict",
    "VerdictKind",
]


class VerdictKind(StrEnum):
    """What is going on with training."""

    HEALTHY = "healthy"
    RAVINE_OSCILLATION = "ravine oscillation"
    LR_TOO_SMALL = "LR too small"
    SADDLE_POINT = "saddle point"
    LOCAL_MINIMUM_LIKE = "local-minimum-like"
    CRITICAL_POINT = "critical point (unclassified)"
    DIVERGING = "diverging"
    NOISE_DOMINATED = "noise-dominated"
    ADAPTIVE_LR_BURSTS = "adaptive-LR bursts"
    DIVERGED_STUCK = "diverged and stuck"
    DEAD_UNITS = "dead units / constant predictor"
    GRADIENT_DEPTH = "vanishing/exploding gradients"
    STALLED = "stalled (cause not determined)"


@dataclass(frozen=True)
class Evidence:
    """One number behind a verdict, and the steps it came from (inclusive)."""

    name: str
    value: float
    first_step: int
    last_step: int
    detail: str = ""


@dataclass(frozen=True)
class Remedy:
    """What to try, after the lectures."""

    title: str
    detail: str


@dataclass(frozen=True)
class Verdict:
    """A diagnosis: the kind, a one-line summary, the evidence and the remedies.

    Attributes:
        kind: What is going on.
        summary: One line for a terminal.
        step: The optimizer step the verdict was made at.
        evidence: The numbers behind it, with the steps they came from.
        remedies: What to try.
        onset: First step of the current regime of this kind (set by the monitor's hysteresis; equals
            ``step`` when judged once).
        provisional: True when too little was recorded to judge (such a verdict never opens a regime).
        wants: Measurements the rules would like before trusting this verdict ("classify": the Hessian's
            extreme eigenvalues; "sharpness": the (preconditioned) sharpness against its stability limit).
        confirmed: The kind is backed by a direct measurement of its mechanism (a non-finite loss, the Hessian's
            negative eigenvalue, the sharpness at its stability limit, dead units): the regime tracker enters
            it without waiting for a second judgement when the current regime is healthy or unexplained.
    """

    kind: VerdictKind
    summary: str
    step: int
    evidence: tuple[Evidence, ...] = ()
    remedies: tuple[Remedy, ...] = ()
    onset: int = -1
    provisional: bool = False
    wants: tuple[str, ...] = ()
    confirmed: bool = False

    @property
    def healthy(self) -> bool:
        """True when nothing is wrong."""
        return self.kind is VerdictKind.HEALTHY

    def __str__(self) -> str:
        """One readable line: the kind, the summary, since when, and the first remedy.

        Example:
            >>> print(Verdict(VerdictKind.HEALTHY, "loss falling 3.0% per 100 steps", 200, onset=25))
            healthy: loss falling 3.0% per 100 steps (since step 25)
        """
        since = f" (since step {self.onset})" if self.onset >= 0 else ""
        remedy = f"; try: {self.remedies[0].title}" if self.remedies else ""
        return f"{self.kind.value}: {self.summary}{since}{remedy}"


@dataclass(frozen=True)
class ProbeRecord:
    """An amortised probe at one step (NaN where not measured).

    Attributes:
        step: Optimizer step.
        curvature: dᵀHd/‖d‖² along the last update d.
        overshoot: dᵀHd / (−g_prevᵀd): the step's length over the 1-D optimum along d (2 = bouncing in place;
            for SGD it is η·curvature, the lecture's "η·λ vs 2").
        lr: The learning rate of the first parameter group.
        stability_limit: 2/η (SGD's limit on the curvature along d).
        effective_lr_max: Largest per-element η/σ (adaptive optimizers whose state ravine can read), else NaN.
        effective_lr_median: Median per-element η/σ, else NaN.
        snr: ‖E g‖² / (tr Σ / b) for the training batch size b (below 1: the batch gradient is mostly noise).
        noise_scale: tr Σ / ‖E g‖², the "simple noise scale" (batch size at which noise equals signal).
        trace_sigma: tr Σ, the per-sample gradient covariance's trace (for smoothing B_simple over probes).
        signal: The unbiased estimate of ‖E g‖² (may be negative on one probe; smoothed over probes).
        batch_size: The training batch size b.
        full_batch: The same batch was seen at every probe so far (full-batch training: no gradient noise).
        noise_note: Why the noise was not measured, when it was not.
        objective_grad_norm: ‖g + λθ‖ with λ the optimizer's coupled weight decay (= ‖g‖ without one).
        dead_share: Share of activation units (ReLU-like modules) that are zero on every probe sample.
        dead_layers: Per activation module: (name, share of its units dead).
        output_spread: Std of the model's outputs across the probe batch over their RMS (0: constant output).
        constant_loss: The loss of the best constant predictor on the probe batch.
        probe_loss: The model's loss on the probe batch.
        depth_profile: Per weight matrix, input side first: (name, ‖g‖/‖θ‖).
    """

    step: int
    curvature: float = math.nan
    overshoot: float = math.nan
    lr: float = math.nan
    stability_limit: float = math.nan
    effective_lr_max: float = math.nan
    effective_lr_median: float = math.nan
    snr: float = math.nan
    noise_scale: float = math.nan
    trace_sigma: float = math.nan
    signal: float = math.nan
    batch_size: int = 0
    full_batch: bool = False
    noise_note: str = ""
    objective_grad_norm: float = math.nan
    dead_share: float = math.nan
    dead_layers: tuple[tuple[str, float], ...] = ()
    output_spread: float = math.nan
    constant_loss: float = math.nan
    probe_loss: float = math.nan
    depth_profile: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class SharpnessRecord:
    """The edge-of-stability test at one step (Cohen et al. 2021, 2022).

    Attributes:
        step: Optimizer step.
        sharpness: λ_max of the optimizer-scaled Hessian: η·H for (momentum) SGD, E^½ H E^½ with E = η/σ the
            per-element effective learning rate for adaptive optimizers (the preconditioned sharpness; its
            eigenvalues are those of P⁻¹H with P = σ/η).
        threshold: The stability limit of that quantity for this optimizer: 2 (GD), 2 + 2β (heavy ball),
            (2 + 2β)/(1 + 2β) (Nesterov), (2 + 2β₁)/(1 − β₁) (Adam's EMA momentum; 38 at β₁ = 0.9).
        raw_lambda_max: λ_max of H itself.
        preconditioned: Whether an adaptive denominator was applied.
        converged: Whether Lanczos certified the eigenvalue.
        num_hvps: Hessian-vector products spent.
        rule: How the threshold was derived (text).
    """

    step: int
    sharpness: float
    threshold: float
    raw_lambda_max: float
    preconditioned: bool
    converged: bool
    num_hvps: int
    rule: str

    @property
    def ratio(self) -> float:
        """sharpness / threshold (≥ 1: at or beyond the edge of stability)."""
        return self.sharpness / self.threshold if self.threshold > 0 else math.nan


@dataclass(frozen=True)
class Regime:
    """A stretch of training with one verdict kind (entered on evidence, left only on counter-evidence).

    Attributes:
        kind: The verdict kind.
        onset: First judged step of the regime (where its evidence began).
        last_step: Latest judged step still in the regime.
        entered: The step at which the monitor switched to it (its detection).
    """

    kind: VerdictKind
    onset: int
    last_step: int
    entered: int = -1


@dataclass(frozen=True)
class CriticalPointRecord:
    """A Hessian classification made on a small-gradient plateau.

    Attributes:
        step: Optimizer step.
        kind: "saddle", "minimum-like", "maximum-like" or "inconclusive".
        grad_norm: ‖g‖ on the probe batch.
        lambda_min: Smallest Hessian eigenvalue found.
        lambda_max: Largest Hessian eigenvalue found.
        source: "ravine.curvature" or "monitor lanczos".
        escape_norms: Per-layer norms of the escape direction (the λ_min eigenvector), saddles only.
        escape_loss_drop: Loss decrease of a trial step along the escape direction (not applied), saddles only.
    """

    step: int
    kind: str
    grad_norm: float
    lambda_min: float
    lambda_max: float
    source: str
    escape_norms: tuple[tuple[str, float], ...] = ()
    escape_loss_drop: float = math.nan
