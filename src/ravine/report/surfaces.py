"""Figures of the surface lab: contour maps with trajectories, loss and ‖g‖ curves, σ and η/σ per axis,
and an animated GIF of the trajectories. Inputs are :class:`~ravine.surfaces.LabRun` data; nothing runs here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ravine.errors import ConfigError
from ravine.report._figures import new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ravine.surfaces import LabRun, Surface
    from ravine.surfaces.stories import Story

__all__ = [
    "animate_trajectories",
    "contour_figure",
    "curves_figure",
    "effective_lr_figure",
    "plot_indices",
    "story_figures",
    "write_story_figures",
]

_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def plot_indices(count: int, *, dense: int = 2000, sparse: int = 1500) -> torch.Tensor:
    """Rows to draw from a trajectory of ``count`` rows: all of the first ``dense`` (so a step-by-step
    bounce is not aliased away), then about ``sparse`` log-spaced rows, and always the last."""
    if count <= dense + sparse:
        return torch.arange(count)
    head = torch.arange(dense)
    tail = torch.logspace(
        math.log10(max(dense, 1)), math.log10(count - 1), sparse, dtype=torch.float64
    ).long()
    rows: torch.Tensor = torch.unique(torch.cat([head, tail, torch.tensor([count - 1])]))
    return rows


def _grid(surface: Surface, resolution: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    (x0, x1), (y0, y1) = surface.bounds
    xs = torch.linspace(x0, x1, resolution, dtype=torch.float64)
    ys = torch.linspace(y0, y1, resolution, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    z = surface.loss(torch.stack((gx, gy), dim=-1))
    return gx, gy, z


def _draw_contours(ax: Axes, surface: Surface, *, levels: int, resolution: int) -> None:
    import numpy as np
    from matplotlib.colors import LogNorm

    gx, gy, z = _grid(surface, resolution)
    shifted = (z - min(float(z.min()), surface.min_value)).clamp_min(0)
    positive = shifted[shifted > 0]
    low = max(float(positive.min()) if len(positive) else 1e-12, float(shifted.max()) * 1e-9, 1e-300)
    high = max(float(shifted.max()), low * 10)
    lv = np.logspace(math.log10(low), math.log10(high), levels)
    ax.contour(
        gx.numpy(),
        gy.numpy(),
        shifted.clamp_min(low).numpy(),
        levels=lv,
        norm=LogNorm(),
        cmap="viridis",
        linewidths=0.7,
    )
    shown: set[str] = set()
    for m in surface.minima:
        label = f"{m.kind} minimum"
        ax.plot(
            *m.point,
            marker="*",
            ms=13,
            color="gold" if m.kind == "global" else "white",
            mec="black",
            zorder=6,
            ls="none",
            label=None if label in shown else label,
        )
        shown.add(label)
    for n, point in enumerate(surface.saddles):
        ax.plot(
            *point,
            marker="P",
            ms=10,
            color="white",
            mec="black",
            zorder=6,
            ls="none",
            label=None if n else "saddle point",
        )
    ax.set_xlim(*surface.bounds[0])
    ax.set_ylim(*surface.bounds[1])
    ax.set_xlabel("x (w₁)")
    ax.set_ylabel("y (w₂)")


def _columns(run: LabRun, labels: Sequence[str] | None) -> list[int]:
    return [run.index(label) for label in (labels if labels is not None else run.labels)]


def contour_figure(
    surface: Surface,
    run: LabRun,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    levels: int = 30,
    resolution: int = 200,
) -> Figure:
    """Contour map of ``surface`` (log-spaced levels of L − L_min) with each configuration's path."""
    fig = new_figure(width=7.5, height=5.0)
    ax = fig.add_subplot()
    _draw_contours(ax, surface, levels=levels, resolution=resolution)
    rows = plot_indices(len(run.theta_steps))
    columns = _columns(run, labels)
    for n, col in enumerate(columns):
        path = run.theta[rows, col]
        color = _COLORS[n % len(_COLORS)]
        # Paths often overlap: the first is drawn thinnest and on top, later ones wider underneath.
        z = 4 - n / max(len(columns), 1)
        ax.plot(
            path[:, 0], path[:, 1], lw=0.9 + 0.7 * n, color=color, label=run.labels[col], alpha=0.9, zorder=z
        )
        ax.plot(path[0, 0], path[0, 1], "o", color=color, ms=6, mec="black", zorder=5)
        ax.plot(path[-1, 0], path[-1, 1], "X", color=color, ms=9, mec="black", zorder=5)
    ax.set_title(title or f"{surface.title}: {run.num_steps:,} steps (● start, ✖ end)", fontsize=10)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    return fig


def _log_positive(values: torch.Tensor) -> torch.Tensor:
    """Values for a log axis: non-positive entries become NaN (a gap), never a fake number."""
    return torch.where(values > 0, values, torch.full_like(values, math.nan))


def curves_figure(
    surface: Surface,
    run: LabRun,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    floor: float = 1e-120,
) -> Figure:
    """L − L_min and ‖∇L‖ against step t + 1, both on log-log axes.

    The y axes stop at ``floor`` (a curve that falls below it, to 1e-300 say, leaves the plot there) so that
    the configurations that stall stay readable.
    """
    fig = new_figure(width=10.0, height=4.2)
    ax_loss, ax_grad = fig.subplots(1, 2)
    rows = plot_indices(len(run.steps))
    x = (run.steps[rows] + 1).numpy()
    for n, col in enumerate(_columns(run, labels)):
        color = _COLORS[n % len(_COLORS)]
        ax_loss.plot(
            x,
            _log_positive(run.loss[rows, col] - surface.min_value).numpy(),
            color=color,
            lw=0.9,
            label=run.labels[col],
        )
        ax_grad.plot(x, _log_positive(run.grad_norm[rows, col]).numpy(), color=color, lw=0.9)
    for ax, name in ((ax_loss, "loss L − L_min"), (ax_grad, "gradient norm ‖∇L‖")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        if low < floor < high:
            ax.set_ylim(bottom=floor)
        ax.set_xlabel("step t + 1")
        ax.set_ylabel(name)
        ax.set_title(name, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    _legend_below(fig, ax_loss)
    fig.suptitle(title or f"{surface.title}: loss and gradient norm")
    return fig


def _legend_below(fig: Figure, ax: Axes) -> None:
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 4), fontsize=8, frameon=False)


def effective_lr_figure(
    run: LabRun, *, labels: Sequence[str] | None = None, title: str | None = None
) -> Figure:
    """σ_t per axis (left) and the effective learning rate η_t/σ_t per axis (right), log-log against step.

    Solid lines are the x axis, dashed the y axis.
    """
    fig = new_figure(width=10.0, height=4.2)
    ax_sigma, ax_elr = fig.subplots(1, 2)
    x = (run.sigma_steps + 1).numpy()
    for n, col in enumerate(_columns(run, labels)):
        color = _COLORS[n % len(_COLORS)]
        divides = not bool((run.sigma[:, col] == 1).all())  # plain GD / momentum: σ ≡ 1, only η/σ = η shown
        for axis, style in ((0, "-"), (1, "--")):
            if divides:
                ax_sigma.plot(x, _log_positive(run.sigma[:, col, axis]).numpy(), style, color=color, lw=1.0)
            ax_elr.plot(
                x,
                _log_positive(run.effective_lr[:, col, axis]).numpy(),
                style,
                color=color,
                lw=1.0,
                label=run.labels[col] if axis == 0 else None,
            )
    for ax, name in ((ax_sigma, "σ_t per axis"), (ax_elr, "η_t / σ_t per axis")):
        if len(x):
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel("step t + 1")
        ax.set_ylabel(name)
        ax.set_title(f"{name} (solid: x, dashed: y)", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    _legend_below(fig, ax_elr)
    fig.suptitle(title or "σ and the effective learning rate η/σ per axis")
    return fig


def animate_trajectories(
    surface: Surface,
    run: LabRun,
    path: Path | str,
    *,
    labels: Sequence[str] | None = None,
    frames: int = 40,
    fps: int = 10,
    tail: int = 400,
) -> Path:
    """Write an animated GIF of the trajectories (log-spaced frames; each frame draws the last ``tail``
    recorded points in full and the older path thinned). Returns the file written."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    if frames < 2:
        raise ConfigError(f"animate_trajectories: frames must be >= 2, got {frames}")
    target = Path(path).with_suffix(".gif")
    target.parent.mkdir(parents=True, exist_ok=True)
    fig = new_figure(width=6.0, height=4.2)
    ax = fig.add_subplot()
    _draw_contours(ax, surface, levels=25, resolution=160)
    cols = _columns(run, labels)
    count = len(run.theta_steps)
    ends = torch.unique(
        torch.logspace(0, math.log10(max(count, 2)), frames, dtype=torch.float64).long().clamp(1, count)
    ).tolist()
    lines = [
        ax.plot([], [], lw=0.9, color=_COLORS[n % len(_COLORS)], label=run.labels[c])[0]
        for n, c in enumerate(cols)
    ]
    heads = [
        ax.plot([], [], "o", color=_COLORS[n % len(_COLORS)], ms=6, mec="black")[0] for n in range(len(cols))
    ]
    ax.legend(fontsize=7, loc="upper right")
    stamp = ax.set_title("")

    def draw(end: int) -> list[Artist]:
        rows = plot_indices(end, dense=0, sparse=600) if end > tail else torch.arange(end)
        rows = torch.unique(torch.cat([rows, torch.arange(max(end - tail, 0), end)]))
        for line, head, col in zip(lines, heads, cols, strict=True):
            pts = run.theta[rows, col]
            line.set_data(pts[:, 0].numpy(), pts[:, 1].numpy())
            head.set_data([float(pts[-1, 0])], [float(pts[-1, 1])])
        stamp.set_text(f"{surface.name}: step {int(run.theta_steps[end - 1]):,}")
        return [*lines, *heads, stamp]

    animation = FuncAnimation(fig, draw, frames=ends, blit=False)
    animation.save(str(target), writer=PillowWriter(fps=fps), dpi=72)
    return target


def story_figures(story: Story) -> dict[str, tuple[Figure, str]]:
    """Every figure of a story, drawn but not saved: file stem → (figure, caption).

    Per run: ``<run>-paths`` (contour map with the trajectories), ``<run>-curves`` (loss and ‖∇L‖, log-log)
    and, where a configuration divides by σ, ``<run>-sigma`` (σ and η/σ per axis).
    """
    figures: dict[str, tuple[Figure, str]] = {}
    for name, (surface, run) in story.runs.items():
        figures[f"{name}-paths"] = (
            contour_figure(surface, run),
            f"{story.title}: the paths on {surface.title}",
        )
        figures[f"{name}-curves"] = (
            curves_figure(surface, run),
            f"{story.title}: loss and gradient norm against step (log-log)",
        )
        if len(run.sigma_steps) and not bool((run.sigma == 1).all()):
            figures[f"{name}-sigma"] = (
                effective_lr_figure(run),
                f"{story.title}: σ and the effective learning rate η/σ per axis",
            )
    return figures


def write_story_figures(
    story: Story, out_dir: Path | str, *, formats: Sequence[str] = ("png",), gif: bool = True
) -> list[Path]:
    """Save all figures of a story under ``out_dir/<story>/`` (and a GIF per run); returns the files."""
    import matplotlib.pyplot as plt

    folder = Path(out_dir) / story.name
    written: list[Path] = []
    for stem, (figure, _caption) in story_figures(story).items():
        written += save_figure(figure, folder / stem, formats=formats)
        plt.close(figure)
    if gif:
        for name, (surface, run) in story.runs.items():
            written.append(animate_trajectories(surface, run, folder / f"{name}-paths"))
    return written
