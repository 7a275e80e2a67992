"""What every experiment shares: the result protocol and the registry entry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ravine.claims import Claim
from ravine.errors import ConfigError

if TYPE_CHECKING:
    from ravine.progress import Progress

__all__ = ["Experiment", "ExperimentResult", "ExperimentRun", "pick_config"]


class ExperimentResult(Protocol):
    """What every experiment's result offers, besides its own numbers.

    Attributes:
        claim: The lecture's claim under test, one sentence.
        holds: Whether every checked claim holds on this run, computed from the numbers.
        claims: Each claim checked separately, with the numbers behind its verdict.
        notes: Honest caveats (what was measured, what was not, when the claim failed and why it may).
    """

    claim: str
    holds: bool
    claims: list[Claim]
    notes: list[str]

    def table(self) -> list[list[object]]:
        """The result's numbers as rows, the first row being the header."""
        ...


@dataclass(frozen=True)
class Experiment:
    """One entry of :data:`ravine.experiments.REGISTRY`.

    Attributes:
        name: The CLI name (``ravine experiment NAME``).
        title: A heading for reports.
        explanation: One paragraph tying the experiment to the lecture.
        config_type: The experiment's config dataclass (``quick()`` and ``full()`` give the two presets).
        run: ``run(config, progress=...)`` → result (an :class:`ExperimentResult`).
    """

    name: str
    title: str
    explanation: str
    config_type: type[Any]
    run: Callable[..., Any]

    def config(self, mode: str = "quick", **overrides: Any) -> Any:
        """The ``quick`` or ``full`` preset with ``overrides`` applied (``None`` values are ignored)."""
        return pick_config(self.config_type, mode, overrides)

    def __call__(self, mode: str = "quick", *, progress: Progress | None = None, **overrides: Any) -> Any:
        """Run the experiment in ``mode`` with ``overrides``; returns its result."""
        return self.run(self.config(mode, **overrides), progress=progress)

    def execute(
        self, mode: str = "quick", *, progress: Progress | None = None, **overrides: Any
    ) -> ExperimentRun:
        """Like calling the entry, but timed and wrapped in an :class:`ExperimentRun`."""
        import time

        config = self.config(mode, **overrides)
        started = time.perf_counter()
        result = self.run(config, progress=progress)
        return ExperimentRun(self, mode, config, result, time.perf_counter() - started)


@dataclass(frozen=True)
class ExperimentRun:
    """One finished run of a registered experiment: its result with the table and claims.

    Attributes:
        experiment: The registry entry that was run.
        mode: ``quick`` or ``full``.
        config: The config actually used (preset plus overrides).
        result: The experiment's own result dataclass (all its numbers).
        seconds: Wall time of the run.
    """

    experiment: Experiment
    mode: str
    config: Any
    result: Any
    seconds: float

    @property
    def name(self) -> str:
        """The experiment's registry name."""
        return self.experiment.name

    @property
    def claims(self) -> list[Claim]:
        """Every claim with its verdict and evidence."""
        return list(self.result.claims)

    @property
    def holds(self) -> bool:
        """Whether every claim held."""
        return bool(self.result.holds)

    @property
    def notes(self) -> list[str]:
        """Caveats and settings, as sentences."""
        return list(self.result.notes)

    def table(self) -> list[list[object]]:
        """The numbers as rows, the first row being the header."""
        return [list(row) for row in self.result.table()]


def pick_config(config_type: type[Any], mode: str, overrides: dict[str, Any]) -> Any:
    """``config_type.quick()`` or ``.full()`` with the non-``None`` overrides replaced.

    Raises:
        ConfigError: If ``mode`` is not quick or full, or an override names no field of the config.
    """
    import dataclasses

    if mode not in ("quick", "full"):
        raise ConfigError(f"experiment mode must be 'quick' or 'full', got {mode=}")
    preset = getattr(config_type, mode)()
    names = {f.name for f in dataclasses.fields(preset)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"{config_type.__name__}: unknown option(s) {unknown}; known: {sorted(names)}")
    changes = {key: value for key, value in overrides.items() if value is not None}
    return dataclasses.replace(preset, **changes)


def format_rows(rows: Sequence[Sequence[object]]) -> list[list[object]]:
    """Round floats to 4 significant digits for display; other cells pass through."""
    return [[f"{cell:.4g}" if isinstance(cell, float) else cell for cell in row] for row in rows]
