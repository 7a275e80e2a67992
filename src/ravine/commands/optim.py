"""``ravine optimizers``: every preset on scikit-learn's digits, a loss-curve PNG and a schedule gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ravine.cli import DEFAULT_OUT, app, console


def schedule_gallery_examples(steps: int) -> dict[str, object]:
    """The schedules shown in the gallery (the lectures' warmups and the usual decays)."""
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


@app.command("optimizers")
def optimizers(
    steps: Annotated[int, typer.Option(min=1, help="Updates per optimizer.")] = 300,
    out: Annotated[Path, typer.Option(help="Folder for the PNG files.")] = DEFAULT_OUT,
    seed: Annotated[int, typer.Option(help="Seed of split, weights and batches.")] = 0,
) -> None:
    """Train a small MLP on the digits with each preset; table, loss curves and a schedule gallery."""
    from rich.table import Table

    from ravine.experiments.digits_optimizers import compare_on_digits
    from ravine.report.schedules import _figure, plot_schedule_gallery

    result = compare_on_digits(steps=steps, seed=seed)
    table = Table(title=f"digits, MLP 64-{result.hidden}-10, {steps} steps of batch {result.batch_size}")
    for column in ("optimizer", "lr", "final train loss", "val accuracy", "median η/σ"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for run in result.runs:
        table.add_row(
            run.name,
            f"{run.lr:g}",
            f"{run.final_train_loss:.4f}",
            f"{run.val_accuracy:.3f}",
            f"{run.effective_lr_median:.3g}",
        )
    console.print(table)

    out.mkdir(parents=True, exist_ok=True)
    figure = _figure(7.0, 4.5)
    ax = figure.add_subplot()
    for run in result.runs:
        ax.plot(range(1, len(run.losses) + 1), run.losses, label=run.name, linewidth=1)
    ax.set_xlabel("update")
    ax.set_ylabel("mini-batch cross-entropy")
    ax.set_yscale("log")
    ax.set_title("Presets on scikit-learn digits (same weights and batches)")
    ax.legend()
    loss_path = out / "optimizers-loss.png"
    figure.savefig(loss_path)
    gallery = plot_schedule_gallery(schedule_gallery_examples(steps), steps)  # type: ignore[arg-type]
    gallery_path = out / "schedules.png"
    gallery.savefig(gallery_path)
    console.print(f"wrote {loss_path} and {gallery_path}")
