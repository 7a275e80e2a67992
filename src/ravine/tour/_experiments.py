"""The tour's chapters on the lectures' experiments (one per entry of :data:`ravine.experiments.REGISTRY`)."""

from __future__ import annotations

from ravine.claims import Claim
from ravine.progress import Progress
from ravine.tour._model import Chapter

__all__ = ["experiment_chapter"]


def experiment_chapter(name: str, *, full: bool, progress: Progress) -> Chapter:
    """Run experiment ``name`` in its quick (or full) setting; its table, claim, notes and figure."""
    from ravine.experiments import REGISTRY
    from ravine.report.experiments import FIGURES

    experiment = REGISTRY[name]

    result = experiment("full" if full else "quick", progress=progress)
    progress(1, 1)
    table = [list(row) for row in result.table()]
    return Chapter(
        key=name,
        title=experiment.title,
        text=experiment.explanation,
        table=table,
        claims=_claims(result.claim, result.claims, result.notes, table, holds=bool(result.holds)),
        figures=[(f"experiment-{name}", FIGURES[name](result), experiment.title)],
        notes=list(result.notes),
    )


def _claims(
    claim: str, checks: list[Claim], notes: list[str], table: list[list[object]], *, holds: bool
) -> list[Claim]:
    """One tour claim per checked claim, with the numbers it rests on as "measured".

    An experiment that checked nothing separately falls back to its overall claim and its first note.
    """
    if checks:
        return list(checks)
    measured = notes[0] if notes else f"see the table ({max(len(table) - 1, 0)} rows)"
    return [Claim(statement=claim, holds=holds, evidence=measured)]
