"""``ravine diagnose``: built-in labelled scenarios, or a user's script, under the training Monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ravine.cli import DEFAULT_OUT, app, console
from ravine.errors import ConfigError

diagnose_app = typer.Typer(help="Why is training stuck? Ravine, saddle, minimum, noise, LR — with evidence.")
app.add_typer(diagnose_app, name="diagnose")


@diagnose_app.command("scenario")
def scenario(
    name: Annotated[str, typer.Argument(help="scenario name, 'all', or 'healthy'")] = "all",
    out: Annotated[Path, typer.Option(help="folder for diagnose.html")] = DEFAULT_OUT,
    seed: int = 0,
    steps: Annotated[int | None, typer.Option(help="override the scenario's length")] = None,
) -> None:
    """Run built-in stuck (or healthy) runs, print the verdict table and write an HTML report."""
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
    rows = []
    runs = []
    for item in chosen:
        result = run_scenario(item, seed=seed, steps=steps)
        detected = "—" if result.latency is None else f"+{result.latency} steps"
        rows.append((item.name, item.expected.value, result.verdict, detected))
        runs.append((item.name, result.monitor, item.description))
    console.print(verdict_table(rows))
    correct = sum(r[1] == r[2].kind.value for r in rows)
    console.print(f"{correct}/{len(rows)} verdicts as labelled")
    path = write_html(out / "diagnose.html", runs)
    console.print(f"report: {path}")


@diagnose_app.command("script")
def script(  # noqa: PLR0917 (typer maps each parameter to a CLI option)
    path: Annotated[Path, typer.Argument(help="a .py file defining model, loss_fn, data (or make())")],
    steps: int = 500,
    optimizer: Annotated[str, typer.Option(help="sgd, momentum, adam, adagrad, rmsprop, adadelta")] = "sgd",
    lr: float = 0.01,
    batch_size: int = 64,
    seed: int = 0,
    out: Annotated[Path, typer.Option(help="folder for diagnose-script.html")] = DEFAULT_OUT,
) -> None:
    """Train a user's script for STEPS steps under the Monitor and print the verdict."""
    from ravine.diagnose.script import diagnose_script
    from ravine.report.diagnose import verdict_text, write_html

    monitor = diagnose_script(path, steps=steps, optimizer=optimizer, lr=lr, batch_size=batch_size, seed=seed)
    verdict = monitor.verdict()
    console.print(verdict_text(verdict), highlight=False)
    report = write_html(
        out / "diagnose-script.html", [(path.name, monitor, f"{path} with {optimizer} lr={lr}")]
    )
    console.print(f"report: {report}")
