"""Checking and laying out a lab run before its loop: groups of equal chains, start points, learning-rate
tables, which steps to record, and the finiteness check. Used by :func:`ravine.surfaces.run_lab`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ravine.errors import ConfigError, DataError, NonFiniteError
from ravine.optim import Identity, Schedule, Transform
from ravine.surfaces._base import Surface
from ravine.surfaces._fused import MixedRule, fusable

__all__ = [
    "Group",
    "LearningRates",
    "check_finite",
    "group_configs",
    "positive",
    "recorded_steps",
    "sigma_schedule",
    "start_points",
    "take_rows",
]


@dataclass
class Group:
    """Configurations that share one transform chain; rows ``lo:hi`` of the run's (n, 2) tensors."""

    transform: Transform
    columns: list[int]
    lo: int = 0
    hi: int = 0
    state: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    identity: bool = False


def group_configs(transforms: Sequence[Transform], *, fuse: bool = True) -> list[Group]:
    """Group equal transforms (same parts and hyper-parameters); each group is advanced by one update call.

    With ``fuse``, the groups of GD, heavy ball, Adagrad and RMSProp become one group advanced by one
    :class:`~ravine.surfaces._fused.MixedRule` update (per-configuration coefficients; its NumPy step also
    costs less dispatch than the rules' foreach ops, so a single such group is run by it too).
    """
    groups: list[Group] = []
    for column, transform in enumerate(transforms):
        for group in groups:
            if group.transform is transform or group.transform == transform:
                group.columns.append(column)
                break
        else:
            groups.append(Group(transform, [column], identity=isinstance(transform, Identity)))
    mixed = [group for group in groups if fusable(group.transform)] if fuse else []
    if len(mixed) >= 2 or (mixed and not mixed[0].identity):  # plain GD alone keeps its one addcmul
        rule = MixedRule([(group.transform, len(group.columns)) for group in mixed])
        fused = Group(rule, [column for group in mixed for column in group.columns])
        fused_ids = {id(group) for group in mixed}
        groups = [fused, *(group for group in groups if id(group) not in fused_ids)]
    lo = 0
    for group in groups:
        group.lo, group.hi = lo, lo + len(group.columns)
        lo = group.hi
    return groups


class LearningRates:
    """η_t of every configuration, served a chunk at a time (a (T, n) table is never built for constants).

    Args:
        labels: Configuration labels (for messages).
        lrs: Per configuration a positive float or a :class:`~ravine.optim.Schedule`.
        num_steps: T.
        dtype: Of the chunks.
    """

    def __init__(
        self, labels: Sequence[str], lrs: Sequence[float | Schedule], num_steps: int, dtype: torch.dtype
    ) -> None:
        constant = []
        self.tables: dict[int, torch.Tensor] = {}
        for column, (label, lr) in enumerate(zip(labels, lrs, strict=True)):
            if isinstance(lr, Schedule):
                table = lr.table(num_steps).to(dtype)
                if table.shape != (num_steps,):
                    raise ConfigError(
                        f"config {label!r}: schedule.table({num_steps}) must have shape ({num_steps},), "
                        f"got {tuple(table.shape)}"
                    )
                if num_steps and (not bool(torch.isfinite(table).all()) or bool((table < 0).any())):
                    raise ConfigError(
                        f"config {label!r}: every learning rate η_t of the schedule must be finite and >= 0, "
                        f"got values from {float(table.min())} to {float(table.max())}"
                    )
                self.tables[column] = table
                constant.append(0.0)
            elif isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
                raise ConfigError(f"config {label!r}: lr must be a positive float or a Schedule, got {lr!r}")
            else:
                constant.append(float(lr))
        self.constant = torch.tensor(constant, dtype=dtype)

    def chunk(self, t0: int, count: int) -> torch.Tensor:
        """η_t for updates t0 + 1 … t0 + count as a (count, n, 1) tensor."""
        out = self.constant.expand(count, -1).clone()
        for column, table in self.tables.items():
            out[:, column] = table[t0 : t0 + count]
        return out.unsqueeze(-1)

    def at(self, updates: torch.Tensor) -> torch.Tensor:
        """η_t at the given 0-based updates, shape (len(updates), n)."""
        out = self.constant.expand(len(updates), -1).clone()
        for column, table in self.tables.items():
            out[:, column] = table[updates]
        return out


def start_points(
    surface: Surface,
    starts: Sequence[tuple[float, float] | None],
    labels: Sequence[str],
    start: object,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The (n, 2) start points: a config's own start, else ``start`` (one or one per config), else the
    surface's; raises :class:`DataError` naming the shape received."""
    n = len(starts)
    if start is None:
        base = surface.start_tensor(dtype).expand(n, 2).clone()
    else:
        base = start.to(dtype) if isinstance(start, torch.Tensor) else torch.as_tensor(start, dtype=dtype)
        if base.shape == (2,):
            base = base.expand(n, 2)
        elif base.shape != (n, 2):
            raise DataError(
                f"run_lab: start must be one point of shape (2,) or one per configuration of shape ({n}, 2), "
                f"got shape {tuple(base.shape)}"
            )
        base = base.clone()
    for i, (label, own) in enumerate(zip(labels, starts, strict=True)):
        if own is not None:
            point = torch.as_tensor(own, dtype=dtype)
            if point.shape != (2,):
                raise DataError(
                    f"config {label!r}: start must be (x, y) of shape (2,), got shape {tuple(point.shape)}"
                )
            base[i] = point
    if not torch.isfinite(base).all():
        raise DataError(f"run_lab: start points must be finite, got {base.tolist()}")
    return base


def check_finite(
    losses: torch.Tensor, grads: torch.Tensor, t0: int, labels: Sequence[str], surface: Surface
) -> None:
    """Raise :class:`NonFiniteError` naming the first (step, config) whose loss or gradient is not finite.

    Two sums prove a chunk finite (NaN or ±Inf anywhere makes its sum non-finite); only when one is not
    (or a sum of finite values overflows) does the element-wise search run.
    """
    if math.isfinite(float(losses.sum())) and math.isfinite(float(grads.sum())):
        return
    bad = ~(torch.isfinite(losses) & torch.isfinite(grads).all(dim=-1))
    if not bad.any():
        return
    rows, cols = torch.nonzero(bad, as_tuple=True)
    first = int(torch.argmin(rows * bad.shape[1] + cols))
    k, i = int(rows[first]), int(cols[first])
    raise NonFiniteError(
        f"surface {surface.name!r}, config {labels[i]!r}: loss or gradient is not finite at step {t0 + k} "
        f"(loss={float(losses[k, i])}, gradient={grads[k, i].tolist()}); the run diverged or the surface "
        "returned NaN: lower the learning rate, or pass on_nonfinite='keep' to record it"
    )


def positive(name: str, value: int) -> int:
    """``value`` if it is an integer >= 1, else a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"run_lab: {name} must be an integer >= 1, got {value!r}")
    return value


def recorded_steps(last: int, every: int, *, include_last: bool) -> torch.Tensor:
    """Steps 0, k, 2k, ... ≤ last, plus ``last`` itself when asked."""
    steps = torch.arange(0, last + 1, every, dtype=torch.long)
    if include_last and (len(steps) == 0 or int(steps[-1]) != last):
        steps = torch.cat([steps, torch.tensor([last], dtype=torch.long)])
    return steps


def sigma_schedule(num_steps: int, every: int, wanted: Sequence[int] | None) -> torch.Tensor:
    """The 0-based updates whose σ to record: ``wanted`` (checked, sorted) or every ``every``-th."""
    if wanted is not None:
        chosen = sorted({int(t) for t in wanted})
        if chosen and (chosen[0] < 0 or chosen[-1] >= num_steps):
            raise ConfigError(
                f"run_lab: sigma_steps must lie in [0, {num_steps - 1}], got {chosen[0]}..{chosen[-1]}"
            )
        return torch.tensor(chosen, dtype=torch.long)
    if num_steps:
        return recorded_steps(num_steps - 1, every, include_last=False)
    return torch.zeros(0, dtype=torch.long)


def take_rows(
    i: int, t0: int, count: int, every: int, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> int:
    """Copy this chunk's rows at steps that are multiples of ``every`` to rows i, i+1, ... of the targets;
    returns the next free row."""
    first = (-t0) % every
    taken = len(range(first, count, every))
    if taken:
        for target, source in pairs:
            target[i : i + taken] = source[first:count:every]
    return i + taken
