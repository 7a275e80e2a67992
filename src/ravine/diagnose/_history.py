"""What the monitor records and how often: the per-step columns, the history, the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["COLUMNS", "Columns", "History"]

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
