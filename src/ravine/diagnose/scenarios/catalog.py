"""The labelled runs: each one stuck in a known way (or healthy), with its expected verdict and onset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ravine.diagnose import VerdictKind
from ravine.diagnose.scenarios.builders import (
    Run,
    bursts_surface_adagrad,
    diverging_cnn_nan,
    diverging_mlp,
    healthy_cnn_adam,
    healthy_deeplinear_adadelta,
    healthy_digits_adagrad,
    healthy_linreg_sgd,
    healthy_mlp_adam,
    healthy_mlp_momentum,
    minimum_linreg,
    minimum_mlp_momentum,
    noise_random_labels,
    ravine_surface,
    saddle_deeplinear,
    saddle_mlp_momentum,
    small_cnn_momentum,
    small_deeplinear_adadelta,
    small_linreg,
    small_mlp_adagrad,
)
from ravine.diagnose.scenarios.realnets import (
    dead_relu_adam,
    dead_relu_digits,
    diverged_stuck_adam,
    healthy_lstm_adam,
    healthy_mlp_adamw_small_batch,
    regularised_minimum_sgd,
    saddle_from_init_digits,
    vanishing_deep_sigmoid,
)

__all__ = ["HEALTHY", "SCENARIOS", "Scenario"]


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
            ravine_surface,
        ),
        Scenario(
            "lr-small-linreg-sgd",
            _K.LR_TOO_SMALL,
            "linear regression",
            "SGD",
            "Least squares with η = 1e-5 (1e-5 of the stable rate).",
            400,
            0,
            small_linreg,
        ),
        Scenario(
            "lr-small-mlp-adagrad",
            _K.LR_TOO_SMALL,
            "MLP",
            "Adagrad",
            "MNIST-1D MLP, Adagrad η = 1e-5, batches of 128.",
            400,
            0,
            small_mlp_adagrad,
        ),
        Scenario(
            "lr-small-deeplinear-adadelta",
            _K.LR_TOO_SMALL,
            "deep linear",
            "Adadelta (torch)",
            "3-layer deep linear net, torch Adadelta with lr = 1e-3 (default 1.0).",
            400,
            0,
            small_deeplinear_adadelta,
        ),
        Scenario(
            "lr-small-cnn-momentum",
            _K.LR_TOO_SMALL,
            "CNN",
            "momentum",
            "MNIST-1D 1-D CNN, momentum 0.9, η = 1e-5.",
            400,
            0,
            small_cnn_momentum,
        ),
        Scenario(
            "saddle-deeplinear-sgd",
            _K.SADDLE_POINT,
            "deep linear",
            "SGD",
            "2-layer deep linear net started at scale 1e-6: the origin is a saddle.",
            250,
            0,
            saddle_deeplinear,
        ),
        Scenario(
            "saddle-mlp-momentum",
            _K.SADDLE_POINT,
            "MLP",
            "momentum",
            "Tanh MLP with all parameters zero: once the output bias fits, every gradient vanishes.",
            300,
            0,
            saddle_mlp_momentum,
        ),
        Scenario(
            "minimum-linreg-gd",
            _K.LOCAL_MINIMUM_LIKE,
            "linear regression",
            "SGD",
            "Noisy least squares, full batch: converges to the (global) minimum at the noise level.",
            400,
            "settle",
            minimum_linreg,
        ),
        Scenario(
            "minimum-mlp-momentum",
            _K.LOCAL_MINIMUM_LIKE,
            "MLP",
            "momentum",
            "A 3-unit tanh MLP that cannot fit its target, full batch: settles in a minimum.",
            1500,
            "settle",
            minimum_mlp_momentum,
        ),
        Scenario(
            "noise-mlp-random-labels",
            _K.NOISE_DOMINATED,
            "MLP",
            "SGD",
            "MNIST-1D inputs with random labels, batches of 16: there is nothing to learn.",
            500,
            0,
            noise_random_labels,
        ),
        Scenario(
            "diverging-mlp-sgd",
            _K.DIVERGING,
            "MLP",
            "SGD",
            "MNIST-1D MLP; η raised from 0.05 to 30 at step 150.",
            300,
            150,
            diverging_mlp,
        ),
        Scenario(
            "diverging-cnn-nan",
            _K.DIVERGING,
            "CNN",
            "Adam",
            "MNIST-1D CNN; a NaN input at step 150 poisons the weights.",
            300,
            150,
            diverging_cnn_nan,
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
            bursts_surface_adagrad,
        ),
        Scenario(
            "saddle-from-init-digits-tanh",
            _K.SADDLE_POINT,
            "MLP",
            "SGD",
            "digits tanh MLP with every parameter ×1e-4 at initialisation: at the origin's saddle from step 0 "
            "(its gradient never exceeds its starting value).",
            200,
            0,
            saddle_from_init_digits,
        ),
        Scenario(
            "diverged-stuck-digits-adam",
            _K.DIVERGED_STUCK,
            "MLP",
            "Adam",
            "digits tanh MLP, Adam at lr 3: the loss jumps to ~100× its start in a few steps and stays up.",
            200,
            0,
            diverged_stuck_adam,
        ),
        Scenario(
            "regularised-minimum-linreg-wd",
            _K.LOCAL_MINIMUM_LIKE,
            "linear regression",
            "SGD + weight decay",
            "least squares with SGD weight_decay 0.5: converged at the regularised (strongly convex) minimum, "
            "where p.grad = −λθ is not small.",
            300,
            "settle",
            regularised_minimum_sgd,
        ),
        Scenario(
            "dead-relu-digits-momentum",
            _K.DEAD_UNITS,
            "MLP",
            "momentum",
            "digits ReLU MLP; a bad update at step 100 pushes every hidden pre-activation below zero: all units "
            "dead, the output is the bias, the loss sits at the label entropy.",
            300,
            100,
            dead_relu_digits,
        ),
        Scenario(
            "dead-relu-digits-adam",
            _K.DEAD_UNITS,
            "MLP",
            "Adam",
            "digits ReLU MLP, Adam at lr 1: the first steps kill ~all ReLUs; the loss stays near ln 10.",
            300,
            0,
            dead_relu_adam,
        ),
        Scenario(
            "vanishing-deep-sigmoid-digits",
            _K.GRADIENT_DEPTH,
            "deep MLP",
            "SGD",
            "a 12-layer sigmoid MLP on digits: the relative gradient shrinks layer by layer toward the input.",
            200,
            0,
            vanishing_deep_sigmoid,
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
            healthy_mlp_adam,
        ),
        Scenario(
            "healthy-mlp-momentum",
            _K.HEALTHY,
            "MLP",
            "momentum",
            "MNIST-1D MLP, momentum 0.9, η 0.02.",
            1500,
            0,
            healthy_mlp_momentum,
        ),
        Scenario(
            "healthy-cnn-adam",
            _K.HEALTHY,
            "CNN",
            "Adam",
            "MNIST-1D CNN, Adam 2e-3.",
            1500,
            0,
            healthy_cnn_adam,
        ),
        Scenario(
            "healthy-digits-adagrad",
            _K.HEALTHY,
            "MLP",
            "Adagrad",
            "digits MLP, Adagrad 0.02.",
            1500,
            0,
            healthy_digits_adagrad,
        ),
        Scenario(
            "healthy-deeplinear-adadelta",
            _K.HEALTHY,
            "deep linear",
            "Adadelta (torch)",
            "deep linear regression, torch Adadelta 0.5.",
            1500,
            0,
            healthy_deeplinear_adadelta,
        ),
        Scenario(
            "healthy-linreg-sgd",
            _K.HEALTHY,
            "linear regression",
            "SGD",
            "least squares, SGD 0.01.",
            1500,
            0,
            healthy_linreg_sgd,
        ),
        Scenario(
            "healthy-lstm-adam",
            _K.HEALTHY,
            "LSTM",
            "Adam",
            "LSTM reading digits row by row (8 steps of 8 pixels), Adam 4e-3, batches of 16.",
            1500,
            0,
            healthy_lstm_adam,
        ),
        Scenario(
            "healthy-mlp-adamw-b8",
            _K.HEALTHY,
            "MLP",
            "AdamW",
            "digits MLP, AdamW 1e-3 with weight decay 0.05, batches of 8.",
            1500,
            0,
            healthy_mlp_adamw_small_batch,
        ),
    )
}
"""Healthy runs for the false-alarm count."""
