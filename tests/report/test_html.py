"""The HTML report is self-contained, escapes text and embeds figures; figures save in each format."""

from __future__ import annotations

from pathlib import Path

import pytest

from ravine import ConfigError
from ravine.report import HtmlReport, new_figure, save_figure


def test_report_embeds_figures_and_escapes_text(tmp_path: Path) -> None:
    figure = new_figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    report = HtmlReport("Title <1>", subtitle="sub")
    report.add_section("Loss & gradient", "first <b>\n\nsecond", table=[["k", "v"], ["a", 1.5]])
    report.add_section("Figure", figures=[(figure, "a line")])
    path = report.write(tmp_path / "out" / "report.html")
    text = path.read_text()
    assert "Title &lt;1&gt;" in text
    assert "first &lt;b&gt;" in text
    assert text.count("<p>") == 2
    assert "data:image/png;base64," in text
    assert '<td class="num">1.5</td>' in text
    assert "http" not in text.replace("https://", "")  # nothing external to fetch


def test_save_figure_writes_each_format(tmp_path: Path) -> None:
    figure = new_figure(width=3, height=2)
    figure.add_subplot().plot([1, 2])
    written = save_figure(figure, tmp_path / "plot.whatever", formats=("png", "svg"))
    assert [p.suffix for p in written] == [".png", ".svg"]
    assert all(p.stat().st_size > 500 for p in written)
    with pytest.raises(ConfigError, match="jpeg"):
        save_figure(figure, tmp_path / "x", formats=("jpeg",))
