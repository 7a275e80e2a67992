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

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ravine._threads import single_threaded
from ravine.diagnose import Monitor, MonitorConfig, Verdict, VerdictKind
from ravine.diagnose._scenario_runs import (
    Run,
    _bursts_surface_adagrad,
    _diverging_cnn_nan,
    _diverging_mlp,
    _healthy_cnn_adam,
    _healthy_deeplinear_adadelta,
    _healthy_digits_adagrad,
    _healthy_linreg_sgd,
    _healthy_mlp_adam,
    _healthy_mlp_momentum,
    _minimum_linreg,
    _minimum_mlp_momentum,
    _noise_random_labels,
    _ravine_surface,
    _saddle_deeplinear,
    _saddle_mlp_momentum,
    _small_cnn_momentum,
    _small_deeplinear_adadelta,
    _small_linreg,
    _small_mlp_adagrad,
)
from ravine.errors import ConfigError

__all__ = ["HEALTHY", "SCENARIOS", "Run", "Scenario", "ScenarioResult", "run_scenario"]


@dataclass(frozen=True)
class Scenario:
    """A labelled run.

    Attributes:
        name: Short name.
        expected: The verdict a correct diagnostician gives.
        model: Model kind, for the tables.
        optimizer: Optimizer, for the tables.
        description: What happens and why.
        steps: Default length.
        onset: Step at which the problem starts (an intervention or the start of the run), or how to find it
            in the run: "spike" (the first loss spike) or "settle" (the first step within 1% of the final loss).
        build: seed → :class:`Run`.
    """

    name: str
    expected: VerdictKind
    model: str
    optimizer: str
    description: str
    steps: int
    onset: int | str
    build: Callable[[int], Run] = field(repr=False)


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
        """Steps from the onset to the first judgement giving the expected verdict (None if never)."""
        return None if self.detected_at is None else self.detected_at - self.onset


_K = VerdictKind
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "ravine-surface-gd",
            _K.RAVINE_OSCILLATION,
            "2-D surface",
            "SGD",
            "The lecture's ravine L = u² + 100v² at η = 1e-2: η·λ_max = 2, bouncing forever.",
            300,
            0,
            _ravine_surface,
        ),
        Scenario(
            "lr-small-linreg-sgd",
            _K.LR_TOO_SMALL,
            "linear regression",
            "SGD",
            "Least squares with η = 1e-5 (1e-5 of the stable rate).",
            400,
            0,
            _small_linreg,
        ),
        Scenario(
            "lr-small-mlp-adagrad",
            _K.LR_TOO_SMALL,
            "MLP",
            "Adagrad",
            "MNIST-1D MLP, Adagrad η = 1e-5, batches of 128.",
            400,
            0,
            _small_mlp_adagrad,
        ),
        Scenario(
            "lr-small-deeplinear-adadelta",
            _K.LR_TOO_SMALL,
            "deep linear",
            "Adadelta (torch)",
            "3-layer deep linear net, torch Adadelta with lr = 1e-3 (default 1.0).",
            400,
            0,
            _small_deeplinear_adadelta,
        ),
        Scenario(
            "lr-small-cnn-momentum",
            _K.LR_TOO_SMALL,
            "CNN",
            "momentum",
            "MNIST-1D 1-D CNN, momentum 0.9, η = 1e-5.",
            400,
            0,
            _small_cnn_momentum,
        ),
        Scenario(
            "saddle-deeplinear-sgd",
            _K.SADDLE_POINT,
            "deep linear",
            "SGD",
            "2-layer deep linear net started at scale 1e-6: the origin is a saddle.",
            250,
            0,
            _saddle_deeplinear,
        ),
        Scenario(
            "saddle-mlp-momentum",
            _K.SADDLE_POINT,
            "MLP",
            "momentum",
            "Tanh MLP with all parameters zero: once the output bias fits, every gradient vanishes.",
            300,
            0,
            _saddle_mlp_momentum,
        ),
        Scenario(
            "minimum-linreg-gd",
            _K.LOCAL_MINIMUM_LIKE,
            "linear regression",
            "SGD",
            "Noisy least squares, full batch: converges to the (global) minimum at the noise level.",
            400,
            "settle",
            _minimum_linreg,
        ),
        Scenario(
            "minimum-mlp-momentum",
            _K.LOCAL_MINIMUM_LIKE,
            "MLP",
            "momentum",
            "A 3-unit tanh MLP that cannot fit its target, full batch: settles in a minimum.",
            1500,
            "settle",
            _minimum_mlp_momentum,
        ),
        Scenario(
            "noise-mlp-random-labels",
            _K.NOISE_DOMINATED,
            "MLP",
            "SGD",
            "MNIST-1D inputs with random labels, batches of 16: there is nothing to learn.",
            500,
            0,
            _noise_random_labels,
        ),
        Scenario(
            "diverging-mlp-sgd",
            _K.DIVERGING,
            "MLP",
            "SGD",
            "MNIST-1D MLP; η raised from 0.05 to 30 at step 150.",
            300,
            150,
            _diverging_mlp,
        ),
        Scenario(
            "diverging-cnn-nan",
            _K.DIVERGING,
            "CNN",
            "Adam",
            "MNIST-1D CNN; a NaN input at step 150 poisons the weights.",
            300,
            150,
            _diverging_cnn_nan,
        ),
        Scenario(
            "bursts-surface-adagrad",
            _K.ADAPTIVE_LR_BURSTS,
            "2-D surface",
            "Adagrad (mean)",
            "The lecture's Adagrad (σ = RMS of all past g) η = 0.2 on the ravine: after σ_v became tiny it "
            "explodes sideways and recovers.",
            5000,
            "spike",
            _bursts_surface_adagrad,
        ),
    )
}
"""The stuck scenarios by name."""

HEALTHY: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "healthy-mlp-adam",
            _K.HEALTHY,
            "MLP",
            "Adam",
            "MNIST-1D MLP, Adam 1e-3.",
            1500,
            0,
            _healthy_mlp_adam,
        ),
        Scenario(
            "healthy-mlp-momentum",
            _K.HEALTHY,
            "MLP",
            "momentum",
            "MNIST-1D MLP, momentum 0.9, η 0.02.",
            1500,
            0,
            _healthy_mlp_momentum,
        ),
        Scenario(
            "healthy-cnn-adam",
            _K.HEALTHY,
            "CNN",
            "Adam",
            "MNIST-1D CNN, Adam 2e-3.",
            1500,
            0,
            _healthy_cnn_adam,
        ),
        Scenario(
            "healthy-digits-adagrad",
            _K.HEALTHY,
            "MLP",
            "Adagrad",
            "digits MLP, Adagrad 0.02.",
            1500,
            0,
            _healthy_digits_adagrad,
        ),
        Scenario(
            "healthy-deeplinear-adadelta",
            _K.HEALTHY,
            "deep linear",
            "Adadelta (torch)",
            "deep linear regression, torch Adadelta 0.5.",
            1500,
            0,
            _healthy_deeplinear_adadelta,
        ),
        Scenario(
            "healthy-linreg-sgd",
            _K.HEALTHY,
            "linear regression",
            "SGD",
            "least squares, SGD 0.01.",
            1500,
            0,
            _healthy_linreg_sgd,
        ),
    )
}
"""Healthy runs for the false-alarm count."""


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
        (step for step, kind in monitor.timeline if kind is scenario.expected and step >= onset), None
    )
    return ScenarioResult(scenario, seed, verdict, monitor, onset, detected, time.perf_counter() - start)
