"""A self-contained HTML report: sections of text, tables and embedded figures in one file.

Every section gets an anchor (``id``) made from its title; with ``toc=True`` the report opens with a table of
contents linking to each section.

Example:
    >>> from ravine.report import HtmlReport
    >>> report = HtmlReport("Demo", toc=True)
    >>> report.add_section("Two numbers", "Two numbers.", table=[["a", "b"], [1, 2]])
    'two-numbers'
    >>> page = report.render()
    >>> '<a href="#two-numbers">' in page and '<section id="two-numbers">' in page
    True
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["HtmlReport", "audit", "slug"]

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
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #e2e6ee; }
figcaption { font-size: .9em; color: #39435a; margin-top: .3em; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1.2em 1.5em;
           margin: 1em 0; }
.figures figure.wide { grid-column: 1 / -1; }
nav.toc { background: #f6f8fb; border: 1px solid #dde3ec; padding: .6em 1.2em; margin: 1.5em 0; }
nav.toc ol { margin: .3em 0; padding-left: 1.4em; } nav.toc li { margin: .15em 0; }
nav.toc .count { color: #55607a; font-size: .9em; }
tr.no td { background: #fdecea; } td.no { color: #a61b1b; font-weight: 700; white-space: nowrap; }
td.yes { color: #276749; white-space: nowrap; }
.subject { color: #55607a; font-size: .9em; }
.verdict { padding: .8em 1em; border-left: 5px solid #2b6cb0; background: #f3f7fd; }
.warn { border-left-color: #c05621; background: #fdf6f0; }
.note { color: #55607a; font-size: .9em; }
"""


@dataclass
class _Section:
    title: str
    anchor: str
    body_html: str
    toc_note: str = ""
    parts: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    """An HTML anchor from ``text``: lower case ASCII letters, digits and hyphens.

    Example:
        >>> slug("The lab: error surfaces (2-D)")
        'the-lab-error-surfaces-2-d'
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


class HtmlReport:
    """Collects sections and renders one HTML file with every figure embedded as base64 PNG.

    Args:
        title: The report's heading.
        subtitle: A line under it (settings, versions).
        toc: Open with a table of contents linking to every section.
    """

    def __init__(self, title: str, *, subtitle: str = "", toc: bool = False) -> None:
        self.title = title
        self.subtitle = subtitle
        self.toc = toc
        self._sections: list[_Section] = []

    def _anchor(self, wanted: str) -> str:
        taken = {section.anchor for section in self._sections}
        anchor, count = wanted, 2
        while anchor in taken:
            anchor, count = f"{wanted}-{count}", count + 1
        return anchor

    def add_section(
        self,
        title: str,
        text: str = "",
        *,
        table: Sequence[Sequence[object]] | None = None,
        figures: Sequence[tuple[Figure, str]] = (),
        css_class: str = "",
        trusted_html: str = "",
        anchor: str | None = None,
        toc_note: str = "",
    ) -> str:
        """Add a section: paragraphs of ``text`` (blank-line separated), ``trusted_html`` produced by ravine
        itself (e.g. claims), an optional table whose first row is the header, and figures with captions.

        Args:
            anchor: The section's ``id`` (default: made from ``title``; made unique either way).
            toc_note: A short note shown after the section's entry in the table of contents.

        Returns:
            The section's anchor, for links (``#anchor``).
        """
        paragraphs = [chunk.strip() for chunk in text.split("\n\n") if chunk.strip()]
        wrapper = f' class="{html.escape(css_class)}"' if css_class else ""
        body = "".join(f"<p{wrapper}>{html.escape(chunk)}</p>" for chunk in paragraphs)
        section = _Section(title, self._anchor(slug(anchor or title)), body + trusted_html, toc_note)
        if table:
            section.parts.append(_table_html(table))
        if figures:
            drawn = "".join(_figure_html(figure, caption) for figure, caption in figures)
            section.parts.append(f'<div class="figures">{drawn}</div>')
        self._sections.append(section)
        return section.anchor

    def add_html(self, title: str, raw_html: str, *, anchor: str | None = None, toc_note: str = "") -> str:
        """Add a section whose body is trusted HTML produced by ravine itself; returns its anchor."""
        section = _Section(title, self._anchor(slug(anchor or title)), raw_html, toc_note)
        self._sections.append(section)
        return section.anchor

    def render(self) -> str:
        """The whole report as one HTML string."""
        sections = "".join(
            f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body_html}{"".join(s.parts)}</section>'
            for s in self._sections
        )
        subtitle = f'<p class="note">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>{subtitle}{self._toc_html()}{sections}</body></html>"
        )

    def _toc_html(self) -> str:
        if not self.toc or not self._sections:
            return ""
        items = "".join(
            f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a>'
            + (f' <span class="count">— {s.toc_note}</span>' if s.toc_note else "")
            + "</li>"
            for s in self._sections
        )
        return f'<nav class="toc" id="contents"><b>Contents</b><ol>{items}</ol></nav>'

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
    """A figure as an embedded PNG with its caption; a wide one (9 in or more) takes the whole row of the grid."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    wide = ' class="wide"' if figure.get_figwidth() >= 9 else ""
    return (
        f'<figure{wide}><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


class _Audit(HTMLParser):
    """Collects a page's ids, its links to anchors and its images."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []
        self.toc_links: list[str] = []
        self.images: list[tuple[str, str]] = []
        self._in_toc = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if "id" in values:
            self.ids.append(values["id"])
        if (tag == "nav" and "toc" in values.get("class", "").split()) or (tag == "nav" and self._in_toc):
            self._in_toc += 1
        if tag == "a" and values.get("href", "").startswith("#"):
            self.links.append(values["href"][1:])
            if self._in_toc:
                self.toc_links.append(values["href"][1:])
        if tag == "img":
            self.images.append((values.get("src", ""), values.get("alt", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav" and self._in_toc:
            self._in_toc -= 1


def audit(page: str) -> list[str]:
    """What is wrong with a rendered report, one line each (empty when nothing is).

    Checks that there is a table of contents, that every ``#anchor`` link (in it or elsewhere) names an element's
    ``id``, that no ``id`` appears twice, and that every image is an embedded PNG that decodes, with an ``alt``.

    Example:
        >>> report = HtmlReport("Demo", toc=True)
        >>> _ = report.add_section("One", "text")
        >>> audit(report.render())
        []
        >>> for problem in audit('<nav class="toc"><a href="#two">Two</a></nav><img src="x.png">'):
        ...     print(problem)
        link to #two: no element has that id
        image 1 is not an embedded PNG (src x.png)
        image 1 has no alt text
    """
    parser = _Audit()
    parser.feed(page)
    problems = []
    if not parser.toc_links:
        problems.append("no table of contents (nav.toc with links)")
    ids = set(parser.ids)
    problems += [
        f"id {name!r} appears {parser.ids.count(name)} times"
        for name in sorted(ids)
        if parser.ids.count(name) > 1
    ]
    problems += [
        f"link to #{name}: no element has that id" for name in dict.fromkeys(parser.links) if name not in ids
    ]
    for number, (src, alt) in enumerate(parser.images, start=1):
        prefix = "data:image/png;base64,"
        if not src.startswith(prefix):
            problems.append(f"image {number} is not an embedded PNG (src {src[:40]})")
        else:
            try:
                data = base64.b64decode(src[len(prefix) :], validate=True)
            except ValueError:
                data = b""
            if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) < 100:
                problems.append(f"image {number} does not decode as a PNG")
        if not alt.strip():
            problems.append(f"image {number} has no alt text")
    return problems
