"""The labelled suite: stuck runs get the right verdict within 200 steps; healthy runs raise ≤ 1% false alarms."""

from __future__ import annotations

import pytest

from ravine.diagnose import MonitorConfig, VerdictKind
from ravine.diagnose.scenarios import HEALTHY, SCENARIOS, run_scenario

UNTIMED = MonitorConfig(probe_budget=0.0)
"""The default cadence without its time budget, so that the probe steps do not depend on the machine's load
(benchmarks/verdicts.py measures the default, 2% budget included)."""

HEALTHY_SEEDS = (0, 1, 2, 3)
HEALTHY_STEPS = 420  # (6 x 4 + 1 + 2 seeds) x 420 = 11,340 healthy steps (longer: benchmarks/verdicts.py)
# The recurrent and small-batch AdamW runs cost 3-4x more per step; the benchmark runs them 4 seeds x 1500 steps.
SEEDS = {"healthy-lstm-adam": (0,), "healthy-mlp-adamw-b8": (0, 1)}


def test_suite_covers_every_category_and_model() -> None:
    kinds = {s.expected for s in SCENARIOS.values()}
    # Stalled is the honest fallback when no rule explains a flat loss (tested in test_rules), not a label.
    assert kinds == set(VerdictKind) - {VerdictKind.HEALTHY, VerdictKind.CRITICAL_POINT, VerdictKind.STALLED}
    assert len(SCENARIOS) >= 19
    models = {s.model for s in SCENARIOS.values()}
    assert {"linear regression", "MLP", "CNN", "deep linear", "deep MLP"} <= models
    optimizers = {s.optimizer for s in SCENARIOS.values()}
    assert {"SGD", "momentum", "Adam", "Adagrad", "Adadelta (torch)", "SGD + weight decay"} <= optimizers
    assert {"LSTM", "MLP", "CNN"} <= {s.model for s in HEALTHY.values()}
    assert {"Adam", "AdamW", "momentum"} <= {s.optimizer for s in HEALTHY.values()}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_stuck_run_verdict_and_latency(name: str) -> None:
    result = run_scenario(SCENARIOS[name], config=UNTIMED)
    assert result.monitor.errors == []
    assert result.correct, f"{name}: got {result.verdict.kind.value}: {result.verdict.summary}"
    assert result.latency is not None and result.latency <= 200, f"{name}: latency {result.latency}"
    assert result.verdict.evidence and result.verdict.remedies


@pytest.mark.parametrize("name", list(HEALTHY))
def test_healthy_false_alarms(name: str) -> None:
    judged = alarms = 0
    for seed in SEEDS.get(name, HEALTHY_SEEDS):
        result = run_scenario(HEALTHY[name], seed=seed, steps=HEALTHY_STEPS, config=UNTIMED)
        kinds = [kind for _, kind in result.monitor.regimes.reported]
        judged += len(kinds)
        alarms += sum(kind is not VerdictKind.HEALTHY for kind in kinds)
    # ≤ 1% of the verdicts reported on healthy training (one every 25 steps), after hysteresis.
    assert alarms <= 0.01 * judged + 1e-9 or alarms <= 1, f"{name}: {alarms}/{judged} false alarms"
