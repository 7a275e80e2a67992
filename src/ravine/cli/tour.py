"""``ravine tour``: the lab, the curvature engine, the diagnostician and every experiment, in one report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ravine.cli._shared import DEFAULT_OUT, console, mark, output_dir

if TYPE_CHECKING:
    from ravine.progress import Progress

__all__ = ["tour"]


def tour(
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Run the full-size settings (tens of minutes) instead of the quick ones."
        ),
    ] = False,
    out: Annotated[
        Path, typer.Option(help="Folder to write report.html and figures/ into (created if missing).")
    ] = DEFAULT_OUT,
    only: Annotated[
        str | None,
        typer.Option(
            help="Run only these chapters, comma-separated, e.g. lab,curvature. Chapters: optimizers, lab, "
            "curvature, diagnose, minimum-ratio, batch, momentum, adaptive, warmup, landscape."
        ),
    ] = None,
) -> None:
    """Run the lectures' demonstrations and experiments; write one HTML report and every figure as PNG.

    The quick setting takes a few minutes on two CPU cores. Open OUT/report.html in a browser.
    """
    folder = output_dir("tour", out)
    import matplotlib

    matplotlib.use("Agg")
    from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars
    from rich.table import Table

    from ravine.report.tour import summary_rows, write_tour
    from ravine.tour import chapter_names, run_tour

    chosen = chapter_names([part.strip() for part in only.split(",") if part.strip()] if only else None)
    with Bars(
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bars:
        tasks = {name: bars.add_task(name, total=None, start=False) for name in chosen}

        def on_chapter(name: str) -> Progress:
            task = tasks[name]
            bars.start_task(task)
            for previous in chosen[: chosen.index(name)]:
                bars.update(tasks[previous], completed=1, total=1)

            def advance(done: float, total: float, _stage: str = "", /) -> None:
                bars.update(task, completed=done, total=max(total, 1))

            return advance

        result = run_tour(full=full, only=chosen, on_chapter=on_chapter)
        for name in chosen:
            bars.update(tasks[name], completed=1, total=1)
    console.print("writing the report …")
    files = write_tour(result, folder)
    table = Table(title="What the lectures claim, measured on this machine")
    header, *rows = summary_rows(result)
    for column in header:
        table.add_column(str(column), overflow="fold")
    for row in rows:
        cells = [str(cell) for cell in row]
        cells[-1] = mark(cells[-1] == "yes")
        table.add_row(*cells)
    console.print(table)
    held = sum(claim.holds for _, claim in result.claims)
    console.print(
        f"{held}/{len(result.claims)} claims hold · {result.seconds:.0f} s · report {files.report} "
        f"({files.report_bytes / 1e6:.1f} MB) · {len(files.figures)} PNG files in {folder / 'figures'}"
    )
