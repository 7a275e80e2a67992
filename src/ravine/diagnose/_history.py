"""What the monitor records and how often: the per-step columns, the history, the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from ravine.diagnose._records import Thresholds
from ravine.errors import ConfigError

__all__ = ["COLUMNS", "Columns", "History", "MonitorConfig", "MonitorWarning"]

COLUMNS = (
    "loss",
    "grad_norm",
    "update_norm",
    "weight_norm",
    "update_ratio",
    "cos_prev",
    "distance",
    "lr",
    "eff_lr",
)
"""Per-step signals recorded by the monitor, in this order (NaN where not measured at that step)."""


class Columns(dict[str, list[float]]):
    """A history's columns by name, with room for the verdict rules' running summary of them.

    The rules keep aggregates over the whole history (best loss, largest gradient, ...) in :attr:`summary`,
    folded in as rows arrive, so that a verdict costs the same at any run length. Rows may only be appended
    or dropped from the end; :meth:`shrunk` records a drop so that the summary can discard what it knew of
    the dropped rows.
    """

    def __init__(self, columns: dict[str, list[float]] | None = None) -> None:
        super().__init__(columns or {})
        self.summary: object | None = None
        self.low_water: int | None = None

    def shrunk(self, length: int) -> None:
        """Note that the columns were cut back to ``length`` rows."""
        self.low_water = length if self.low_water is None else min(self.low_water, length)


class MonitorWarning(UserWarning):
    """The monitor's own failure (warned about once; the details are in ``monitor.errors``)."""


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


@dataclass
class History:
    """What the monitor recorded, one row per optimizer step.

    Attributes:
        steps: The monitor's step index of each row (0, 1, ...; one per optimizer step).
        columns: Per-step signals by name (see :data:`COLUMNS`).
        layer_names: Names of the trainable parameters.
        layer_grad_norms: Per-parameter gradient norms, one list per row.
        layer_update_norms: Per-parameter update norms ‖θ_t − θ_{t−1}‖, one list per row (NaN where the
            update was not measured).
    """

    layer_names: list[str]
    steps: list[int] = field(default_factory=list)
    columns: dict[str, list[float]] = field(default_factory=lambda: Columns({name: [] for name in COLUMNS}))
    layer_grad_norms: list[list[float]] = field(default_factory=list)
    layer_update_norms: list[list[float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.steps)

    def pop(self) -> None:
        """Drop the last row (it is about to be rewritten)."""
        self.steps.pop()
        for column in self.columns.values():
            column.pop()
        self.layer_grad_norms.pop()
        self.layer_update_norms.pop()
        if isinstance(self.columns, Columns):
            self.columns.shrunk(len(self.steps))
