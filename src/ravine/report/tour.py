"""Writing the tour: one self-contained HTML report (figures embedded) and a PNG per figure."""

from __future__ import annotations

import html
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ravine.report._figures import save_figure
from ravine.report.html import HtmlReport

if TYPE_CHECKING:
    from ravine.tour import TourResult

__all__ = ["TourFiles", "summary_rows", "write_tour"]


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


def write_tour(result: TourResult, out: Path | str) -> TourFiles:
    """Write ``out/report.html`` and ``out/figures/*.png``; returns the paths written."""
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
    )
    report.add_section(
        "What the lectures claim, and what we measured",
        "Each row is a claim from Hung-yi Lee's optimization lectures (ML2021) tested on this machine just now; "
        "'NO' means the numbers did not support it on this run, and the chapter says why.",
        table=summary_rows(result),
    )
    report.add_section(
        "Time per chapter",
        table=[["chapter", "seconds"]] + [[c.title, f"{c.seconds:.1f}"] for c in result.chapters],
    )
    written: list[Path] = []
    for chapter in result.chapters:
        claims = "".join(
            f'<p class="verdict{"" if claim.holds else " warn"}"><b>{"holds" if claim.holds else "does not hold"}'
            f"</b> — {html.escape(claim.statement.rstrip('.'))}: {html.escape(claim.evidence)}</p>"
            for claim in chapter.claims
        )
        notes = "".join(f'<p class="note">{html.escape(note)}</p>' for note in chapter.notes)
        report.add_section(
            chapter.title,
            chapter.text,
            table=chapter.table or None,
            figures=[(figure, caption) for _, figure, caption in chapter.figures],
            trusted_html=claims + notes,
        )
        for stem, figure, _ in chapter.figures:
            written += save_figure(figure, folder / "figures" / stem, formats=("png",))
    path = report.write(folder / "report.html")
    return TourFiles(report=path, figures=written, report_bytes=path.stat().st_size)
