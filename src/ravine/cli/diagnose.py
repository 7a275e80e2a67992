"""``ravine diagnose``: built-in labelled scenarios, or a user's script, under the training Monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from ravine.cli._shared import DEFAULT_OUT, console, output_dir
from ravine.errors import ConfigError

__all__ = ["app", "lr_range", "scenario", "script"]

app = typer.Typer(
    help="Why is training stuck? Ravine, saddle point, local minimum, gradient noise or the learning rate — "
    "with the evidence and the lecture's remedies.",
    no_args_is_help=True,
)


class _ScenarioHelp(TyperCommand):
    """``diagnose scenario``'s help ends with the list of scenario names (read when help is asked for)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from ravine.diagnose.scenarios import HEALTHY, SCENARIOS

        stuck = ", ".join(f"{name} ({item.expected.value})" for name, item in SCENARIOS.items())
        self.epilog = f"Stuck runs (NAME, expected verdict): {stuck}.\n\nHealthy runs: {', '.join(HEALTHY)}."
        super().format_help(ctx, formatter)


@app.command("scenario", cls=_ScenarioHelp)
def scenario(
    name: Annotated[
        str,
        typer.Argument(
            help="A scenario's name (listed below), 'all' (every stuck run) or 'healthy' (every run that trains)."
        ),
    ] = "all",
    out: Annotated[Path, typer.Option(help="Folder for diagnose.html (created if missing).")] = DEFAULT_OUT,
    seed: Annotated[int, typer.Option(help="Seed of the scenario's data and initial weights.")] = 0,
    steps: Annotated[
        int | None, typer.Option(min=1, help="Train this many steps instead of the scenario's own length.")
    ] = None,
) -> None:
    """Built-in runs stuck in a known way (or healthy) under the Monitor: each verdict next to its label.

    Writes an HTML report with each run's curves and the verdict's evidence and remedies.
    """
    folder = output_dir("diagnose scenario", out)
    from ravine.diagnose.scenarios import HEALTHY, SCENARIOS, run_scenario
    from ravine.report.diagnose import verdict_table, write_html

    every = {**SCENARIOS, **HEALTHY}
    if name == "all":
        chosen = list(SCENARIOS.values())
    elif name == "healthy":
        chosen = list(HEALTHY.values())
    elif name in every:
        chosen = [every[name]]
    else:
        raise ConfigError(
            f"diagnose scenario: unknown {name=}; choose 'all', 'healthy' or one of {sorted(every)}"
        )
    rows: list[Any] = []
    runs = []
    for item in chosen:
        result = run_scenario(item, seed=seed, steps=steps)
        detected = "—" if result.latency is None else f"+{result.latency} steps"
        rows.append((item.name, item.expected.value, result.verdict, detected))
        runs.append((item.name, result.monitor, item.description))
    console.print(verdict_table(rows))
    correct = sum(r[1] == r[2].kind.value for r in rows)
    console.print(f"{correct}/{len(rows)} verdicts as labelled")
    path = write_html(folder / "diagnose.html", runs)
    console.print(f"report: {path}")


class _ScriptHelp(TyperCommand):
    """The script format ends the help of the commands that run a user's script (read when help is asked for,
    so that ``--help`` and a bad ``--out`` never import torch)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from ravine.diagnose.script import FORMAT

        self.epilog = FORMAT
        super().format_help(ctx, formatter)


@app.command("script", cls=_ScriptHelp)
def script(  # noqa: PLR0917 (typer maps each parameter to a CLI option)
    path: Annotated[
        Path,
        typer.Argument(
            help="Your training script: a .py file that defines model, loss_fn and data (or a make() returning them)."
        ),
    ],
    steps: Annotated[int, typer.Option(min=1, help="Training steps to run under the Monitor.")] = 500,
    optimizer: Annotated[
        str | None,
        typer.Option(
            help="Optimizer to train with when the script builds none: sgd (default), momentum, adam, adagrad, "
            "rmsprop or adadelta."
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="Its learning rate (default 0.01) when the script builds no optimizer."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Mini-batch size drawn from your data.")] = 64,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the batch order.")] = 0,
    out: Annotated[
        Path, typer.Option(help="Folder for diagnose-script.html (created if missing).")
    ] = DEFAULT_OUT,
) -> None:
    """Train your script's model for STEPS steps under the Monitor and print the verdict with its evidence.

    Ctrl-C stops training: the verdict so far is printed and the report written, marked partial."""
    folder = output_dir("diagnose script", out)
    from ravine.diagnose._panel import LivePanel
    from ravine.diagnose.script import diagnose_script
    from ravine.report.diagnose import verdict_text, write_html

    with LivePanel(console, f"ravine diagnose script {path.name}") as panel:
        run = diagnose_script(
            path, steps=steps, optimizer=optimizer, lr=lr, batch_size=batch_size, seed=seed, on_step=panel
        )
    if run.interrupted:
        console.print(
            f"[bold yellow]interrupted after {run.steps} of {run.requested} steps: the verdict so far[/]"
        )
    console.print(verdict_text(run.verdict), highlight=False)
    title = "ravine diagnose (PARTIAL: interrupted)" if run.interrupted else "ravine diagnose"
    report = write_html(
        folder / "diagnose-script.html", [(path.name, run.monitor, f"{path}: {run.description}")], title=title
    )
    console.print(f"report: {report}")
    if run.interrupted:
        raise typer.Exit(130)


@app.command("lr-range", cls=_ScriptHelp)
def lr_range(  # noqa: PLR0917 (typer maps each parameter to a CLI option)
    path: Annotated[
        Path,
        typer.Argument(help="Your training script, in the format of `ravine diagnose script` (see below)."),
    ],
    steps: Annotated[int, typer.Option(min=2, help="Steps of the sweep (one batch each).")] = 100,
    start_lr: Annotated[float, typer.Option(min=0.0, help="First learning rate of the sweep.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(min=0.0, help="Last learning rate of the sweep.")] = 10.0,
    optimizer: Annotated[
        str | None,
        typer.Option(
            help="Optimizer to sweep when the script builds none: sgd (default), momentum, adam, ..."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Mini-batch size drawn from your data.")] = 64,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the batch order and of dropout.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for lr-range.png (created if missing).")] = DEFAULT_OUT,
) -> None:
    """The LR range test on your script: sweep η exponentially on a copy of the model, suggest a rate.

    The rate of steepest descent of the smoothed loss is suggested (Smith 2017); the sweep stops when the loss
    diverges. Your model and optimizer are not changed. This is what the "LR too small / too large" verdicts
    point to."""
    folder = output_dir("diagnose lr-range", out)
    from ravine.diagnose.script import lr_range_script
    from ravine.report import save_figure
    from ravine.report.diagnose import lr_range_figure

    with console.status("sweeping the learning rate on a copy of the model"):
        result, swept = lr_range_script(
            path, optimizer=optimizer, batch_size=batch_size, seed=seed, num_steps=steps,
            start_lr=start_lr, end_lr=end_lr,
        )  # fmt: skip
    console.print(f"{swept}: {result.advice()}", highlight=False)
    (figure_path,) = save_figure(
        lr_range_figure(result, title=f"LR range test: {path.name}"), folder / "lr-range"
    )
    console.print(f"figure: {figure_path}")
