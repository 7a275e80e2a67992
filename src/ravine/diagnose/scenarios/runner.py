"""Run a labelled scenario under a :class:`~ravine.diagnose.Monitor`: verdict, timeline, detection step."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ravine._threads import single_threaded
from ravine.diagnose import Monitor, MonitorConfig, Verdict
from ravine.diagnose.scenarios.catalog import Scenario
from ravine.errors import ConfigError

__all__ = ["ScenarioResult", "run_scenario"]


@dataclass
class ScenarioResult:
    """Outcome of one scenario run."""

    scenario: Scenario
    seed: int
    verdict: Verdict
    monitor: Monitor
    onset: int
    detected_at: int | None
    seconds: float

    @property
    def correct(self) -> bool:
        """The final verdict is the expected one."""
        return self.verdict.kind is self.scenario.expected

    @property
    def latency(self) -> int | None:
        """Steps from the onset to the monitor entering the expected regime (None if never)."""
        return None if self.detected_at is None else self.detected_at - self.onset


def _first_spike(losses: list[float], factor: float) -> int | None:
    for index in range(20, len(losses)):
        before = sorted(v for v in losses[index - 20 : index] if math.isfinite(v))
        if before and losses[index] > factor * max(abs(before[len(before) // 2]), 1e-30):
            return index
    return None


@single_threaded
def run_scenario(
    scenario: Scenario,
    *,
    seed: int = 0,
    steps: int | None = None,
    config: MonitorConfig | None = None,
    monitor_enabled: bool = True,
) -> ScenarioResult:
    """Train a scenario under a :class:`Monitor` and return the verdict, the timeline and the detection step."""
    n = scenario.steps if steps is None else steps
    if n < 1:
        raise ConfigError(f"run_scenario: steps must be >= 1, got {steps=}")
    start = time.perf_counter()
    run = scenario.build(seed)
    monitor = Monitor(run.model, run.optimizer, loss_fn=run.loss_fn, config=config, seed=seed)
    for step in range(n):
        run.before_step(step)
        x, y = run.batch(step)
        run.optimizer.zero_grad()
        loss = run.loss_fn(run.model(x), y)
        loss.backward()
        if monitor_enabled:
            monitor.step(loss, batch=(x, y))
        run.optimizer.step()
        if run.scheduler is not None:
            run.scheduler.step()
    verdict = monitor.verdict()
    monitor.close()
    losses = monitor.history.columns["loss"]
    if scenario.onset == "spike":
        spike = _first_spike(losses, monitor.config.thresholds.spike_factor)
        onset = monitor.history.steps[spike] if spike is not None else 0
    elif scenario.onset == "settle":
        final = losses[-1]
        onset = next(
            (
                s
                for s, v in zip(monitor.history.steps, losses, strict=True)
                if abs(v - final) <= 0.01 * abs(final)
            ),
            0,
        )
    else:
        onset = int(scenario.onset)
    detected = next(
        (
            max(regime.entered, onset)
            for regime in monitor.timeline
            if regime.kind is scenario.expected and regime.last_step >= onset
        ),
        None,
    )
    return ScenarioResult(scenario, seed, verdict, monitor, onset, detected, time.perf_counter() - start)
