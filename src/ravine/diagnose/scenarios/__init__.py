"""Built-in labelled training runs: each one is stuck in a known way (or healthy), with a known onset.

They are the diagnostician's test suite and the CLI's demonstrations (``ravine diagnose scenario NAME|all``):
small models (linear regression, MLPs, a small 1-D CNN, a deep linear net, the lecture's 2-D surfaces) on
small data (synthetic, MNIST-1D), with SGD, momentum, Adam, Adagrad and torch's Adadelta (which ravine does
not wrap). Each run is deterministic given its seed.

Example:
    >>> from ravine.diagnose.scenarios import SCENARIOS, run_scenario
    >>> result = run_scenario(SCENARIOS["ravine-surface-gd"], steps=300)
    >>> result.verdict.kind.value
    'ravine oscillation'
"""

from __future__ import annotations

from ravine.diagnose.scenarios.builders import Run
from ravine.diagnose.scenarios.catalog import HEALTHY, SCENARIOS, Scenario
from ravine.diagnose.scenarios.runner import ScenarioResult, run_scenario

__all__ = ["HEALTHY", "SCENARIOS", "Run", "Scenario", "ScenarioResult", "run_scenario"]
