"""The diagnostician's settings: how often the monitor does what (:class:`MonitorConfig`) and the numbers its
rules compare against (:class:`Thresholds`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from ravine.errors import ConfigError

__all__ = ["MonitorConfig", "Thresholds", "check_config", "check_fields"]


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
    small_sensitivity: float = 1e-3
    stuck_factor: float = 3.0
    constant_margin: float = 0.02
    dead_share: float = 0.9
    depth_ratio: float = 1e3
    edge_ratio: float = 0.9

    def __post_init__(self) -> None:
        check_fields(self, _THRESHOLD_DOMAINS)


@dataclass(frozen=True)
class MonitorConfig:
    """How often the monitor does what.

    Attributes:
        judge_every: Steps between verdicts (each one reads the history: O(window) Python work).
        probe_every: Steps between amortised probes (one Hessian-vector product and two half-batch gradients;
            needs ``loss_fn`` and ``batch=``, or ``closure=``). 0 disables probes.
        probe_batch: At most this many samples of the batch are used by a probe or a classification.
        update_every: Steps between measurements of the update Δθ (each costs one copy of θ and a few
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
        probe_budget: Share of the training time the probes may take while the regime is steady: after a
            steady probe the next one is put off until the measured training time makes up for it (the last
            probe's seconds / (probe_budget · seconds per step)). The probes right after a change of regime,
            and those the rules ask for, are not delayed. 0: no time limit, so that the probe steps do not
            depend on the machine's speed (e.g. for reproducible tests). Either way the interval doubles while
            the regime stays the same and is reset to ``probe_every`` when it changes.
        probe_max_every: The longest interval between probes. None (default): the rules' window while the
            regime is not healthy (each window of judged steps holds a probe), 32 windows while it is healthy
            (a healthy verdict reads the falling loss; when the loss stops falling clearly and the window holds
            no probe, the monitor probes at that judgement).
        history_window: Newest steps kept at full resolution in every column of the history (at least
            ``burst_memory + 2·window`` + a margin); older steps are kept as (min, median, max) blocks that
            double in size with age, so the history's memory does not grow with the run.
        layer_window: Newest steps whose per-parameter norms are kept.
        max_records: Newest probes, classifications and refused steps kept (plus the first few).
        sketch_size: Buckets of the sketches that give the cosine of successive updates and the distance from
            the start on models with more than 4× as many parameters (±1/√k on a cosine); smaller models
            keep exact copies.
        recent_batch_bytes: Tensor bytes of the older batches kept in ``monitor.recent_batches`` besides the
            newest (at most 8 batches; references to the batches given, not copies). 0: only the newest.
        log_every: Steps between rows sent to the loggers (TensorBoard, Lightning's or HF's).
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
    probe_budget: float = 0.01
    probe_max_every: int | None = None
    history_window: int = 4096
    layer_window: int = 256
    max_records: int = 1024
    sketch_size: int = 4096
    recent_batch_bytes: int = 64 * 2**20
    log_every: int = 1
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        if not isinstance(self.thresholds, Thresholds):
            raise ConfigError(
                f"MonitorConfig: thresholds must be a Thresholds, got {type(self.thresholds).__name__}; pass "
                "thresholds=Thresholds(...)"
            )
        check_fields(self, _CONFIG_DOMAINS)


Domain = tuple[str, float, float, bool]
"""(kind, low, high, low inclusive): kind "int" (integers, bool refused) or "float" (finite numbers); the
value must lie in [low, high] (or (low, high] when low is not inclusive)."""

_INT: Domain = ("int", 1, math.inf, True)
_FLOAT: Domain = ("float", 0.0, math.inf, True)
_POSITIVE: Domain = ("float", 0.0, math.inf, False)
_SHARE: Domain = ("float", 0.0, 1.0, True)
_COSINE: Domain = ("float", -1.0, 1.0, True)
_FACTOR: Domain = ("float", 1.0, math.inf, False)

_THRESHOLD_DOMAINS: dict[str, Domain] = {
    "window": ("int", 10, math.inf, True),
    "small_grad_ratio": _SHARE,
    "cos_anti": _COSINE,
    "cos_aligned": _COSINE,
    "cos_uncorrelated": _SHARE,
    "overshoot": _POSITIVE,
    "spike_factor": _FACTOR,
    "burst_lr_factor": _FACTOR,
    "blowup_factor": _FACTOR,
    "converged_fraction": _SHARE,
    "noise_floor_progress": _SHARE,
    "dead_share": _SHARE,
    "edge_ratio": _POSITIVE,
    "depth_ratio": _POSITIVE,
    "stuck_factor": _POSITIVE,
}
"""Fields with a narrower domain than their type's default (ints >= 1, floats finite and >= 0)."""

_CONFIG_DOMAINS: dict[str, Domain] = {
    "probe_every": ("int", 0, math.inf, True),
    "small_model": ("int", 0, math.inf, True),
    "history_window": ("int", 256, math.inf, True),
    "sketch_size": ("int", 16, math.inf, True),
    "probe_budget": _SHARE,
    "recent_batch_bytes": ("int", 0, math.inf, True),
}


def _describe(domain: Domain) -> str:
    kind, low, high, inclusive = domain
    what = "an integer" if kind == "int" else "a finite number"
    if high == math.inf:
        return f"{what} {'>=' if inclusive else '>'} {low:g}"
    return f"{what} in {'[' if inclusive else '('}{low:g}, {high:g}]"


def check_fields(obj: object, domains: dict[str, Domain]) -> None:
    """Check every field of a config dataclass against its domain (from ``domains``, else its type)."""
    owner = type(obj).__name__
    for item in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, item.name)
        annotation = str(item.type)
        default = item.default
        if annotation == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{owner}: {item.name} must be True or False, got {item.name}={value!r}")
            continue
        if annotation == "int | None" and value is None:
            continue
        if annotation not in ("int", "float", "int | None"):
            continue
        domain = domains.get(item.name, _INT if annotation.startswith("int") else _FLOAT)
        kind, low, high, inclusive = domain
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = number and (isinstance(value, int) if kind == "int" else math.isfinite(value))
        if ok:
            ok = (value >= low if inclusive else value > low) and value <= high
        if not ok:
            extra = " or None (automatic)" if annotation == "int | None" else ""
            raise ConfigError(
                f"{owner}: {item.name} must be {_describe(domain)}{extra}, got {item.name}={value!r} "
                f"(the default is {item.name}={default!r})"
            )


def check_config(config: object) -> MonitorConfig:
    """The Monitor's config: ``MonitorConfig()`` for None, the config itself if it is one, else an error."""
    if config is None:
        return MonitorConfig()
    if not isinstance(config, MonitorConfig):
        raise ConfigError(f"Monitor: config must be a MonitorConfig, got {type(config).__name__}")
    return config
