"""A monitor's judgement at one step: the rules, the measurements they ask for, then the regime.

:func:`decide` runs :func:`~ravine.diagnose._verdict.judge` on the monitor's history; when the raw verdict
wants a measurement it does not have yet — the Hessian's extreme eigenvalues on a small-gradient plateau,
the (preconditioned) sharpness when the loss is flat with a large gradient — it takes it (through the
monitor's isolated probes) and judges again; the raw verdict then goes through the monitor's
:class:`~ravine.diagnose._regimes.RegimeTracker`, whose current regime is what the monitor reports.
"""

from __future__ import annotations

from typing import Any

from ravine.diagnose._probing import sharpen
from ravine.diagnose._records import Verdict
from ravine.diagnose._terms import optimizer_terms
from ravine.diagnose._verdict import judge

__all__ = ["decide", "raw_verdict"]

SHARPNESS_MAX_AGE = 100
"""Steps a sharpness measurement stays valid for the rules."""


def raw_verdict(monitor: Any, step: int) -> Verdict:
    """The rules' verdict now, after the measurements they asked for (no hysteresis)."""
    hist = monitor.history
    terms = optimizer_terms(monitor.optimizer)

    def run() -> Verdict:
        return judge(
            hist.columns,
            hist.steps,
            probes=monitor.probes,
            critical_points=monitor.critical_points,
            sharpness=monitor.sharpness,
            terms=terms,
            thresholds=monitor.config.thresholds,
            layer_grad_norms=hist.layer_grad_norms,
            layer_names=hist.layer_names,
        )

    verdict = run()
    again = False
    if "classify" in verdict.wants and monitor.config.classify:
        again = monitor._classify(step)
    recent = monitor.sharpness and monitor.sharpness[-1].step >= step - SHARPNESS_MAX_AGE
    if "sharpness" in verdict.wants and not recent:
        again = sharpen(monitor, step) or again
    return run() if again else verdict


def decide(monitor: Any, step: int) -> Verdict:
    """The monitor's current regime at ``step`` (see the module docstring)."""
    tracker = monitor.regimes
    return tracker.update(raw_verdict(monitor, step))  # type: ignore[no-any-return]
