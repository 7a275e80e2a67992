"""Learning-rate schedule figures: one schedule on an axes, or a gallery of many on one figure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ravine.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ravine.optim import Schedule

__all__ = ["gallery_schedules", "plot_schedule", "plot_schedule_gallery"]


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained", dpi=110)


def plot_schedule(
    schedule: Schedule,
    num_steps: int,
    ax: Axes | None = None,
    *,
    label: str | None = None,
    log_y: bool = False,
) -> Axes:
    """Draw η_t for t = 0..num_steps−1 (from ``schedule.table``) on ``ax`` (a new figure's if ``None``).

    Example:
        >>> from ravine.optim import CosineDecay
        >>> ax = plot_schedule(CosineDecay(100), 120)
        >>> len(ax.get_lines()[0].get_xdata())
        120
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ConfigError(f"plot_schedule: num_steps must be an integer >= 1, got {num_steps=}")
    if ax is None:
        ax = _figure(6.0, 3.5).add_subplot()
    values = schedule.table(num_steps).numpy()
    ax.plot(range(num_steps), values, label=label if label is not None else type(schedule).__name__)
    ax.set_xlabel("update t (updates already taken)")
    ax.set_ylabel("learning rate η_t")
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    return ax


def plot_schedule_gallery(schedules: Mapping[str, Schedule], num_steps: int, *, columns: int = 3) -> Figure:
    """One small panel per schedule, titled by its key."""
    if not schedules:
        raise ConfigError("plot_schedule_gallery: give at least one schedule")
    rows = -(-len(schedules) // columns)
    figure = _figure(3.4 * columns, 2.4 * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, (name, schedule) in zip(axes.flat, schedules.items(), strict=False):
        plot_schedule(schedule, num_steps, ax, label=name)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("t")
        ax.set_ylabel("η_t")
    for ax in list(axes.flat)[len(schedules) :]:
        ax.set_visible(False)
    return figure


def gallery_schedules(steps: int) -> dict[str, Schedule]:
    """The schedules the gallery shows for a run of ``steps`` updates: the lectures' warmups and the usual decays.

    Example:
        >>> list(gallery_schedules(100))[:3]
        ['constant', 'step decay (γ=0.5)', 'exponential (γ=0.99)']
    """
    import ravine.optim as ro

    warm = max(1, steps // 10)
    return {
        "constant": ro.Constant(1.0),
        "step decay (γ=0.5)": ro.StepDecay(max(1, steps // 4), 0.5),
        "exponential (γ=0.99)": ro.ExponentialDecay(0.99),
        "inverse sqrt 1/√(t+1)": ro.InverseSqrtDecay(),
        "Adagrad lr_decay=0.01": ro.InverseTimeDecay(0.01),
        "cosine": ro.CosineDecay(steps),
        f"linear warmup ({warm})": ro.LinearWarmup(warm),
        f"Transformer d=64, w={warm}": ro.TransformerSchedule(64, warm),
        f"ResNet warmup 0.01→0.1 ({warm})": ro.ResNetWarmup(warm),
        "warmup then cosine": ro.Sequential([ro.LinearWarmup(warm), ro.CosineDecay(steps - warm)], [warm]),
    }
