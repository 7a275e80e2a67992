"""The tour's chapters on the lectures' experiments (one per entry of :data:`ravine.experiments.REGISTRY`)."""

from __future__ import annotations

from ravine.experiments._base import ClaimCheck
from ravine.tour._model import Chapter, Claim, Progress

__all__ = ["experiment_chapter"]


def experiment_chapter(name: str, *, full: bool, progress: Progress) -> Chapter:
    """Run experiment ``name`` in its quick (or full) setting; its table, claim, notes and figure."""
    from ravine.experiments import REGISTRY

    experiment = REGISTRY[name]

    def report(_stage: str, fraction: float) -> None:
        progress(round(1000 * min(max(fraction, 0.0), 1.0)), 1000)

    result = experiment("full" if full else "quick", progress=report)
    progress(1000, 1000)
    table = [list(row) for row in result.table()]
    return Chapter(
        key=name,
        title=experiment.title,
        text=experiment.explanation,
        table=table,
        claims=_claims(result.claim, result.claims, result.notes, table, holds=bool(result.holds)),
        figures=[(f"experiment-{name}", experiment.figure(result), experiment.title)],
        notes=list(result.notes),
    )


def _claims(
    claim: str, checks: list[ClaimCheck], notes: list[str], table: list[list[object]], *, holds: bool
) -> list[Claim]:
    """One tour claim per checked claim, with the numbers it rests on as "measured".

    An experiment that checked nothing separately falls back to its overall claim and its first note.
    """
    if checks:
        return [Claim(check.statement, check.evidence, check.holds) for check in checks]
    measured = notes[0] if notes else f"see the table ({max(len(table) - 1, 0)} rows)"
    return [Claim(claim, measured, holds)]
