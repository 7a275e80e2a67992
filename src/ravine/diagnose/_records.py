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
    "Remedy",
    "Thresholds",
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
        onset: First judged step from which this kind has been returned without interruption (set by the
            monitor; equals ``step`` when judged once).
    """

    kind: VerdictKind
    summary: str
    step: int
    evidence: tuple[Evidence, ...] = ()
    remedies: tuple[Remedy, ...] = ()
    onset: int = -1

    @property
    def healthy(self) -> bool:
        """True when nothing is wrong."""
        return self.kind is VerdictKind.HEALTHY


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


@dataclass(frozen=True)
class Thresholds:
    """The numbers the rules compare against; defaults are calibrated on the labelled suite in the tests.

    Attributes:
        window: Steps the rules look back over.
        plateau_tol: A loss falling by less than this share of its level per window is flat.
        plateau_z: ... or by less than this many standard errors of the halves' means (batch noise).
        small_grad_ratio: ‖g‖ below this share of its largest value so far is small.
        small_grad_abs: ‖g‖ below this is small whatever its history.
        cos_anti: Mean cosine of successive updates at or below this: they bounce (ravine).
        cos_aligned: Mean cosine at or above this: they agree (LR too small).
        cos_uncorrelated: |mean cosine| below this: uncorrelated (noise, weak evidence).
        overshoot: Step over the 1-D optimum along it (η·λ_d for SGD) at or above this: bouncing.
        undershoot: Step over the 1-D optimum below this: far too short.
        tiny_update_ratio: ‖Δθ‖/‖θ‖ below this is a tiny step.
        snr_noise: Gradient signal-to-noise ratio below this: noise dominates.
        spike_factor: A loss this many times the median before it is a spike; it recovers when it falls this
            many times below its peak.
        burst_lr_factor: Growth of the effective learning rate η/σ that makes a spike an adaptive-LR burst.
        burst_memory: Steps back the burst rule searches.
        blowup_factor: Loss this many times above its best (and rising) is diverging.
        converged_fraction: Loss below this share of its start is converged.
        classification_max_age: Steps a Hessian classification stays valid.
        noise_floor_progress: A flat, noise-dominated loss that has already fallen by this share of its start is
            at its noise floor around a minimum (healthy, converged); one that has not is stuck in noise.
    """

    window: int = 100
    plateau_tol: float = 0.01
    plateau_z: float = 2.0
    small_grad_ratio: float = 0.02
    small_grad_abs: float = 1e-3
    cos_anti: float = -0.3
    cos_aligned: float = 0.5
    cos_uncorrelated: float = 0.3
    overshoot: float = 1.8
    undershoot: float = 0.02
    tiny_update_ratio: float = 1e-5
    snr_noise: float = 1.0
    spike_factor: float = 10.0
    burst_lr_factor: float = 5.0
    burst_memory: int = 2000
    blowup_factor: float = 10.0
    converged_fraction: float = 1e-3
    classification_max_age: int = 300
    noise_floor_progress: float = 0.2
