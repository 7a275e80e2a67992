"""A monitor's judgement at one step: the rules, the measurements they ask for, then the regime.

:func:`decide` runs :func:`~ravine.diagnose._verdict.judge` on the monitor's history; when the raw verdict
wants a measurement it does not have yet — a probe when the window holds none and the loss is not clearly
falling (the probes back off while a run is healthy), the Hessian's extreme eigenvalues on a small-gradient
plateau, the (preconditioned) sharpness when the loss is flat with a large gradient — it takes it (through the
monitor's isolated probes) and judges again; the raw verdict then goes through the monitor's
:class:`~ravine.diagnose._regimes.RegimeTracker`, whose current regime is what the monitor reports.
"""

from __future__ import annotations

from typing import Any

from ravine.diagnose._probing import sharpen
from ravine.diagnose._records import Verdict, VerdictKind
from ravine.diagnose._terms import optimizer_terms
from ravine.diagnose._verdict import judge

__all__ = ["decide", "raw_verdict", "wants_probe"]

SHARPNESS_MAX_AGE = 100
"""Steps a sharpness measurement stays valid for the rules."""


def wants_probe(verdict: Verdict, probes: Any, window: int) -> bool:
    """Whether the rules would read a probe that the window lacks: none in the last ``window`` steps, and a
    verdict other than a clearly falling loss or a divergence (which read the loss and the gradient alone)."""
    if verdict.provisional or verdict.kind is VerdictKind.DIVERGING:
        return False
    if verdict.kind is VerdictKind.HEALTHY and verdict.confirmed:
        return False
    return not probes or probes[-1].step <= verdict.step - window


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
    if wants_probe(verdict, monitor.probes, monitor.config.thresholds.window) and monitor._probe_asked(step):
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
