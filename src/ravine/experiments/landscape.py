"""Loss-landscape slices of a trained net: the straight line from initialisation to the solution, a 2-D
filter-normalised random slice (Li et al., 2018) and the plane of the training trajectory (its first two
principal components) with the trajectory drawn in it.

The lecture pictures the error surface as a landscape the parameters roll down; for a real net it can only
be seen through low-dimensional slices. Goodfellow et al. (2015) found that the loss falls without a barrier
along the straight line from the initial to the final parameters; Li et al. (2018) showed that filter
normalisation makes 2-D slices of different nets comparable, and that a random plane misses the trajectory
(it is nearly orthogonal to random directions in high dimension), so the trajectory is drawn in its own PCA
plane.

Example:
    >>> from ravine.experiments import landscape
    >>> result = landscape.run(landscape.LandscapeConfig.quick())  # doctest: +SKIP
    >>> result.holds  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ravine._validate import check_all_positive
from ravine.claims import Claim
from ravine.data import digits, mnist1d
from ravine.errors import ConfigError
from ravine.experiments._base import format_rows
from ravine.experiments._training import (
    evaluate,
    flat_params,
    loss_at,
    mlp,
    set_flat_params,
    single_threaded,
    train,
)
from ravine.progress import Progress, part, silent

__all__ = ["LandscapeConfig", "LandscapeResult", "filter_normalized_direction", "run"]

CLAIM = (
    "Along the straight line from initialisation to the trained solution the training loss falls without a "
    "barrier, and the solution sits at the bottom of a basin of the filter-normalised 2-D slice."
)


@dataclass(frozen=True)
class LandscapeConfig:
    """Settings of the landscape experiment.

    Attributes:
        dataset: ``digits`` (64 features) or ``mnist1d`` (40 features).
        hidden: Width of the two hidden layers of the MLP.
        steps: SGD-with-momentum updates.
        lr: Learning rate.
        momentum: Momentum coefficient.
        batch_size: Mini-batch size.
        snapshot_every: Steps between the recorded points of the trajectory.
        grid: Points per axis of each 2-D slice.
        span: Half-width of the filter-normalised slice, in units of the normalised directions.
        line_points: Points of the 1-D interpolation, α ∈ [-0.5, 1.5].
        seed: Seed of the data split, the initialisation, the batches and the random directions.
    """

    dataset: str = "digits"
    hidden: int = 32
    steps: int = 400
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 64
    snapshot_every: int = 10
    grid: int = 21
    span: float = 1.0
    line_points: int = 41
    seed: int = 0

    @classmethod
    def quick(cls) -> LandscapeConfig:
        """Seconds: a 64-32-32-10 MLP on digits, 400 steps, 21×21 slices."""
        return cls()

    @classmethod
    def full(cls) -> LandscapeConfig:
        """About a minute: wider net, 3,000 steps, 51×51 slices."""
        return cls(hidden=64, steps=3000, snapshot_every=25, grid=51, line_points=81)


@dataclass
class LandscapeResult:
    """Numbers of the landscape experiment (losses are full-batch training cross-entropy)."""

    config: LandscapeConfig
    num_params: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    alphas: list[float]
    line_train_loss: list[float]
    line_test_loss: list[float]
    barrier: float
    filter_axis: list[float]
    filter_loss: list[list[float]]
    filter_rank: float
    pca_x: list[float]
    pca_y: list[float]
    pca_loss: list[list[float]]
    pca_explained: tuple[float, float]
    trajectory: list[tuple[float, float]]
    trajectory_loss: list[float]
    claim: str = CLAIM
    holds: bool = False
    claims: list[Claim] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> list[list[object]]:
        """Key numbers, one per row."""
        rows: list[list[object]] = [
            ["quantity", "value"],
            ["parameters", self.num_params],
            ["train loss / accuracy", f"{self.train_loss:.4f} / {self.train_accuracy:.3f}"],
            ["test loss / accuracy", f"{self.test_loss:.4f} / {self.test_accuracy:.3f}"],
            ["loss at init (α=0)", self.line_train_loss[self.alphas.index(0.0)]],
            ["largest rise along α∈[0,1] (barrier)", self.barrier],
            ["share of filter-slice points below the solution", self.filter_rank],
            [
                "PCA variance explained (PC1, PC2)",
                f"{self.pca_explained[0]:.3f}, {self.pca_explained[1]:.3f}",
            ],
            ["claim holds", self.holds],
        ]
        return format_rows(rows)


def filter_normalized_direction(model: torch.nn.Module, generator: torch.Generator) -> torch.Tensor:
    """A random direction scaled filter by filter to the norms of ``model``'s weights (Li et al., 2018).

    Each row of a weight matrix (one output neuron, a "filter") of the Gaussian direction is rescaled to the
    norm of the same row of the weights; directions for biases (1-D parameters) are zero.
    """
    parts = []
    for p in model.parameters():
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype)
        if p.dim() <= 1:
            d.zero_()
        else:
            rows_d = d.reshape(d.shape[0], -1)
            rows_p = p.detach().reshape(p.shape[0], -1)
            rows_d.mul_(rows_p.norm(dim=1, keepdim=True) / rows_d.norm(dim=1, keepdim=True).clamp_min(1e-12))
            d = rows_d.reshape(p.shape)
        parts.append(d.reshape(-1))
    return torch.cat(parts)


def _load(name: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    if name == "digits":
        data = digits(seed=seed)
    elif name == "mnist1d":
        data = mnist1d(num_samples=4000, seed=seed)
    else:
        raise ConfigError(f"landscape: unknown dataset {name!r}; choose 'digits' or 'mnist1d'")
    return data.x_train, data.y_train, data.x_test, data.y_test, data.num_features


@single_threaded
def run(config: LandscapeConfig | None = None, *, progress: Progress | None = None) -> LandscapeResult:
    """Train the net, then evaluate the training loss on the line and on the two planes.

    Raises:
        ConfigError: If a setting is out of range.
    """
    config = config or LandscapeConfig.quick()
    report = progress or silent
    check_all_positive("landscape", steps=config.steps, lr=config.lr, span=config.span)
    if config.grid < 3 or config.line_points < 5 or config.snapshot_every < 1:
        raise ConfigError(f"landscape: need grid >= 3, line_points >= 5, snapshot_every >= 1; got {config}")
    x, y, x_test, y_test, features = _load(config.dataset, config.seed)
    model = mlp([features, config.hidden, config.hidden, 10], seed=config.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    log = train(
        model,
        optimizer,
        x,
        y,
        steps=config.steps,
        batch_size=config.batch_size,
        seed=config.seed,
        snapshot_every=config.snapshot_every,
        progress=part(report, start=0.0, width=0.5, stage="training"),
    )
    solution = flat_params(model)
    start = log.snapshots[0]
    train_loss, train_acc = evaluate(model, x, y)
    test_loss, test_acc = evaluate(model, x_test, y_test)

    # 1-D: θ(α) = (1 − α)·θ0 + α·θ*.
    alphas = [round(a, 6) for a in torch.linspace(-0.5, 1.5, config.line_points).tolist()]
    if 0.0 not in alphas:
        alphas = sorted({*alphas, 0.0, 1.0})
    line_train = [loss_at(model, start + a * (solution - start), x, y) for a in alphas]
    line_test = [loss_at(model, start + a * (solution - start), x_test, y_test) for a in alphas]
    inside = [value for a, value in zip(alphas, line_train, strict=True) if 0.0 <= a <= 1.0]
    running_min, barrier = inside[0], 0.0
    for value in inside:
        barrier = max(barrier, value - running_min)
        running_min = min(running_min, value)
    report(0.55, 1.0, "line")

    # 2-D filter-normalised random slice centred on the solution.
    generator = torch.Generator().manual_seed(config.seed + 1)
    set_flat_params(model, solution)
    d1 = filter_normalized_direction(model, generator)
    d2 = filter_normalized_direction(model, generator)
    axis = torch.linspace(-config.span, config.span, config.grid)
    filter_loss = []
    for i, b in enumerate(axis.tolist()):
        filter_loss.append([loss_at(model, solution + a * d1 + b * d2, x, y) for a in axis.tolist()])
        report(0.55 + 0.2 * (i + 1) / config.grid, 1.0, "filter-normalised slice")
    centre = loss_at(model, solution, x, y)
    values = torch.tensor(filter_loss)
    filter_rank = float((values < centre - 1e-9).float().mean())

    # PCA plane of the trajectory, centred on the solution.
    offsets = torch.stack(log.snapshots) - solution
    _, singular, vh = torch.linalg.svd(offsets, full_matrices=False)
    energy = singular**2 / (singular**2).sum()
    u1, u2 = vh[0], vh[1]
    coords = offsets @ torch.stack([u1, u2]).T
    low, high = coords.min(0).values, coords.max(0).values
    margin = 0.25 * (high - low).clamp_min(1e-6)
    xs = torch.linspace(float(low[0] - margin[0]), float(high[0] + margin[0]), config.grid)
    ys = torch.linspace(float(low[1] - margin[1]), float(high[1] + margin[1]), config.grid)
    pca_loss = []
    for j, b in enumerate(ys.tolist()):
        pca_loss.append([loss_at(model, solution + a * u1 + b * u2, x, y) for a in xs.tolist()])
        report(0.75 + 0.25 * (j + 1) / config.grid, 1.0, "trajectory plane")
    trajectory_loss = [loss_at(model, snapshot, x, y) for snapshot in log.snapshots]
    set_flat_params(model, solution)

    at_init, at_solution = line_train[alphas.index(0.0)], line_train[alphas.index(1.0)]
    drop = at_init - at_solution
    below = int((values < centre - 1e-9).sum())
    claims = [
        Claim(
            "Along the straight line from initialisation to solution the training loss falls without a barrier.",
            drop > 0 and barrier <= 0.02 * drop,
            f"loss {at_init:.4g} at initialisation → {at_solution:.4g} at the solution; largest rise along the "
            f"way {barrier:.3g} (allowed: 2% of the drop, {0.02 * max(drop, 0.0):.3g})",
        ),
        Claim(
            "The solution sits at the bottom of a basin of the filter-normalised random 2-D slice.",
            filter_rank <= 0.05,
            f"{below} of {values.numel()} slice points ({filter_rank:.1%}) lie below the solution's loss "
            f"{centre:.4g} (allowed: 5%); slice spans ±{config.span:g} filter-normalised units, loss up to "
            f"{float(values.max()):.3g}",
        ),
    ]
    holds = all(check.holds for check in claims)
    notes = [
        f"Net {features}-{config.hidden}-{config.hidden}-10 on {config.dataset}, SGD lr={config.lr} "
        f"momentum={config.momentum}, batch {config.batch_size}, {config.steps} steps; losses are full-batch "
        "training cross-entropy.",
        "Barrier = the largest rise of the loss above its running minimum along α ∈ [0, 1]; the claim "
        "allows 2% of the total drop.",
        "Filter-normalised directions (Li et al. 2018): random Gaussian, each weight row rescaled to the "
        "norm of that row of the solution's weights, bias directions zero.",
        f"The trajectory plane is spanned by the first two principal components of the {len(log.snapshots)} "
        f"snapshots (minus the solution); they explain {float(energy[0]):.1%} and {float(energy[1]):.1%} "
        "of the trajectory's variance. Projections are exact because the PCs are orthonormal.",
    ]
    if not holds:
        notes.append(
            f"The claim does not hold on this run: barrier {barrier:.3g} (drop {drop:.3g}), "
            f"{filter_rank:.1%} of the slice lies below the solution."
        )
    return LandscapeResult(
        config=config,
        num_params=solution.numel(),
        train_loss=train_loss,
        train_accuracy=train_acc,
        test_loss=test_loss,
        test_accuracy=test_acc,
        alphas=alphas,
        line_train_loss=line_train,
        line_test_loss=line_test,
        barrier=barrier,
        filter_axis=axis.tolist(),
        filter_loss=filter_loss,
        filter_rank=filter_rank,
        pca_x=xs.tolist(),
        pca_y=ys.tolist(),
        pca_loss=pca_loss,
        pca_explained=(float(energy[0]), float(energy[1])),
        trajectory=[(float(c[0]), float(c[1])) for c in coords],
        trajectory_loss=trajectory_loss,
        holds=holds,
        claims=claims,
        notes=notes,
    )
