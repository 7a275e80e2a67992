"""``ravine experiment NAME [options]``: run one of the lectures' experiments, draw it, print its numbers.

One sub-command per entry of :data:`ravine.experiments.REGISTRY`, built when it is asked for (so that
``ravine --help`` does not import torch). Its options are the experiment's config fields; each option's help is
the field's description from the config's docstring, with its quick and full preset values. Tuples are given as
comma-separated lists.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from ravine.cli._shared import DEFAULT_OUT, console, mark, output_dir
from ravine.errors import ConfigError

__all__ = ["app", "field_help", "run_experiment"]

_SCALARS: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


class _Experiments(TyperGroup):
    """The experiments as sub-commands, built from the registry when listed or called."""

    def list_commands(self, ctx: Any) -> list[str]:
        from ravine.experiments import REGISTRY

        return list(REGISTRY)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        from ravine.experiments import REGISTRY

        if cmd_name not in REGISTRY:
            return None
        entry = REGISTRY[cmd_name]
        single = typer.Typer(add_completion=False)
        single.command(name=cmd_name, help=entry.explanation, short_help=entry.title)(_make_command(cmd_name))
        return typer.main.get_command(single)


app = typer.Typer(
    name="experiment",
    cls=_Experiments,
    help="The lectures' experiments on real data: minimum-ratio, batch, momentum, adaptive, warmup, landscape. "
    "Each prints its numbers and claims and writes a figure; --quick (the default) takes seconds.",
    no_args_is_help=True,
)


def _parse_tuple(kind: str, text: str, name: str) -> tuple[Any, ...]:
    cast = float if "float" in kind else int
    try:
        return tuple(cast(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"--{name.replace('_', '-')}: expected comma-separated numbers, got {text!r}"
        ) from None


def field_help(config_type: type[Any]) -> dict[str, str]:
    """Each field's description from the ``Attributes:`` section of ``config_type``'s docstring.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Settings:
        ...     '''Settings.
        ...
        ...     Attributes:
        ...         steps: Updates to take,
        ...             at most.
        ...         seed: Seed.
        ...     '''
        ...     steps: int = 1
        ...     seed: int = 0
        >>> field_help(Settings)
        {'steps': 'Updates to take, at most.', 'seed': 'Seed.'}
    """
    doc = inspect.getdoc(config_type) or ""
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    described: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        entry = re.match(r"^    (\w+): (.*)$", line)
        if entry:
            current = entry.group(1)
            described[current] = entry.group(2).strip()
        elif current is not None and line.startswith("        "):
            described[current] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break
    return described


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
    its table, every checked claim (held or not, with the numbers) and its notes; returns the result."""
    folder = output_dir(f"experiment {name}", out)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ravine.experiments import REGISTRY
    from ravine.report import save_figure
    from ravine.report.experiments import FIGURES

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

        def progress(done: float, total: float, stage: str = "", /) -> None:
            fraction = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
            bar.update(task, completed=fraction, description=f"{name}: {stage}" if stage else name)

        result = entry.run(config, progress=progress)
    seconds = time.perf_counter() - started
    stem = folder / name.replace("-", "_")
    written = save_figure(FIGURES[name](result), stem, formats=formats)
    numbers = stem.with_suffix(".json")
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
        console.print(f"[bold]Claim:[/] {result.claim} — {mark(result.holds, 'holds', 'does not hold')}")
        for check in result.claims:
            console.print(
                f"  {mark(check.holds, '✓ held', '✗ did not hold')}: {check.statement}", highlight=False
            )
            console.print(f"      [dim]{escape(check.evidence)}[/]", highlight=False)
        for note in result.notes:
            console.print(f"  • {note}", highlight=False)
        console.print(f"Wrote {', '.join(str(p) for p in [*written, numbers])}")
    return result


def _make_command(name: str) -> Callable[..., None]:
    from ravine.experiments import REGISTRY

    entry = REGISTRY[name]
    fields = dataclasses.fields(entry.config_type)
    described = field_help(entry.config_type)
    quick, full = entry.config("quick"), entry.config("full")
    parameters = [
        inspect.Parameter(
            "full",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[
                bool,
                typer.Option(
                    "--full/--quick", help="Preset: quick (seconds, the default) or full (minutes)."
                ),
            ],
        ),
        inspect.Parameter(
            "out",
            inspect.Parameter.KEYWORD_ONLY,
            default=DEFAULT_OUT / "experiments",
            annotation=Annotated[
                Path, typer.Option(help="Folder for the figure and the numbers as JSON (created if missing).")
            ],
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
        presets = [_shown(getattr(quick, f.name)), _shown(getattr(full, f.name))]
        default = (
            f"default {presets[0]}" if presets[0] == presets[1] else f"quick {presets[0]}, full {presets[1]}"
        )
        listed = " Comma-separated." if kind.startswith("tuple") else ""
        text = described.get(f.name, f.name.replace("_", " ").capitalize() + ".")
        parameters.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[
                    python_type | None, typer.Option(help=f"{text}{listed} ({default})", show_default=False)
                ],
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


def _shown(value: object) -> str:
    """A preset value as the user would type it (tuples comma-separated)."""
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)
