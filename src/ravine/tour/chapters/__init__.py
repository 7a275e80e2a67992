"""The tour's chapters, one module each; :data:`CHAPTERS` lists them in report order.

A chapter module has a ``KEY`` (its ``--only`` name) and ``chapter(*, full, progress) -> Chapter``: it runs library
code and returns data and figures, never printing. Adding a chapter is one new module here and one entry in
:data:`_PARTS`. The lectures' experiments share one module, :mod:`.experiment`, with a chapter per entry of
:data:`ravine.experiments.REGISTRY`.
"""

from __future__ import annotations

from typing import Protocol

from ravine.experiments import REGISTRY
from ravine.progress import Progress
from ravine.tour._model import Chapter
from ravine.tour.chapters import curvature, diagnose, experiment, lab, optimizers

__all__ = ["CHAPTERS", "ChapterFn"]


class ChapterFn(Protocol):
    """``chapter(full=..., progress=...)`` → :class:`~ravine.tour.Chapter`."""

    def __call__(self, *, full: bool, progress: Progress) -> Chapter:
        """Run the chapter in its quick (or full) setting."""


_PARTS = [optimizers, lab, curvature, diagnose]
"""The chapters on ravine's parts, in report order (before the experiments)."""

CHAPTERS: dict[str, ChapterFn] = {part.KEY: part.chapter for part in _PARTS} | {
    name: experiment.for_experiment(name) for name in REGISTRY
}
"""Chapter key → chapter function, in the order the report shows them."""
