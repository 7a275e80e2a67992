"""The tour: chapter selection, the chapter list, and running chapters with progress and timing."""

from __future__ import annotations

import pytest

from ravine import ConfigError
from ravine.claims import Claim
from ravine.progress import Progress
from ravine.tour import CHAPTERS, Chapter, chapter_names, run_tour


def test_chapter_names_keep_report_order_and_reject_unknown() -> None:
    assert chapter_names(None) == list(CHAPTERS)
    assert chapter_names(["landscape", "lab"]) == ["lab", "landscape"]
    with pytest.raises(ConfigError, match=r"unknown chapter\(s\) \['labs'\]; choose from"):
        chapter_names(["labs"])


def test_chapters_are_the_parts_then_every_registered_experiment() -> None:
    from ravine.experiments import REGISTRY

    assert list(CHAPTERS) == ["optimizers", "lab", "curvature", "diagnose", *REGISTRY]


def test_run_tour_reports_progress_and_times_each_chapter(monkeypatch: pytest.MonkeyPatch) -> None:
    def tiny(*, full: bool, progress: Progress) -> Chapter:
        for done in range(1, 4):
            progress(done, 3, "counting")
        return Chapter(key="lab", title=f"full={full}", text="", claims=[Claim("it ran", True, "3 steps")])

    monkeypatch.setitem(CHAPTERS, "lab", tiny)
    seen: dict[str, list[tuple[float, float]]] = {}

    def on_chapter(name: str) -> Progress:
        seen[name] = []

        def progress(done: float, total: float, _stage: str = "", /) -> None:
            seen[name].append((done, total))

        return progress

    result = run_tour(only=["lab"], on_chapter=on_chapter)
    (chapter,) = result.chapters
    assert chapter.title == "full=False" and chapter.seconds >= 0 and result.seconds >= chapter.seconds
    assert seen == {"lab": [(1, 3), (2, 3), (3, 3)]}
    assert [claim.statement for _, claim in result.claims] == ["it ran"]
