"""What the tour produces: chapters of claims, numbers and figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ravine.claims import Claim

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Chapter", "TourResult"]


@dataclass
class Chapter:
    """One chapter of the tour: a heading, the lecture's explanation, a table, claims and figures.

    Attributes:
        key: Short name (as given to ``--only``).
        title: Heading.
        text: Paragraphs tying the chapter to the lecture (blank-line separated).
        table: Rows of numbers, the first row the header (may be empty).
        claims: The claims tested, with the numbers measured.
        figures: ``(file stem, figure, caption)`` triples.
        notes: Honest caveats.
        seconds: Wall time of the chapter.
    """

    key: str
    title: str
    text: str
    table: list[list[object]] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    figures: list[tuple[str, Figure, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class TourResult:
    """All chapters of one tour, in order, with the setting used and the total wall time."""

    full: bool
    chapters: list[Chapter]
    seconds: float

    @property
    def claims(self) -> list[tuple[Chapter, Claim]]:
        """Every claim with its chapter."""
        return [(chapter, claim) for chapter in self.chapters for claim in chapter.claims]
