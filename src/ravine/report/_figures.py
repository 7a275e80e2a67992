"""Figure helpers shared by every part: a consistent look and saving to PNG/SVG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ravine.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["new_figure", "save_figure"]

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
