"""A self-contained HTML report: sections of text, tables and embedded figures in one file.

Example:
    >>> from ravine.report import HtmlReport
    >>> report = HtmlReport("Demo")
    >>> report.add_section("Numbers", "Two numbers.", table=[["a", "b"], [1, 2]])
    >>> "<table>" in report.render()
    True
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["HtmlReport"]

_NUMBER = re.compile(r"[-+−]?[\d.,]+(e[-+]?\d+)?%?( / [-+−]?[\d.,]+(e[-+]?\d+)?%?)*", re.IGNORECASE)

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1d2330; line-height: 1.5; }
h1 { border-bottom: 3px solid #2b6cb0; padding-bottom: .3em; }
h2 { margin-top: 2em; color: #2b4c7e; }
section { margin-bottom: 2.5em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #cfd6e3; padding: .35em .7em; text-align: left; vertical-align: top; }
th { background: #eef2f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #e2e6ee; }
figcaption { font-size: .9em; color: #55607a; }
.verdict { padding: .8em 1em; border-left: 5px solid #2b6cb0; background: #f3f7fd; }
.warn { border-left-color: #c05621; background: #fdf6f0; }
.note { color: #55607a; font-size: .9em; }
"""


@dataclass
class _Section:
    title: str
    body_html: str
    parts: list[str] = field(default_factory=list)


class HtmlReport:
    """Collects sections and renders one HTML file with every figure embedded as base64 PNG."""

    def __init__(self, title: str, *, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self._sections: list[_Section] = []

    def add_section(
        self,
        title: str,
        text: str = "",
        *,
        table: Sequence[Sequence[object]] | None = None,
        figures: Sequence[tuple[Figure, str]] = (),
        css_class: str = "",
        trusted_html: str = "",
    ) -> None:
        """Add a section: paragraphs of ``text`` (blank-line separated), ``trusted_html`` produced by ravine
        itself (e.g. claims), an optional table whose first row is the header, and figures with captions."""
        paragraphs = [chunk.strip() for chunk in text.split("\n\n") if chunk.strip()]
        wrapper = f' class="{html.escape(css_class)}"' if css_class else ""
        body = "".join(f"<p{wrapper}>{html.escape(chunk)}</p>" for chunk in paragraphs)
        section = _Section(title, body + trusted_html)
        if table:
            section.parts.append(_table_html(table))
        for figure, caption in figures:
            section.parts.append(_figure_html(figure, caption))
        self._sections.append(section)

    def add_html(self, title: str, raw_html: str) -> None:
        """Add a section whose body is trusted HTML produced by ravine itself."""
        self._sections.append(_Section(title, raw_html))

    def render(self) -> str:
        """The whole report as one HTML string."""
        sections = "".join(
            f"<section><h2>{html.escape(s.title)}</h2>{s.body_html}{''.join(s.parts)}</section>"
            for s in self._sections
        )
        subtitle = f'<p class="note">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>{subtitle}{sections}</body></html>"
        )

    def write(self, path: Path | str) -> Path:
        """Write the report to ``path`` (parent folders are created) and return the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.render(), encoding="utf-8")
        return target


def _table_html(rows: Sequence[Sequence[object]]) -> str:
    header, *body = rows
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    lines = "".join("<tr>" + "".join(_cell_html(c) for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>"


def _cell_html(cell: object) -> str:
    """A table cell; numbers (and numbers written as text, such as "1.2e-03" or "58 / 30") align right."""
    text = str(cell)
    numeric = isinstance(cell, int | float) or bool(_NUMBER.fullmatch(text.strip()))
    return f'<td class="num">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"


def _figure_html(figure: Figure, caption: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )
