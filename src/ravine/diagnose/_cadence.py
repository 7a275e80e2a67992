"""When the monitor probes: every ``probe_every`` steps at first, spaced out while the regime is steady and
whenever the probes would take more than their share of the training time.

After each probe the interval is

- reset to ``probe_every`` when the verdict's kind changed since the previous probe (the rules need fresh
  evidence), else doubled (a steady regime needs less), and
- raised, if needed, so that the probes' measured time stays within ``budget`` of the measured training time
  (probe seconds / (budget · seconds per step)),

then clamped to ``[probe_every, max_every]`` and rounded up to a multiple of ``probe_every`` (the steps at
which the update Δθ the probes use is measured). ``max_every`` defaults to the rules' window, so that every
window of judged steps still holds a probe. The time per step is an exponential average of the wall time
between calls, less the monitor's own probing.
"""

from __future__ import annotations

import math
import time

__all__ = ["ProbeCadence"]


class ProbeCadence:
    """The probe schedule (see the module docstring).

    Args:
        every: The shortest interval (``MonitorConfig.probe_every``; 0: never probe).
        max_every: The longest interval.
        budget: Share of the training time the probes may take (0: no time limit).

    Example:
        >>> cadence = ProbeCadence(25, max_every=100, budget=0.0)
        >>> [cadence.due(step) for step in (24, 25)]
        [False, True]
        >>> cadence.done(25, seconds=0.0, steady=True)   # steady: the next probe is 50 steps later
        >>> cadence.next, cadence.interval
        (75, 50)
    """

    def __init__(self, every: int, *, max_every: int, budget: float) -> None:
        self.every = every
        self.max_every = max(max_every, every)
        self.budget = budget
        self.interval = every
        self.next = every
        self.step_seconds = math.nan
        self.probe_seconds = 0.0
        self._last_call: float | None = None
        self._probing = 0.0

    def tick(self) -> None:
        """Call once per recorded step: measures the time per training step."""
        now = time.perf_counter()
        if self._last_call is not None:
            seconds = max(now - self._last_call - self._probing, 0.0)
            self.step_seconds = (
                seconds if math.isnan(self.step_seconds) else 0.9 * self.step_seconds + 0.1 * seconds
            )
        self._last_call, self._probing = now, 0.0

    def due(self, step: int) -> bool:
        """Whether to probe at ``step``."""
        return self.every > 0 and step >= self.next and step % self.every == 0

    def done(self, step: int, *, seconds: float, steady: bool) -> None:
        """A probe at ``step`` took ``seconds``; ``steady``: the verdict's kind is the one at the previous
        probe."""
        self._probing += seconds
        self.probe_seconds = seconds
        interval = min(self.interval * 2, self.max_every) if steady else self.every
        if self.budget > 0 and self.step_seconds > 0:
            interval = max(interval, math.ceil(seconds / (self.budget * self.step_seconds)))
        interval = min(max(interval, self.every), self.max_every)
        self.interval = math.ceil(interval / self.every) * self.every
        self.next = step + self.interval
