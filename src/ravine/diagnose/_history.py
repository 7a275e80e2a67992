"""What the monitor records: the per-step columns, in bounded memory however long the run.

Every column is a :class:`~ravine.diagnose._series.Column`: it reads like a list with one entry per
optimizer step of the whole run, keeps the newest rows (and the first ones) exactly and older ones as
(min, median, max) blocks that double in size with age, so memory is O(window + log(steps)).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from ravine.diagnose._series import Block, Column, StepColumn

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


class Columns(dict[str, Any]):
    """A history's columns by name, with room for the verdict rules' running summary of them.

    The rules keep aggregates over the whole history (best loss, largest gradient, ...) in :attr:`summary`,
    folded in as rows arrive, so that a verdict costs the same at any run length. Rows may only be appended
    or dropped from the end; :meth:`shrunk` records a drop so that the summary can discard what it knew of
    the dropped rows.
    """

    def __init__(self, columns: Mapping[str, Any] | None = None) -> None:
        super().__init__(columns or {})
        self.summary: object | None = None
        self.low_water: int | None = None

    def shrunk(self, length: int) -> None:
        """Note that the columns were cut back to ``length`` rows."""
        self.low_water = length if self.low_water is None else min(self.low_water, length)


class History:
    """What the monitor recorded, one row per optimizer step (taken or refused), in bounded memory.

    Args:
        layer_names: Names of the trainable parameters.
        recent: Newest rows kept at full resolution in every column (older ones are downsampled).
        layer_window: Newest rows whose per-parameter norms are kept.
        names: The columns (default :data:`COLUMNS`).

    Attributes:
        steps: The monitor's step index of each row (0, 1, ...; one per optimizer step), a list-like
            :class:`~ravine.diagnose._series.StepColumn` over the whole run.
        columns: Per-step signals by name (see :data:`COLUMNS`), each a list-like
            :class:`~ravine.diagnose._series.Column` over the whole run: exact for the first 64 and the
            newest ``recent`` rows, block medians in between (see :meth:`blocks` for min/median/max).
        layer_names: Names of the trainable parameters.
        layer_grad_norms: Per-parameter gradient norms of the newest ``layer_window`` rows, one list per row.
        layer_update_norms: Per-parameter update norms ‖θ_t − θ_{t−1}‖ of the same rows (NaN where the update
            was not measured).

    Example:
        >>> history = History(["w"], recent=8)
        >>> for step in range(1000):
        ...     history.append(step, {"loss": 1.0 / (step + 1)})
        >>> len(history), history.steps[-1], history.columns["loss"][-1]
        (1000, 999, 0.001)
        >>> history.columns["loss"].exact_from > 900
        True
    """

    def __init__(
        self,
        layer_names: Sequence[str],
        *,
        recent: int = 4096,
        layer_window: int = 256,
        names: Sequence[str] = COLUMNS,
    ) -> None:
        self.layer_names = list(layer_names)
        self.recent = recent
        self.steps: StepColumn = StepColumn(recent=recent)
        self.columns: Columns = Columns({name: Column(recent=recent) for name in names})
        self.layer_grad_norms: deque[list[float]] = deque(maxlen=layer_window)
        self.layer_update_norms: deque[list[float]] = deque(maxlen=layer_window)

    def __len__(self) -> int:
        return len(self.steps)

    def append(
        self,
        step: int,
        values: Mapping[str, float],
        layer_grad: Sequence[float] | None = None,
        layer_update: Sequence[float] | None = None,
    ) -> None:
        """Add a row: ``values`` by column name (columns not named get NaN), per-parameter norms optional."""
        self.steps.append(step)
        nan = float("nan")
        for name, column in self.columns.items():
            column.append(values.get(name, nan))
        self.layer_grad_norms.append(list(layer_grad) if layer_grad is not None else [])
        self.layer_update_norms.append(list(layer_update) if layer_update is not None else [])

    def pop(self) -> None:
        """Drop the last row (it is about to be rewritten)."""
        self.steps.pop()
        for column in self.columns.values():
            column.pop()
        if self.layer_grad_norms:
            self.layer_grad_norms.pop()
        if self.layer_update_norms:
            self.layer_update_norms.pop()
        self.columns.shrunk(len(self.steps))

    def blocks(self, name: str) -> list[tuple[int, int, float, float, float]]:
        """Column ``name`` over the whole run as (first step, last step, min, median, max) stretches: single
        rows where kept exactly, blocks of rows where downsampled (for figures that draw an envelope)."""
        steps = self.steps
        return [(steps[a], steps[b], lo, mid, hi) for a, b, lo, mid, hi in self.columns[name].blocks()]

    def nbytes(self) -> int:
        """Bytes of the recorded values (columns, steps and per-parameter rows; not Python's overhead)."""
        per_row = 8 * len(self.layer_names)
        rows = len(self.layer_grad_norms) + len(self.layer_update_norms)
        columns = sum(int(c.nbytes()) for c in self.columns.values())
        return self.steps.nbytes() + columns + per_row * rows


__all__ += ["Block"]
