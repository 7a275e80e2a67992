"""The tour: chapter selection, the torch.optim parity it reports, the report it writes, and its CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ravine import ConfigError, cli
from ravine.claims import Claim
from ravine.progress import Progress
from ravine.report import new_figure
from ravine.report.tour import summary_rows, write_tour
from ravine.tour import CHAPTERS, Chapter, TourResult, chapter_names, run_tour
from ravine.tour._parts import torch_parity


def test_chapter_names_keep_report_order_and_reject_unknown() -> None:
    assert chapter_names(None) == list(CHAPTERS)
    assert chapter_names(["landscape", "lab"]) == ["lab", "landscape"]
    with pytest.raises(ConfigError, match=r"unknown chapter\(s\) \['labs'\]; choose from"):
        chapter_names(["labs"])


@pytest.mark.parametrize("preset", ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw", "radam"])
def test_parity_with_torch_optim_is_float64_round_off(preset: str) -> None:
    assert torch_parity(preset, steps=100) <= 1e-12


def test_parity_detects_a_different_rule() -> None:
    # ravine's Adagrad (torch's root-sum-square) against torch's RMSprop must not agree.
    from ravine.tour import _parts

    twins = dict(_parts._TORCH_TWIN)
    try:
        _parts._TORCH_TWIN["adagrad"] = ("RMSprop", {})
        assert torch_parity("adagrad", steps=50) > 1e-3
    finally:
        _parts._TORCH_TWIN.clear()
        _parts._TORCH_TWIN.update(twins)


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
    assert "does not hold</b> — gradient small: ‖g‖ = 3" in text
    assert summary_rows(result)[1:] == [
        ["lab", "loss falls", "from 1 to 0", "yes"],
        ["lab", "gradient small", "‖g‖ = 3", "NO"],
    ]


def test_run_tour_reports_progress_and_times_each_chapter() -> None:
    seen: dict[str, list[tuple[float, float]]] = {}

    def on_chapter(name: str) -> Progress:
        seen[name] = []

        def progress(done: float, total: float, _stage: str = "", /) -> None:
            seen[name].append((done, total))

        return progress

    result = run_tour(only=["optimizers"], on_chapter=on_chapter)
    (chapter,) = result.chapters
    assert chapter.key == "optimizers" and chapter.seconds > 0
    assert seen["optimizers"][-1][0] == seen["optimizers"][-1][1]
    assert all(claim.holds for claim in chapter.claims)
    assert [row[0] for row in chapter.table[1:]] == [
        "sgd",
        "momentum",
        "adagrad",
        "rmsprop",
        "adam",
        "adamw",
        "radam",
    ]


def test_cli_rejects_an_unknown_chapter(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tour", "--only", "optimizers,nope"]) == 1
    assert "unknown chapter(s) ['nope']" in capsys.readouterr().err
