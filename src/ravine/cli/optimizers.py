"""``ravine optimizers``: every preset on scikit-learn's digits, a loss-curve PNG and a schedule gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ravine.cli._shared import DEFAULT_OUT, console, output_dir

__all__ = ["optimizers"]


def optimizers(
    steps: Annotated[int, typer.Option(min=1, help="Mini-batch updates each optimizer takes.")] = 300,
    out: Annotated[
        Path, typer.Option(help="Folder for optimizers-loss.png and schedules.png (created if missing).")
    ] = DEFAULT_OUT,
    seed: Annotated[
        int, typer.Option(help="Seed of the data split, the initial weights and the batches.")
    ] = 0,
) -> None:
    """Train the same small MLP on scikit-learn's digits with every preset (SGD, momentum, Adagrad, RMSProp,
    Adam, AdamW, RAdam) from the same weights and batches; print a table, draw the loss curves and the
    learning-rate schedules.

    (That each preset equals its torch.optim counterpart step for step is checked by the test suite,
    tests/optim, not by this command.)
    """
    folder = output_dir("optimizers", out)
    from rich.table import Table

    from ravine.experiments.digits_optimizers import compare_on_digits
    from ravine.report import save_figure
    from ravine.report.optimizers import digits_loss_figure, digits_table
    from ravine.report.schedules import gallery_schedules, plot_schedule_gallery

    result = compare_on_digits(steps=steps, seed=seed)
    table = Table(title=f"digits, MLP 64-{result.hidden}-10, {steps} steps of batch {result.batch_size}")
    header, *rows = digits_table(result)
    for column in header:
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    (loss_path,) = save_figure(digits_loss_figure(result), folder / "optimizers-loss.png")
    (gallery_path,) = save_figure(
        plot_schedule_gallery(gallery_schedules(steps), steps), folder / "schedules.png"
    )
    console.print(f"wrote {loss_path} and {gallery_path}")
