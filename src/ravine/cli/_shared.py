"""What every command shares: the consoles, the default output folder and the early ``--out`` check."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from ravine._validate import check_output_dir

__all__ = ["DEFAULT_OUT", "console", "error_console", "mark", "output_dir"]

console = Console()
error_console = Console(stderr=True)

DEFAULT_OUT = Path("ravine-out")
"""Where commands write unless given ``--out``."""


def output_dir(command: str, out: Path) -> Path:
    """``out`` checked (and created) before any work; a file or an unwritable folder fails in one line."""
    return check_output_dir(command, out)


def mark(holds: bool, yes: str = "yes", no: str = "NO") -> str:
    """``yes`` in green or ``no`` in bold red (rich markup), for a claim's verdict."""
    return f"[green]{yes}[/]" if holds else f"[bold red]{no}[/]"
