"""ravine's one type for a checked claim: :class:`Claim` — a sentence, whether it held, and the numbers.

The lab's stories, the experiments and the tour's chapters all state the lectures' claims this way; reports and
the command line show them. A claim that did not hold is reported as such, with its evidence, never hidden.

Example:
    >>> claim = Claim(statement="momentum escapes the dip", holds=True, evidence="GD stops at x = 0.9")
    >>> claim.text
    'momentum escapes the dip — held: GD stops at x = 0.9'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Claim"]


@dataclass(frozen=True)
class Claim:
    """One of the lectures' claims, checked against a run's numbers.

    Attributes:
        statement: The claim, one sentence.
        holds: Whether the numbers support it.
        evidence: The numbers the verdict rests on.
        subject: What the claim is about when that is not the whole chapter (e.g. ``GD η=1e-2 on the ravine
            surface``); empty otherwise.
    """

    statement: str
    holds: bool
    evidence: str
    subject: str = ""

    @property
    def text(self) -> str:
        """``statement — held: evidence`` or ``statement — did not hold: evidence``."""
        return f"{self.statement} — {'held' if self.holds else 'did not hold'}: {self.evidence}"
