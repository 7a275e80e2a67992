"""Figure helpers shared by every part: a consistent look and saving to PNG/SVG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ravine.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["new_figure", "save_figure", "scale_to_data"]

_FORMATS = ("png", "svg", "pdf")


def new_figure(*, width: float = 7.0, height: float = 4.5) -> Figure:
    """A figure with ravine's look (Agg backend, constrained layout, readable font sizes)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained", dpi=110)
    figure.set_facecolor("white")
    return figure


def save_figure(figure: Figure, path: Path | str, *, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write ``figure`` once per format next to ``path`` (its suffix is replaced); returns the files written.

    Raises:
        ConfigError: If a format is not one of png, svg, pdf.
    """
    unknown = [fmt for fmt in formats if fmt not in _FORMATS]
    if unknown:
        raise ConfigError(f"save_figure: unknown format(s) {unknown}; choose from {_FORMATS}")
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = base.with_suffix(f".{fmt}")
        figure.savefig(target, format=fmt, dpi=130 if fmt == "png" else None)
        written.append(target)
    return written


def scale_to_data(ax: Axes, *, axis: Literal["x", "y"] = "y", min_ratio: float = 30.0) -> bool:
    """A log scale on ``axis`` when the positive data of ``ax``'s lines span at least ``min_ratio``, else linear.

    A log axis over a narrow range (a loss that stays within 1% of 483.5, say) shows one odd tick such as
    "4.835×10²"; a linear axis then prints plain numbers, without an offset such as "1e−7 + 1" that would make
    round-off look like swings, and data that vary by less than 1% get an axis ±1% around their mean, so that
    they read as the flat line they are. Call it after plotting. Returns whether the axis is logarithmic.

    Example:
        >>> ax = new_figure().add_subplot()
        >>> _ = ax.plot([1, 2, 3], [483.4, 483.5, 483.6])
        >>> scale_to_data(ax)
        False
        >>> _ = ax.plot([1, 2, 3], [1e-3, 1.0, 1e3])
        >>> scale_to_data(ax)
        True
    """
    import numpy as np

    data_lines = [line for line in ax.lines if line.get_transform() == ax.transData]  # not axhline/axvline
    chunks = [
        np.asarray(line.get_ydata() if axis == "y" else line.get_xdata(), dtype=float) for line in data_lines
    ]
    values = np.concatenate(chunks) if chunks else np.array([])
    values = values[np.isfinite(values)]
    positive = values[values > 0]
    wide = len(positive) > 0 and len(positive) == len(values) and positive.max() >= min_ratio * positive.min()
    if wide:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    else:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("linear")
        # powers of ten only for very small or large values (as ×10ⁿ over the axis), never an offset
        ax.ticklabel_format(axis=axis, style="sci", scilimits=(-3, 5), useOffset=False)
        if len(values):
            middle, spread = float(np.mean(values)), float(values.max() - values.min())
            if middle != 0 and spread < 0.01 * abs(middle):  # under 1%: round-off, not a swing; show it flat
                half = 0.01 * abs(middle)
                (ax.set_ylim if axis == "y" else ax.set_xlim)(middle - half, middle + half)
    return bool(wide)
