"""``ravine experiment NAME [options]``: run one of the lectures' experiments, draw it, print its numbers.

One sub-command per entry of :data:`ravine.experiments.REGISTRY`; its options are generated from the
experiment's config dataclass (``--steps``, ``--seed``, ...; tuples as comma-separated lists) and default to
the chosen preset (``--quick``, the default, or ``--full``).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ravine.cli import DEFAULT_OUT, app, console
from ravine.errors import ConfigError

__all__ = ["experiment_app", "run_experiment"]

experiment_app = typer.Typer(
    name="experiment",
    help="The lectures' experiments on real data: minimum-ratio, batch, momentum, adaptive, warmup, landscape.",
    no_args_is_help=True,
)
app.add_typer(experiment_app, name="experiment")

_SCALARS: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


def _parse_tuple(kind: str, text: str, name: str) -> tuple[Any, ...]:
    cast = float if "float" in kind else int
    try:
        return tuple(cast(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"--{name.replace('_', '-')}: expected comma-separated numbers, got {text!r}"
        ) from None


def run_experiment(
    name: str,
    *,
    full: bool = False,
    out: Path = DEFAULT_OUT / "experiments",
    formats: tuple[str, ...] = ("png",),
    overrides: dict[str, Any] | None = None,
    show: bool = True,
) -> Any:
    """Run experiment ``name`` with a rich progress bar, save its figure and numbers under ``out``, print
    its table, its claim, every checked part of it (held or not, with the numbers) and its notes; returns the
    result."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ravine.experiments import REGISTRY
    from ravine.report import save_figure

    entry = REGISTRY[name]
    config = entry.config("full" if full else "quick", **(overrides or {}))
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not show,
    ) as bar:
        task = bar.add_task(name, total=1.0)

        def progress(stage: str, fraction: float) -> None:
            bar.update(task, completed=min(max(fraction, 0.0), 1.0), description=f"{name}: {stage}")

        result = entry.run(config, progress=progress)
    seconds = time.perf_counter() - started
    stem = out / name.replace("-", "_")
    written = save_figure(entry.figure(result), stem, formats=formats)
    numbers = stem.with_suffix(".json")
    numbers.parent.mkdir(parents=True, exist_ok=True)
    payload = dataclasses.asdict(result) | {"seconds": seconds}
    numbers.write_text(json.dumps(payload, default=str, indent=1), encoding="utf-8")
    if show:
        table = Table(title=f"{entry.title} ({'full' if full else 'quick'}, {seconds:.1f} s)")
        header, *rows = result.table()
        for column in header:
            table.add_column(str(column))
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        console.print(table)
        console.print(f"[bold]Claim:[/] {result.claim} — {_mark(result.holds, 'holds', 'does not hold')}")
        for check in result.claims:
            console.print(
                f"  {_mark(check.holds, '✓ held', '✗ did not hold')}: {check.statement}", highlight=False
            )
            console.print(f"      [dim]{escape(check.evidence)}[/]", highlight=False)
        for note in result.notes:
            console.print(f"  • {note}", highlight=False)
        console.print(f"Wrote {', '.join(str(p) for p in [*written, numbers])}")
    return result


def _mark(holds: bool, yes: str, no: str) -> str:
    """``yes`` in green or ``no`` in red (rich markup)."""
    return f"[green]{yes}[/]" if holds else f"[red]{no}[/]"


def _make_command(name: str) -> Callable[..., None]:
    from ravine.experiments import REGISTRY

    entry = REGISTRY[name]
    fields = dataclasses.fields(entry.config_type)
    parameters = [
        inspect.Parameter(
            "full",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[
                bool, typer.Option("--full/--quick", help="Preset: quick (seconds) or full (minutes).")
            ],
        ),
        inspect.Parameter(
            "out",
            inspect.Parameter.KEYWORD_ONLY,
            default=DEFAULT_OUT / "experiments",
            annotation=Annotated[Path, typer.Option(help="Folder for the figure and the numbers (JSON).")],
        ),
        inspect.Parameter(
            "formats",
            inspect.Parameter.KEYWORD_ONLY,
            default="png",
            annotation=Annotated[
                str, typer.Option("--format", help="Figure formats, comma-separated: png, svg, pdf.")
            ],
        ),
    ]
    kinds: dict[str, str] = {}
    for f in fields:
        kind = str(f.type)
        kinds[f.name] = kind
        python_type = _SCALARS.get(kind, str)
        help_text = f"{f.name} ({kind}); default from the preset"
        parameters.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[python_type | None, typer.Option(help=help_text)],
            )
        )

    def command(**kwargs: Any) -> None:
        full, out, formats = kwargs.pop("full"), kwargs.pop("out"), kwargs.pop("formats")
        overrides: dict[str, Any] = {}
        for key, value in kwargs.items():
            if value is None:
                continue
            overrides[key] = _parse_tuple(kinds[key], value, key) if kinds[key].startswith("tuple") else value
        run_experiment(
            name,
            full=full,
            out=Path(out),
            formats=tuple(s.strip() for s in formats.split(",")),
            overrides=overrides,
        )

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__name__ = name.replace("-", "_")
    command.__doc__ = entry.explanation
    return command


def _register() -> None:
    from ravine.experiments import REGISTRY

    for name, entry in REGISTRY.items():
        experiment_app.command(name=name, help=entry.explanation, short_help=entry.title)(_make_command(name))


_register()
