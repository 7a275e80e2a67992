"""The ``ravine`` command line: thin typer commands over the library.

Each command lives in its own module and is added here by name — nothing registers itself on import:

- ``ravine lab`` (:mod:`ravine.cli.lab`), ``ravine optimizers`` (:mod:`ravine.cli.optimizers`),
  ``ravine tour`` (:mod:`ravine.cli.tour`): single commands;
- ``ravine experiment NAME`` (:mod:`ravine.cli.experiment`), ``ravine diagnose ...``
  (:mod:`ravine.cli.diagnose`): groups of commands.

Library code computes and returns data; the commands call it, then draw and print. Heavy imports (torch, the
experiments) happen inside the commands, so ``--help`` and a bad ``--out`` answer at once. Any
:class:`~ravine.errors.RavineError` is shown as one line and exits with status 1 (no traceback); usage errors
exit with 2 (typer's own message).
"""

from __future__ import annotations

import sys

import typer

from ravine import __version__
from ravine.cli import diagnose, experiment, lab, optimizers, tour
from ravine.cli._shared import DEFAULT_OUT, console, error_console
from ravine.errors import RavineError

__all__ = ["DEFAULT_OUT", "app", "main"]

_HELP = (
    "Why did my training loss stop going down? The lectures' demonstrations, the curvature engine and a "
    "diagnostician for your own training runs. Start with `ravine tour`."
)

app = typer.Typer(
    name="ravine", help=_HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)


@app.callback()
def _group() -> None:
    """Why did my training loss stop going down? Lectures' demonstrations, curvature and diagnosis."""


@app.command()
def version() -> None:
    """Print ravine's version and torch's."""
    import torch

    console.print(f"ravine {__version__} (torch {torch.__version__})")


app.command("tour")(tour.tour)
app.command("lab")(lab.lab)
app.command("optimizers")(optimizers.optimizers)
app.add_typer(experiment.app, name="experiment")
app.add_typer(diagnose.app, name="diagnose")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    Usage errors exit with 2 (typer's own message); a :class:`RavineError` exits with 1 and one line.
    """
    try:
        app(args=argv, prog_name="ravine")
    except RavineError as error:
        error_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        return 1
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
