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
