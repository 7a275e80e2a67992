"""Figures of :mod:`ravine.curvature`: the HW2-2 comparison of the two "minimum ratios" and an eigenvalue density."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ravine.report._figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import Tensor

    from ravine.curvature import SpectralDensity
    from ravine.experiments.hw2_2 import HW22Comparison

__all__ = ["hw2_2_figure", "spectral_density_figure"]


def hw2_2_figure(result: HW22Comparison) -> Figure:
    """Left: λ_min of each layer's Gauss-Newton block and of the exact Hessian. Right: the exact Hessian's
    negative eigenvalues, which no per-layer Gauss-Newton block can show."""
    figure = new_figure(width=10.0, height=4.0)
    left, right = figure.subplots(1, 2)
    labels: list[str] = []
    values: list[float] = []
    colors: list[str] = []
    for name, gn_min, exact_min in zip(
        result.gn_block_names,
        result.gn_block_min_eigenvalues,
        result.hessian_block_min_eigenvalues,
        strict=True,
    ):
        labels += [f"GN block, layer {name}", f"exact block, layer {name}"]
        values += [gn_min, exact_min]
        colors += ["#2b6cb0", "#7aa6d8"]
    labels.append("whole exact Hessian")
    values.append(result.exact.lambda_min)
    colors.append("#c05621")
    rows = list(range(len(labels)))
    left.barh(rows, values, color=colors)
    left.set_yticks(rows, labels, fontsize=8)
    left.invert_yaxis()
    left.axvline(0.0, color="black", linewidth=0.6)
    left.set_xscale("symlog", linthresh=1e-8)
    left.set_xlabel("smallest eigenvalue λ_min (symlog)")
    left.set_title("Per-layer blocks have λ_min ≈ 0; the whole Hessian is negative", fontsize=10)
    for row, value in zip(rows, values, strict=True):
        left.annotate(
            f"{value:.1e}", (0, row), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7
        )
    negatives = sorted(float(v) for v in result.negative_eigenvalues)
    if negatives:
        right.semilogy(range(1, len(negatives) + 1), [-v for v in negatives], "o", color="#c05621")
        right.set_xlabel("index of the negative eigenvalue (most negative first)")
        right.set_ylabel("|λ| of the negative eigenvalues")
        right.set_title(f"The exact Hessian has {len(negatives)} negative eigenvalue(s)", fontsize=10)
    else:
        right.text(0.5, 0.5, "no negative eigenvalue beyond the tolerance", ha="center", va="center")
        right.set_axis_off()
    figure.suptitle(
        f"HW2-2 net at ‖∇L‖ = {result.gradient_norm:.1e}: the Hessian says {result.exact.hessian_kind.value}"
    )
    return figure


def spectral_density_figure(density: SpectralDensity, *, exact: Tensor | None = None) -> Figure:
    """The eigenvalue density φ(λ) of a Hessian from :func:`ravine.curvature.spectral_density` (log scale).

    With ``exact`` eigenvalues (e.g. from a dense Hessian), their histogram, normalised to the same area, is
    drawn under the estimate so that one can see how well stochastic Lanczos quadrature recovers it. The
    negative side is shaded; the shares of negative, flat and positive eigenvalues are in the title.

    Example:
        >>> import torch
        >>> from ravine.curvature import spectral_density
        >>> values = torch.linspace(-1.0, 4.0, 50, dtype=torch.float64)
        >>> figure = spectral_density_figure(spectral_density(torch.diag(values)), exact=values)
        >>> figure.axes[0].get_yscale()
        'log'
    """
    figure = new_figure(width=10.0, height=4.2)
    ax = figure.add_subplot()
    grid = density.grid.double().numpy()
    phi = density.density.double().clamp_min(0).numpy()
    floor = max(float(phi.max()) * 1e-7, 1e-300)
    if exact is not None and len(exact):
        values = exact.double().numpy()
        ax.hist(
            values,
            bins=80,
            range=(float(grid[0]), float(grid[-1])),
            density=True,
            color="#cbd5e0",
            label=f"exact eigenvalues ({len(values)}), histogram",
        )
    ax.plot(grid, phi.clip(floor), color="#2b6cb0", linewidth=1.2, label="SLQ estimate φ(λ)")
    ax.axvspan(
        float(grid[0]), 0.0, color="#c05621", alpha=0.08, linewidth=0, label="λ < 0 (escape directions)"
    )
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_yscale("log")
    ax.set_ylim(floor, float(phi.max()) * 3)
    ax.set_xlim(float(grid[0]), float(grid[-1]))
    ax.set_xlabel("eigenvalue λ of the Hessian")
    ax.set_ylabel("density (log scale)")
    ax.set_title(
        f"Eigenvalue density: {density.negative_share:.1%} negative, {density.flat_share:.1%} flat, "
        f"{density.positive_share:.1%} positive ({density.num_probes} probes × {density.num_steps} steps)",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, alpha=0.3)
    return figure
