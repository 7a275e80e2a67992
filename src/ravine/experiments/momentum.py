"""Momentum: gradient descent versus heavy-ball momentum, on the lab's local-minimum surface and on a real net.

The lecture: picture the parameters as a ball rolling down the error surface. Plain gradient descent stops
where the gradient is zero — at a local minimum or a saddle — while momentum m_t = λm_{t−1} − η g_t (the
weighted sum of all past gradients) carries the ball through a small dip and speeds it along gentle slopes.
Here: (1) the ``momentum`` surface of :mod:`ravine.surfaces` (a valley with a shallow local dip before the
global minimum), GD and momentum at the same η; (2) a digits MLP trained full-batch, GD and momentum at the
same η, counting the updates to reach a training-loss threshold; GD at the long-run momentum step
η/(1 − μ) is added so that "momentum is only a larger learning rate" can be checked.

Example:
    >>> from ravine.experiments import momentum
    >>> result = momentum.run(momentum.MomentumConfig.quick())  # doctest: +SKIP
    >>> result.surface_escaped  # doctest: +SKIP
    {'GD': False, 'momentum': True}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ravine._validate import check_all_positive
from ravine.claims import Claim
from ravine.data import digits
from ravine.experiments._base import format_rows
from ravine.experiments._training import evaluate, mlp, single_threaded, train
from ravine.progress import Progress, part, silent

__all__ = ["MomentumConfig", "MomentumResult", "run"]

CLAIM = (
    "Momentum rolls through the local dip where gradient descent stops, and on a real net it reaches a "
    "given training loss in fewer updates than gradient descent at the same learning rate."
)


@dataclass(frozen=True)
class MomentumConfig:
    """Settings of the momentum experiment.

    Attributes:
        surface_lr: η on the surface for both optimizers.
        surface_steps: Updates on the surface.
        mu: Momentum coefficient μ (heavy ball, m = μm + g).
        hidden: Width of the digits MLP's two hidden layers.
        net_lr: η on the net (full-batch) for GD and momentum.
        net_steps: Full-batch updates on the net.
        threshold: Training loss whose first crossing is counted.
        seed: Seed of the data split and the initialisation.
    """

    surface_lr: float = 0.03
    surface_steps: int = 2000
    mu: float = 0.9
    hidden: int = 32
    net_lr: float = 0.1
    net_steps: int = 400
    threshold: float = 0.2
    seed: int = 0

    @classmethod
    def quick(cls) -> MomentumConfig:
        """Seconds: 2,000 surface steps, 400 full-batch updates on digits."""
        return cls()

    @classmethod
    def full(cls) -> MomentumConfig:
        """About a minute: 5,000 surface steps, 3,000 updates, a lower threshold."""
        return cls(surface_steps=5000, hidden=64, net_steps=3000, threshold=0.02)


@dataclass
class MomentumResult:
    """Surface trajectories and net loss curves for GD and momentum."""

    config: MomentumConfig
    surface_labels: list[str]
    surface_path: dict[str, list[tuple[float, float]]]
    surface_loss: dict[str, list[float]]
    surface_final: dict[str, tuple[float, float]]
    surface_escaped: dict[str, bool]
    surface_grid: tuple[list[float], list[float], list[list[float]]]
    net_loss: dict[str, list[float]]
    net_steps_to_threshold: dict[str, int | None]
    net_test_accuracy: dict[str, float]
    claim: str = CLAIM
    holds: bool = False
    claims: list[Claim] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> list[list[object]]:
        """One row per optimizer and setting."""
        rows: list[list[object]] = [
            ["setting", "optimizer", "final point / loss", "escaped / updates to threshold"]
        ]
        for label in self.surface_labels:
            x, y = self.surface_final[label]
            rows.append(["surface", label, f"({x:.3f}, {y:.3f})", self.surface_escaped[label]])
        for label, losses in self.net_loss.items():
            reached = self.net_steps_to_threshold[label]
            rows.append(["digits MLP", label, losses[-1], "never" if reached is None else reached])
        return format_rows(rows)


def _first_below(values: list[float], threshold: float) -> int | None:
    for index, value in enumerate(values):
        if value <= threshold:
            return index + 1
    return None


@single_threaded
def run(config: MomentumConfig | None = None, *, progress: Progress | None = None) -> MomentumResult:
    """Run GD and momentum on the surface and on the net.

    Raises:
        ConfigError: If a setting is out of range.
    """
    from ravine.optim import Identity, Momentum, sgd
    from ravine.surfaces import LabConfig, get_surface, run_lab

    config = config or MomentumConfig.quick()
    report = progress or silent
    check_all_positive(
        "momentum",
        surface_lr=config.surface_lr,
        surface_steps=config.surface_steps,
        net_lr=config.net_lr,
        net_steps=config.net_steps,
        threshold=config.threshold,
        mu=config.mu,
    )
    surface = get_surface("momentum")
    labels = ["GD", "momentum"]
    lab = run_lab(
        surface,
        [
            LabConfig("GD", Identity(), config.surface_lr),
            LabConfig("momentum", Momentum(config.mu), config.surface_lr),
        ],
        steps=config.surface_steps,
        record_every=max(1, config.surface_steps // 400),
    )
    report(0.1, 1.0, "surface")
    global_min = surface.global_minima[0].point
    path = {label: [(float(p[0]), float(p[1])) for p in lab.theta[:, i]] for i, label in enumerate(labels)}
    final = {
        label: (float(lab.final_theta[i, 0]), float(lab.final_theta[i, 1])) for i, label in enumerate(labels)
    }
    escaped = {label: math.dist(final[label], global_min) < 0.1 for label in labels}
    (x_low, x_high), (y_low, y_high) = surface.bounds
    xs, ys = (
        torch.linspace(x_low, x_high, 161, dtype=torch.float64),
        torch.linspace(y_low, y_high, 61, dtype=torch.float64),
    )
    grid = surface.loss(torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1))

    data = digits(seed=config.seed)
    runs = {
        "GD": (config.net_lr, 0.0),
        "momentum": (config.net_lr, config.mu),
        f"GD at η/(1−μ) = {config.net_lr / (1 - config.mu):g}": (config.net_lr / (1 - config.mu), 0.0),
    }
    net_loss: dict[str, list[float]] = {}
    reached: dict[str, int | None] = {}
    accuracy: dict[str, float] = {}
    for k, (label, (lr, mu)) in enumerate(runs.items()):
        model = mlp([data.num_features, config.hidden, config.hidden, data.num_classes], seed=config.seed)
        optimizer = sgd(model.parameters(), lr=lr, momentum=mu, nonfinite="skip")
        log = train(
            model,
            optimizer,
            data.x_train,
            data.y_train,
            steps=config.net_steps,
            batch_size=len(data.y_train),
            progress=part(report, start=0.1 + 0.9 * k / len(runs), width=0.9 / len(runs), stage="digits MLP"),
        )
        net_loss[label] = log.losses
        reached[label] = _first_below(log.losses, config.threshold)
        accuracy[label] = evaluate(model, data.x_test, data.y_test)[1]

    gd, mom = reached["GD"], reached["momentum"]
    faster = mom is not None and (gd is None or mom < gd)
    escapes = escaped["momentum"] and not escaped["GD"]
    holds = escapes and faster
    big = next(iter(label for label in runs if label.startswith("GD at")))
    claims = [
        Claim(
            "Momentum rolls through the local dip where gradient descent stops.",
            escapes,
            f"GD ended at ({final['GD'][0]:.3f}, {final['GD'][1]:.3f}), momentum at "
            f"({final['momentum'][0]:.3f}, {final['momentum'][1]:.3f}); global minimum {tuple(global_min)}",
        ),
        Claim(
            "On a real net momentum reaches a given training loss in fewer updates than GD at the same rate.",
            faster,
            f"updates to training loss {config.threshold:g}: GD {gd or 'never'}, momentum {mom or 'never'}, "
            f"GD at η/(1−μ) {reached[big] or 'never'} (of {config.net_steps})",
        ),
    ]
    notes = [
        f"Surface: {surface.title}, start {surface.start}; η = {config.surface_lr} for both, μ = "
        f"{config.mu}; "
        "'escaped' = ended within 0.1 of the global minimum (4, 0).",
        f"Net: digits MLP {data.num_features}-{config.hidden}-{config.hidden}-10, full-batch updates (no "
        f"mini-batch noise), η = {config.net_lr}; threshold = training loss {config.threshold}.",
        f"Momentum's long-run step is η/(1−μ); GD at that rate reached the threshold at update "
        f"{reached[big] if reached[big] is not None else 'never'} — compare before crediting momentum alone.",
    ]
    if not holds:
        notes.append(
            f"The claim does not hold on this run: escaped {escaped}, updates to threshold GD={gd}, "
            f"momentum={mom}."
        )
    return MomentumResult(
        config=config,
        surface_labels=labels,
        surface_path=path,
        surface_loss={label: lab.loss[:, i].tolist() for i, label in enumerate(labels)},
        surface_final=final,
        surface_escaped=escaped,
        surface_grid=(xs.tolist(), ys.tolist(), grid.tolist()),
        net_loss=net_loss,
        net_steps_to_threshold=reached,
        net_test_accuracy=accuracy,
        holds=holds,
        claims=claims,
        notes=notes,
    )
