"""When the monitor probes: every ``probe_every`` steps after a change of regime, backing off geometrically
while the regime is steady, further while the run is healthy, and within a time budget.

After each probe the interval is

- reset to ``probe_every`` when the regime's kind changed since the previous probe, or when the rules asked
  for the probe (the evidence is needed now and soon again); else doubled (a steady regime needs less), and,
  while steady,
- raised if needed so that the probes' measured time stays within ``budget`` of the measured training time
  (the last probe's seconds / (budget · seconds per step)),

then clamped to ``[probe_every, cap]`` and rounded up to a multiple of ``probe_every`` (the steps at which the
update Δθ the probes use is measured). The cap is ``max_every`` (by default the rules' window, so that each
window of judged steps holds a probe) and ``healthy_max_every`` while the regime is healthy: a healthy run's
verdict reads the falling loss, not the probes, and the moment the rules need a probe (the loss flattens) the
monitor takes one at that judgement and returns to the fast cadence (see :func:`~ravine.diagnose._decide.
raw_verdict`). The budget never delays the probes right after a change, which the rules' detection needs; it
spaces out the steady ones. The time per step is an exponential average of the wall time between calls, less
the monitor's own probing.
"""

from __future__ import annotations

import math
import time

__all__ = ["ProbeCadence"]


class ProbeCadence:
    """The probe schedule (see the module docstring).

    Args:
        every: The shortest interval (``MonitorConfig.probe_every``; 0: never probe).
        max_every: The longest interval while the regime is not healthy.
        budget: Share of the training time the steady probes may take (0: no time limit).
        healthy_max_every: The longest interval while the regime is healthy (None: ``max_every``).

    Example:
        >>> cadence = ProbeCadence(25, max_every=100, budget=0.0)
        >>> [cadence.due(step) for step in (24, 25)]
        [False, True]
        >>> cadence.done(25, seconds=0.0, steady=True)   # steady: the next probe is 50 steps later
        >>> cadence.next, cadence.interval
        (75, 50)
    """

    def __init__(
        self, every: int, *, max_every: int, budget: float, healthy_max_every: int | None = None
    ) -> None:
        self.every = every
        self.max_every = max(max_every, every)
        self.healthy_max_every = max(healthy_max_every or self.max_every, self.max_every)
        self.budget = budget
        self.interval = every
        self.next = every
        self.step_seconds = math.nan
        self.probe_seconds = 0.0
        """The last probe's seconds."""
        self.total_probe_seconds = 0.0
        """All probes' seconds so far."""
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

    def done(self, step: int, *, seconds: float, steady: bool, healthy: bool = False) -> None:
        """A probe at ``step`` took ``seconds``; ``steady``: the regime's kind is the one at the previous
        probe (and the rules did not ask for this probe); ``healthy``: that kind is healthy."""
        self._probing += seconds
        self.probe_seconds = seconds
        self.total_probe_seconds += seconds
        cap = self.healthy_max_every if healthy else self.max_every
        if steady:
            interval = min(self.interval * 2, cap)
            if self.budget > 0 and self.step_seconds > 0:
                interval = max(interval, math.ceil(seconds / (self.budget * self.step_seconds)))
        else:
            interval = self.every
        interval = min(max(interval, self.every), cap)
        self.interval = math.ceil(interval / self.every) * self.every
        self.next = step + self.interval
