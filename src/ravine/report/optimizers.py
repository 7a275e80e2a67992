"""Figures of the optimizer presets: the digits comparison of :func:`ravine.optim.compare_on_digits`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ravine.report._figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ravine.experiments.digits_optimizers import DigitsComparison

__all__ = ["digits_loss_figure", "digits_table"]


def digits_loss_figure(comparison: DigitsComparison) -> Figure:
    """Mini-batch cross-entropy of every preset against the update, on a log scale."""
    figure = new_figure(width=7.0, height=4.5)
    ax = figure.add_subplot()
    for run in comparison.runs:
        ax.plot(range(1, len(run.losses) + 1), run.losses, label=f"{run.name} (lr {run.lr:g})", linewidth=1)
    ax.set_xlabel("update")
    ax.set_ylabel("mini-batch cross-entropy")
    ax.set_yscale("log")
    ax.set_title(
        f"Presets on scikit-learn digits, MLP 64-{comparison.hidden}-10 (same weights and batches)",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def digits_table(comparison: DigitsComparison) -> list[list[str]]:
    """The comparison as rows of text, the first row the header: name, lr, final loss, accuracy, median η/σ."""
    rows = [["optimizer", "lr", "final train loss", "val accuracy", "median η/σ"]]
    for run in comparison.runs:
        rows.append(
            [
                run.name,
                f"{run.lr:g}",
                f"{run.final_train_loss:.4f}",
                f"{run.val_accuracy:.3f}",
                f"{run.effective_lr_median:.3g}",
            ]
        )
    return rows
