"""ravine's one progress-callback protocol: ``progress(done, total, stage)``.

Long computations (the lab's runs, the experiments, the tour's chapters) accept a ``progress`` callback and call
it as their work advances; they never print. ``done`` out of ``total`` is done (a fraction when ``total`` is 1),
and ``stage`` names what is running now (may be empty). The command line passes one that moves a rich progress
bar; :func:`silent` shows nothing, and :func:`part` maps a sub-task onto a share of its parent's bar.

Example:
    >>> seen = []
    >>> def record(done: float, total: float, stage: str = "") -> None:
    ...     seen.append((round(done / total, 2), stage))
    >>> second_half = part(record, start=0.5, width=0.5, stage="training")
    >>> second_half(1, 4)
    >>> seen
    [(0.62, 'training')]
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "part", "silent"]


class Progress(Protocol):
    """A callback ``progress(done, total, stage="")``; ``done / total`` is the share of the work done."""

    def __call__(self, done: float, total: float, stage: str = "", /) -> None:
        """Report that ``done`` out of ``total`` is done, ``stage`` being what runs now."""


def silent(done: float, total: float, stage: str = "", /) -> None:
    """A :class:`Progress` that shows nothing."""


def part(progress: Progress, *, start: float, width: float, stage: str = "") -> Progress:
    """A callback for a sub-task that fills ``[start, start + width]`` (as fractions) of ``progress``.

    The sub-task's own ``stage`` wins over the given one when it names one.
    """

    def report(done: float, total: float, inner: str = "", /) -> None:
        fraction = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
        progress(start + width * fraction, 1.0, inner or stage)

    return report
