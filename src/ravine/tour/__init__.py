"""``ravine tour``: every part of ravine on the lectures' questions, as chapters of numbers, claims and figures.

A chapter runs library code and returns a :class:`Chapter` (data and matplotlib figures); it never prints.
:func:`run_tour` runs the chosen chapters in order; :func:`ravine.report.tour.write_tour` writes one
self-contained HTML report and a PNG per figure. The quick setting (the default) is sized for about three
minutes on two CPU cores; ``full=True`` runs the full-size settings.

Example:
    >>> from ravine.tour import CHAPTERS, chapter_names
    >>> chapter_names(["lab", "optimizers"])
    ['optimizers', 'lab']
    >>> len(CHAPTERS)
    11
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ravine._threads import single_threaded
from ravine.errors import ConfigError
from ravine.progress import Progress, silent
from ravine.tour._model import Chapter, TourResult
from ravine.tour.chapters import CHAPTERS, ChapterFn

__all__ = ["CHAPTERS", "Chapter", "ChapterFn", "TourResult", "chapter_names", "run_tour"]


def chapter_names(only: Sequence[str] | None) -> list[str]:
    """The chapters to run, in report order; ``None`` or empty means all.

    Raises:
        ConfigError: If a name is not a chapter.
    """
    if not only:
        return list(CHAPTERS)
    unknown = [name for name in only if name not in CHAPTERS]
    if unknown:
        raise ConfigError(f"tour: unknown chapter(s) {unknown}; choose from {list(CHAPTERS)}")
    return [name for name in CHAPTERS if name in only]


def run_tour(
    *,
    full: bool = False,
    only: Sequence[str] | None = None,
    on_chapter: Callable[[str], Progress] | None = None,
) -> TourResult:
    """Run the chosen chapters (all by default) and return their data and figures.

    Args:
        full: Full-size settings (minutes per chapter) instead of the quick ones.
        only: Chapter keys to run (see :data:`CHAPTERS`); ``None`` runs all.
        on_chapter: Called with a chapter's key as it starts; returns that chapter's progress callback.
    """
    names = chapter_names(only)
    start = time.perf_counter()
    chapters: list[Chapter] = []
    for name in names:
        progress = on_chapter(name) if on_chapter is not None else silent
        began = time.perf_counter()
        # the tour's models are tiny: one intra-op thread is many times faster than two on a busy machine
        chapter = single_threaded(CHAPTERS[name])(full=full, progress=progress)
        chapter.seconds = time.perf_counter() - began
        chapters.append(chapter)
    return TourResult(full=full, chapters=chapters, seconds=time.perf_counter() - start)
