"""What every benchmark prints at its end: markdown tables (title, header, rows, notes), the targets met or
missed, and one way to print a section and also write it where ``--markdown PATH`` says."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    """One markdown table with a title and notes."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    left: tuple[int, ...] = (0,)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.header) + " |"]
        lines.append(
            "| " + " | ".join("---" if i in self.left else "---:" for i in range(len(self.header))) + " |"
        )
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


@dataclass
class Targets:
    """The issue's targets with what was measured."""

    lines: list[tuple[str, str, bool | None]] = field(default_factory=list)

    def add(self, target: str, measured: str, met: bool | None) -> None:
        self.lines.append((target, measured, met))


def fmt_time(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{1e3 * seconds:.0f} ms"


def emit(text: str, path: str | Path | None, *, echo: bool = True) -> None:
    """Print a benchmark's markdown section (unless it printed as it went: ``echo=False``) and, when ``path``
    is given, write it there too."""
    if echo:
        print(text)
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
