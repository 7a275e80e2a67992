"""One verdict per regime: hysteresis over the raw judgements, and the timeline of regimes with their onsets.

A raw judgement reads one window of the history; on a steady run it can still waver (a noisy window, a
probe that came out borderline). :class:`RegimeTracker` turns the stream of raw verdicts into regimes:

- a problem regime is **entered** out of *healthy* (or *stalled*, unexplained) on evidence: every judgement
  of the last quarter window (two at least) gave the new kind K, or K holds at least half of the judgements
  of the last ``window`` steps and the current regime at most a quarter (a non-finite loss or a blow-up
  enters *diverging* at once, and a verdict confirmed by a measurement of its mechanism leaves *healthy* or
  *stalled* at once; a run is presumed healthy until then);
- any other regime is **left** only on clear counter-evidence: a loss falling by 5× the plateau tolerance per
  window, or one and a half windows of judgements (half for the new kind, at most a quarter for it), so
  single contrary judgements never flip it;
- asking at any step gives the current regime (with the freshest evidence of its kind) and its onset.

Memory is bounded: the last ``max_judgements`` judgements and ``max_regimes`` regimes are kept.
"""

from __future__ import annotations

import collections
from dataclasses import replace

from ravine.diagnose._records import Regime, Verdict, VerdictKind

__all__ = ["RegimeTracker"]


class RegimeTracker:
    """Hysteresis over raw verdicts (see the module docstring).

    Args:
        window: Steps of judgements a switch is decided over.
        max_judgements: Raw judgements kept.
        max_regimes: Regimes kept in :attr:`timeline` (oldest dropped first).

    Example:
        >>> from ravine.diagnose import Verdict, VerdictKind
        >>> tracker = RegimeTracker(window=100)
        >>> kinds = ["healthy"] * 4 + ["LR too small", "healthy"] + ["LR too small"] * 4
        >>> for i, k in enumerate(kinds):
        ...     current = tracker.update(Verdict(VerdictKind(k), k, 25 * (i + 1)))
        >>> [(r.kind.value, r.onset) for r in tracker.timeline]
        [('healthy', 25), ('LR too small', 125)]
    """

    def __init__(self, *, window: int = 100, max_judgements: int = 400, max_regimes: int = 1000) -> None:
        self.window = window
        self.judgements: collections.deque[tuple[int, VerdictKind]] = collections.deque(maxlen=max_judgements)
        """Raw judgements (step, kind), newest last."""
        self.reported: collections.deque[tuple[int, VerdictKind]] = collections.deque(maxlen=max_judgements)
        """What was reported at each judgement (the current regime's kind), newest last."""
        self._regimes: collections.deque[Regime] = collections.deque(maxlen=max_regimes)
        self._latest: Verdict | None = None

    @property
    def timeline(self) -> list[Regime]:
        """The regimes so far, oldest first (the last one is current)."""
        return list(self._regimes)

    @property
    def current(self) -> Regime | None:
        """The current regime (None before the first verdict with enough data)."""
        return self._regimes[-1] if self._regimes else None

    def update(self, verdict: Verdict) -> Verdict:
        """Fold in a raw verdict; return the current regime's verdict (its kind, the freshest evidence of that
        kind, ``step`` = now, ``onset`` = the regime's onset)."""
        if verdict.provisional:
            if not self._regimes:
                return verdict
            return self._current_verdict(verdict.step)
        step, kind = verdict.step, verdict.kind
        if self.judgements and self.judgements[-1][0] == step:
            self.judgements.pop()
        self.judgements.append((step, kind))
        regime = self.current
        if regime is None:
            # The run is presumed healthy until the evidence for a problem is in (as out of a healthy regime).
            healthy = Regime(VerdictKind.HEALTHY, step, step, step)
            if kind is VerdictKind.HEALTHY or not self._switches(verdict, VerdictKind.HEALTHY, step):
                self._regimes.append(healthy)
                self._latest = None
            else:
                self._open(kind, step, step)
        elif kind is not regime.kind and self._switches(verdict, regime.kind, step):
            votes = [(s, k) for s, k in self.judgements if s > step - self.window]
            # The regime began where its evidence did: the first judgement of this kind in the window (after
            # the regime it replaces began).
            first = min(s for s, k in votes if k is kind)
            self._open(kind, max(first, regime.entered + 1), step)
        if kind is self._regimes[-1].kind:
            self._latest = verdict
        last = self._regimes[-1]
        self._regimes[-1] = replace(last, last_step=step)
        if self.reported and self.reported[-1][0] == step:
            self.reported.pop()
        self.reported.append((step, last.kind))
        return self._current_verdict(step)

    def _switches(self, verdict: Verdict, incumbent: VerdictKind, step: int) -> bool:
        kind = verdict.kind
        if kind is VerdictKind.DIVERGING:
            return True
        # Healthy and stalled are the absence of an explanation, diverging a transient: left on evidence.
        unexplained = incumbent in (VerdictKind.HEALTHY, VerdictKind.STALLED, VerdictKind.DIVERGING)
        if verdict.confirmed and (
            incumbent in (VerdictKind.HEALTHY, VerdictKind.STALLED) or kind is VerdictKind.HEALTHY
        ):
            return True  # a measured mechanism, or a clearly falling loss
        # Out of healthy (or unexplained): the newest judgements are all of this kind for a quarter window (at
        # least two of them) ...
        for streak, (s, k) in enumerate(reversed(self.judgements), start=1):
            if k is not kind or not unexplained:
                break
            if streak >= 2 and s <= step - self.window // 4:
                return True
        # ... and out of any regime: it holds half of the judgements, the incumbent at most a quarter — over one
        # window out of an unexplained regime, over one and a half out of an explained one.
        span = self.window if unexplained else self.window + self.window // 2
        votes = [k for s, k in self.judgements if s > step - span]
        if len(votes) < 2:
            return False
        return votes.count(kind) >= 0.5 * len(votes) and votes.count(incumbent) <= 0.25 * len(votes)

    def _open(self, kind: VerdictKind, onset: int, entered: int) -> None:
        self._regimes.append(Regime(kind, onset, entered, entered))
        self._latest = None

    def _current_verdict(self, step: int) -> Verdict:
        regime = self._regimes[-1]
        latest = self._latest
        if latest is None:
            return Verdict(regime.kind, regime.kind.value, step, onset=regime.onset)
        return replace(latest, step=step, onset=regime.onset)
