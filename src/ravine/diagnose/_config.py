"""The diagnostician's settings: how often the monitor does what (:class:`MonitorConfig`) and the numbers its
rules compare against (:class:`Thresholds`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ravine.errors import ConfigError

__all__ = ["MonitorConfig", "Thresholds"]


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


@dataclass(frozen=True)
class MonitorConfig:
    """How often the monitor does what.

    Attributes:
        judge_every: Steps between verdicts (each one reads the history: O(window) Python work).
        probe_every: Steps between amortised probes (one Hessian-vector product and two half-batch gradients;
            needs ``loss_fn`` and ``batch=``, or ``closure=``). 0 disables probes.
        probe_batch: At most this many samples of the batch are used by a probe or a classification.
        update_every: Steps between measurements of the update Δθ (each costs two copies of θ and a few
            passes over it; the loss and the gradient norms are recorded on every step). None: every step for
            models up to ``small_model`` parameters, every 10 steps above.
        small_model: Parameter count up to which ``update_every=None`` measures every step.
        weight_norm_every: Steps between recomputing the weight norms (they change slowly).
        distance_every: Steps between computing the distance from the start ‖θ_t − θ_0‖.
        flush_every: Steps between moving the recorded signals to the host (one synchronisation).
        classify: Classify small-gradient plateaus by the Hessian's extreme eigenvalues (ravine.curvature).
        max_dense_params: Up to this many parameters the classification uses the exact (dense) Hessian.
        lanczos_hvps: Hessian-vector products the Lanczos classification may spend (larger models).
        saddle_tol: λ_min < −saddle_tol·max|λ| counts as negative curvature.
        thresholds: The verdict rules' numbers.
    """

    judge_every: int = 25
    probe_every: int = 25
    probe_batch: int = 256
    update_every: int | None = None
    small_model: int = 200_000
    weight_norm_every: int = 10
    distance_every: int = 10
    flush_every: int = 32
    classify: bool = True
    max_dense_params: int = 2000
    lanczos_hvps: int = 60
    saddle_tol: float = 1e-3
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        for name in (
            "judge_every",
            "weight_norm_every",
            "distance_every",
            "flush_every",
            "probe_batch",
            "lanczos_hvps",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"MonitorConfig: {name} must be >= 1, got {name}={value}")
        if self.probe_every < 0:
            raise ConfigError(f"MonitorConfig: probe_every must be >= 0, got probe_every={self.probe_every}")
        if self.update_every is not None and self.update_every < 1:
            raise ConfigError(
                f"MonitorConfig: update_every must be >= 1 or None (automatic), got update_every={self.update_every}"
            )
