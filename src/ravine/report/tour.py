"""Writing the tour: one self-contained HTML report (figures embedded) and a PNG per figure."""

from __future__ import annotations

import html
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ravine.report._figures import save_figure
from ravine.report.html import HtmlReport, slug

if TYPE_CHECKING:
    from ravine.claims import Claim
    from ravine.tour import TourResult

__all__ = ["TourFiles", "claims_html", "summary_rows", "write_tour"]


@dataclass(frozen=True)
class TourFiles:
    """What :func:`write_tour` wrote: the report, the PNG files, and the report's size in bytes."""

    report: Path
    figures: list[Path]
    report_bytes: int


def summary_rows(result: TourResult) -> list[list[object]]:
    """One row per claim: chapter, claim, what was measured, whether it holds (header first)."""
    rows: list[list[object]] = [["chapter", "claim", "measured", "holds"]]
    for chapter, claim in result.claims:
        rows.append([chapter.key, claim.statement, claim.evidence, "yes" if claim.holds else "NO"])
    return rows


def claims_html(key: str, claims: Sequence[Claim]) -> str:
    """A chapter's claims as one table: each claim once, with its evidence; one that did not hold in red.

    Each row has the anchor ``claim-<key>-<n>`` (n from 1), so that the summary can link to it.
    """
    if not claims:
        return ""
    rows = []
    for number, claim in enumerate(claims, start=1):
        subject = f'<div class="subject">{html.escape(claim.subject)}</div>' if claim.subject else ""
        verdict = '<td class="yes">✓ held</td>' if claim.holds else '<td class="no">✗ NO — did not hold</td>'
        css = "" if claim.holds else ' class="no"'
        rows.append(
            f'<tr id="claim-{slug(key)}-{number}"{css}><td>{number}</td>'
            f"<td>{html.escape(claim.statement)}{subject}</td><td>{html.escape(claim.evidence)}</td>{verdict}</tr>"
        )
    return (
        '<table class="claims"><thead><tr><th>#</th><th>the lecture\'s claim</th><th>what we measured</th>'
        f"<th>verdict</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _summary_html(result: TourResult) -> str:
    """The opening: how many claims held, and a link to each one that did not (shown in its chapter)."""
    held = sum(claim.holds for _, claim in result.claims)
    failed = [
        f'<li><a href="#claim-{slug(chapter.key)}-{number}">{html.escape(chapter.title)}, claim {number}</a>'
        "</li>"
        for chapter in result.chapters
        for number, claim in enumerate(chapter.claims, start=1)
        if not claim.holds
    ]
    lines = [
        "<p>Each chapter runs one part of ravine on a question from Hung-yi Lee's optimization lectures "
        "(ML2021), on this machine, just now. A chapter explains the lecture's idea, shows the numbers, checks "
        "the lecture's claims against them (each claim once, in a table under the chapter's text) and ends "
        "with figures; each caption says what to look at.</p>",
        f"<p><b>{held}/{len(result.claims)} claims held.</b></p>",
    ]
    if failed:
        lines.append(
            '<div class="verdict warn"><b>Did not hold on this run</b> (the chapter says why it may not):'
            f"<ul>{''.join(failed)}</ul></div>"
        )
    return "".join(lines)


def write_tour(result: TourResult, out: Path | str) -> TourFiles:
    """Write ``out/report.html`` (a table of contents, then one section per chapter) and ``out/figures/*.png``.

    Returns:
        The paths written and the report's size.
    """
    import torch

    from ravine import __version__

    folder = Path(out)
    setting = "full" if result.full else "quick"
    held = sum(claim.holds for _, claim in result.claims)
    report = HtmlReport(
        "ravine tour: why did my training loss stop going down?",
        subtitle=(
            f"{setting} setting · {len(result.chapters)} chapters · {held}/{len(result.claims)} claims hold · "
            f"{result.seconds:.0f} s wall time · ravine {__version__}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s), {platform.machine()}"
        ),
        toc=True,
    )
    report.add_html("How to read this report", _summary_html(result), anchor="how-to-read")
    written: list[Path] = []
    for chapter in result.chapters:
        count = sum(claim.holds for claim in chapter.claims)
        note = f"{count}/{len(chapter.claims)} claims held" if chapter.claims else "no claims"
        if count < len(chapter.claims):
            note = f'<b style="color:#a61b1b">{note}</b>'
        notes = "".join(f'<p class="note">{html.escape(note_)}</p>' for note_ in chapter.notes)
        report.add_section(
            chapter.title,
            chapter.text,
            table=chapter.table or None,
            figures=[(figure, caption) for _, figure, caption in chapter.figures],
            trusted_html=claims_html(chapter.key, chapter.claims) + notes,
            anchor=chapter.key,
            toc_note=f"{note} · {len(chapter.figures)} figure(s) · {chapter.seconds:.0f} s",
        )
        for stem, figure, _ in chapter.figures:
            written += save_figure(figure, folder / "figures" / stem, formats=("png",))
    path = report.write(folder / "report.html")
    return TourFiles(report=path, figures=written, report_bytes=path.stat().st_size)
