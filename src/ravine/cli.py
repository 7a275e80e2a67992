"""The ``ravine`` command line: thin typer commands over the library.

Library code computes and returns data; the commands here draw and print. Any :class:`RavineError` is shown
as a one-line message and exits with status 1 (no traceback), other exceptions propagate.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from ravine import __version__
from ravine.errors import RavineError

app = typer.Typer(
    name="ravine",
    help="Why did my training loss stop going down? Lectures' demonstrations, curvature and diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
error_console = Console(stderr=True)

DEFAULT_OUT = Path("ravine-out")


@app.command()
def version() -> None:
    """Print ravine's version and torch's."""
    import torch

    console.print(f"ravine {__version__} (torch {torch.__version__})")


@app.callback()
def _group() -> None:
    """Why did my training loss stop going down? Lectures' demonstrations, curvature and diagnosis."""


def register_commands() -> None:
    """Import every module of :mod:`ravine.commands`; each adds its commands to :data:`app`."""
    import importlib
    import pkgutil

    import ravine.commands

    for module in pkgutil.iter_modules(ravine.commands.__path__):
        importlib.import_module(f"ravine.commands.{module.name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    Usage errors exit with 2 (typer's own message); a :class:`RavineError` exits with 1 and one line.
    """
    try:
        register_commands()
        app(args=argv, prog_name="ravine")
    except RavineError as error:
        error_console.print(f"[bold red]error:[/] {error}", highlight=False)
        return 1
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
