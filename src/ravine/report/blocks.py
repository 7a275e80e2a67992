"""Figures of per-block Hessian spectra and of the block-heterogeneity experiment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ravine.report._figures import new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ravine.curvature import BlockSpectra
    from ravine.experiments.block_heterogeneity import BlockHeterogeneityResult

__all__ = ["block_heterogeneity_figure", "block_spectra_figure"]


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _draw_scales(ax: Axes, spectra: BlockSpectra, title: str) -> None:
    """Per block: λ_max and |λ_min| on a log axis, one row per block."""
    names = [_short(b.name) for b in spectra.blocks]
    rows = list(range(len(names)))
    ax.scatter([max(b.lambda_max, 1e-12) for b in spectra.blocks], rows, marker="o", label="λ_max", zorder=3)
    ax.scatter(
        [max(abs(b.lambda_min), 1e-12) for b in spectra.blocks], rows, marker="x", label="|λ_min|", zorder=3
    )
    ax.set_xscale("log")
    ax.set_yticks(rows, names, fontsize=7)
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(f"{title}: heterogeneity {spectra.heterogeneity:.2f}", fontsize=9)
    ax.legend(fontsize=7, loc="best", framealpha=0.6)  # never over a point: the last row holds the head


def _draw_densities(ax: Axes, spectra: BlockSpectra) -> None:
    grid = spectra.grid.numpy()
    for block, density in zip(spectra.blocks, spectra.densities, strict=True):
        ax.plot(grid, density.clamp_min(1e-12).numpy(), linewidth=1, label=_short(block.name, 20))
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(float(spectra.densities.max()) * 1e-6, 1e-12))
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density")
    ax.legend(fontsize=6, ncol=2)


def block_spectra_figure(spectra: BlockSpectra, *, title: str = "Hessian blocks") -> Figure:
    """Left: each block's λ_max and |λ_min| (log scale); right: the blocks' spectral densities."""
    figure = new_figure(width=10.0, height=max(3.5, 0.3 * len(spectra.blocks) + 1.5))
    left, right = figure.subplots(1, 2)
    _draw_scales(left, spectra, title)
    _draw_densities(right, spectra)
    right.set_title("SLQ spectral density per block", fontsize=9)
    return figure


def block_heterogeneity_figure(result: BlockHeterogeneityResult) -> Figure:
    """Per-block scales of the transformer and the CNN (top), SGD vs Adam training curves (bottom)."""
    figure = new_figure(width=11.0, height=7.5)
    axes = figure.subplots(2, 2)
    for column, name in enumerate(("transformer", "cnn")):
        _draw_scales(axes[0][column], result.spectra[name], name)
        ax = axes[1][column]
        for label, losses in result.curves[name].items():
            ax.plot(losses, linewidth=1, label=f"{label} (η={result.best_lr[name][label]:g})")
        ax.set_yscale("log")
        ax.set_xlabel("update")
        ax.set_ylabel("training loss (mini-batch)")
        ax.set_title(f"{name}: SGD/Adam final loss {result.sgd_over_adam[name]:.2f}", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    figure.suptitle("Block heterogeneity: different blocks need different learning rates", fontsize=10)
    return figure
