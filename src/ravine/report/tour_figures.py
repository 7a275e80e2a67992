"""Figures drawn only by the tour: the HW2-2 comparison of the two "minimum ratios"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ravine.report._figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ravine.experiments.hw2_2 import HW22Comparison

__all__ = ["hw2_2_figure"]


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
