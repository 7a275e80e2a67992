"""Writing the tour: one self-contained HTML file a student can navigate, and a PNG per figure."""

from __future__ import annotations

import re
from pathlib import Path

from ravine.claims import Claim
from ravine.report import new_figure
from ravine.report.html import audit
from ravine.report.tour import summary_rows, write_tour
from ravine.tour import Chapter, TourResult


def _hand_made_result() -> TourResult:
    figure = new_figure(width=3, height=2)
    figure.add_subplot().plot([0, 1], [1, 0])
    chapter = Chapter(
        key="lab",
        title="A <chapter>",
        text="First paragraph.\n\nSecond paragraph.",
        table=[["a", "b"], [1, 2.5]],
        claims=[
            Claim(statement="loss falls", holds=True, evidence="from 1 to 0"),
            Claim(statement="gradient small", holds=False, evidence="‖g‖ = 3"),
        ],
        figures=[("lab-demo", figure, "a line")],
        notes=["a caveat"],
        seconds=1.5,
    )
    return TourResult(full=False, chapters=[chapter], seconds=2.0)


def test_write_tour_embeds_figures_escapes_text_and_writes_pngs(tmp_path: Path) -> None:
    result = _hand_made_result()
    files = write_tour(result, tmp_path)
    text = files.report.read_text(encoding="utf-8")
    assert files.report_bytes == files.report.stat().st_size
    assert [p.name for p in files.figures] == ["lab-demo.png"]
    assert (tmp_path / "figures" / "lab-demo.png").stat().st_size > 1000
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 1
    assert "A &lt;chapter&gt;" in text and "<chapter>" not in text
    assert "1/2 claims hold" in text
    assert '<tr id="claim-lab-2" class="no">' in text and "✗ NO — did not hold" in text
    assert text.count("gradient small") == 1  # each claim once
    assert '<a href="#claim-lab-2">' in text and '<a href="#lab">' in text
    assert summary_rows(result)[1:] == [
        ["lab", "loss falls", "from 1 to 0", "yes"],
        ["lab", "gradient small", "‖g‖ = 3", "NO"],
    ]


def test_the_report_has_contents_whose_links_resolve_and_no_broken_figure(tmp_path: Path) -> None:
    result = _hand_made_result()
    text = write_tour(result, tmp_path).report.read_text(encoding="utf-8")
    assert audit(text) == []
    toc = re.search(r'<nav class="toc".*?</nav>', text, re.S)
    assert toc is not None
    links = re.findall(r'href="#([^"]+)"', toc.group(0))
    assert links == ["how-to-read", "lab"]
    assert "1/2 claims held" in toc.group(0)  # the chapter's count, in red since one did not hold
    # Breaking it is caught: a link to a missing anchor, a figure that is not a PNG.
    assert audit(text.replace('<section id="lab">', "<section>")) == ["link to #lab: no element has that id"]
    broken = re.sub(r"data:image/png;base64,[^\"]+", "data:image/png;base64,AAAA", text)
    assert audit(broken) == ["image 1 does not decode as a PNG"]
