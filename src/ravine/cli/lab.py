"""``ravine lab``: the lecture's error-surface demonstrations — figures plus a summary table of the numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ravine.cli._shared import DEFAULT_OUT, console, mark, output_dir
from ravine.errors import ConfigError

__all__ = ["lab"]

_FORMATS = ("png", "svg")


def lab(
    name: Annotated[
        str,
        typer.Argument(
            help="Which demonstration: ravine (the elongated bowl), crescent (a bending valley), saddle, "
            "momentum (a local dip), or all."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the figures (created if missing).")
    ] = DEFAULT_OUT / "lab",
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps", help="Updates per run instead of each demonstration's own (e.g. 500 to try it fast)."
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="Figure format: png, svg, or both as png,svg.")
    ] = "png",
    gif: Annotated[bool, typer.Option("--gif/--no-gif", help="Also write an animated GIF per run.")] = True,
) -> None:
    """Run the lecture's demonstrations on 2-D error surfaces, many optimizers at once; write the figures
    (paths on the contours, loss and gradient curves, η/σ) and print what each run shows."""
    folder = output_dir("lab", out)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ravine.report.surfaces import write_story_figures
    from ravine.surfaces.stories import STORIES, get_story

    names = list(STORIES) if name == "all" else [name]
    for item in names:
        get_story(item)  # unknown names fail before any work
    formats = tuple(part.strip() for part in fmt.split(",") if part.strip())
    if not formats or any(f not in _FORMATS for f in formats):
        raise ConfigError(f"lab: --format must be png, svg or png,svg, got {fmt!r}")
    if steps is not None and steps < 1:
        raise ConfigError(f"lab: --steps must be a positive integer, got {steps}")

    table = Table(title="What the lecture's error surfaces show", show_lines=True)
    table.add_column("lab", overflow="fold", max_width=10)
    table.add_column("run", overflow="fold", max_width=24)
    table.add_column("claim", overflow="fold", ratio=2)
    table.add_column("measured", overflow="fold", ratio=3)
    table.add_column("holds", justify="center")
    written: list[Path] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        for item in names:
            task = progress.add_task(item, total=None)

            def report(done: float, total: float, _stage: str = "", /, task: TaskID = task) -> None:
                progress.update(task, completed=done, total=total)

            kwargs: dict[str, object] = {"progress": report}
            if steps is not None:
                kwargs["steps"] = steps
            story = get_story(item)(**kwargs)
            progress.update(task, description=f"{item}: figures")
            written += write_story_figures(story, folder, formats=formats, gif=gif)
            for claim in story.claims:
                table.add_row(story.name, claim.subject, claim.statement, claim.evidence, mark(claim.holds))
            progress.remove_task(task)
    console.print(table)
    console.print(f"{len(written)} files written under {folder}/")
