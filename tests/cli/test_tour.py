"""``ravine tour``: a real chapter end to end, and bad chapter names in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ravine import cli
from ravine.report.html import audit


def test_tour_writes_a_report_that_passes_the_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["tour", "--only", "optimizers", "--out", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1/1 claims hold" in out
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert audit(page) == []
    assert sorted(path.name for path in (tmp_path / "figures").iterdir()) == [
        "optimizers-loss.png",
        "schedules.png",
    ]


def test_cli_rejects_an_unknown_chapter(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tour", "--only", "optimizers,nope"]) == 1
    assert "unknown chapter(s) ['nope']" in capsys.readouterr().err
