"""Minimum ratio versus training loss: many tiny nets driven to near-critical points, their exact Hessians.

The lecture's scatter: train a network until its gradient is (nearly) zero, compute the Hessian's
eigenvalues, and plot the training loss against the *minimum ratio* — the share of positive eigenvalues.
Points at ratio 1 would be true local minima; the lecture's points sit between 0.5 and 0.8: "local minima
are rare; usually training stops at a saddle point". Ordinary gradient descent does not reach critical
points (the loss stops falling while ‖g‖ is still large), so, as the lecture says, a special method is
needed: after ordinary training every net minimises ‖∇L‖² directly. All nets are trained at once as one
batched computation (independent parameters, element-wise Adam), then each one's exact Hessian is
classified by :func:`ravine.curvature.classify` (dense spectrum, float64) with the flat threshold ε stated.

Example:
    >>> from ravine.experiments import minimum_ratio
    >>> result = minimum_ratio.run(minimum_ratio.MinimumRatioConfig.quick())  # doctest: +SKIP
    >>> result.minimum_like_share < 0.5  # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ravine._validate import check_all_positive
from ravine.claims import Claim
from ravine.errors import ConfigError
from ravine.experiments._base import format_rows
from ravine.experiments._training import single_threaded
from ravine.progress import Progress, silent

__all__ = ["MinimumRatioConfig", "MinimumRatioResult", "NetPoint", "run", "target_function"]

CLAIM = (
    "At the near-critical points where training stops, true local minima (no negative Hessian eigenvalue) "
    "are rare: most points are saddle-like, with a minimum ratio below 1."
)


@dataclass(frozen=True)
class MinimumRatioConfig:
    """Settings of the minimum-ratio experiment.

    Attributes:
        nets: Number of networks (differing in initialisation).
        hidden: Width of the two tanh hidden layers of each 1-H-H-1 net.
        points: Training points x ∈ [−1, 1] of y = sin(5πx)/(5πx).
        train_steps: Adam updates on the loss.
        lr: Adam's learning rate on the loss.
        grad_steps: Adam updates on ‖∇L‖² afterwards.
        grad_lr: Adam's learning rate on ‖∇L‖².
        grad_tol: ‖∇L‖ below which a point counts as critical (HW2-2: 1e-3).
        eps: Eigenvalues with |λ| ≤ ε·max|λ| count as flat.
        seed: First seed of the initialisations.
    """

    nets: int = 16
    hidden: int = 12
    points: int = 64
    train_steps: int = 400
    lr: float = 0.01
    grad_steps: int = 800
    grad_lr: float = 1e-3
    grad_tol: float = 1e-3
    eps: float = 1e-6
    seed: int = 0

    @classmethod
    def quick(cls) -> MinimumRatioConfig:
        """Seconds: 16 nets of 193 parameters."""
        return cls()

    @classmethod
    def full(cls) -> MinimumRatioConfig:
        """About a minute: 40 nets of 321 parameters, longer gradient-norm descent."""
        return cls(nets=40, hidden=16, train_steps=2000, grad_steps=6000)


@dataclass(frozen=True)
class NetPoint:
    """One net at its end point."""

    seed: int
    loss: float
    gradient_norm: float
    minimum_ratio: float
    positive_share: float
    negative_share: float
    flat_share: float
    lambda_min: float
    lambda_max: float
    kind: str
    hessian_kind: str
    minimum_ratio_coarse: float


@dataclass
class MinimumRatioResult:
    """Every net's loss, gradient norm and Hessian shares, and the verdict on the claim."""

    config: MinimumRatioConfig
    num_params: int
    points: list[NetPoint]
    grad_norm_before: list[float]
    minimum_like_share: float
    critical_share: float
    claim: str = CLAIM
    holds: bool = False
    claims: list[Claim] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> list[list[object]]:
        """Summary rows: shares over all nets, then a few per-net rows."""
        n = len(self.points)

        def mean(attr: str) -> float:
            return sum(float(getattr(p, attr)) for p in self.points) / n

        rows: list[list[object]] = [
            ["quantity", "value"],
            ["nets × parameters", f"{n} × {self.num_params}"],
            ["ε (flat: |λ| ≤ ε·max|λ|)", f"{self.config.eps:g}"],
            [
                "mean positive / negative / flat share",
                f"{mean('positive_share'):.3f} / {mean('negative_share'):.3f} / {mean('flat_share'):.3f}",
            ],
            ["minimum ratio: min / median / max", _three(sorted(p.minimum_ratio for p in self.points))],
            ["share of nets with ‖g‖ < grad_tol", self.critical_share],
            ["share local-minimum-like (Hessian)", self.minimum_like_share],
            [
                "median ‖g‖ before → after ‖g‖² descent",
                f"{_median(self.grad_norm_before):.2e} → "
                f"{_median([p.gradient_norm for p in self.points]):.2e}",
            ],
            ["claim holds", self.holds],
        ]
        return format_rows(rows)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else math.nan


def _three(values: list[float]) -> str:
    return f"{values[0]:.3f} / {_median(values):.3f} / {values[-1]:.3f}" if values else "-"


def target_function(x: torch.Tensor) -> torch.Tensor:
    """sin(5πx)/(5πx) (HW2-2's target), 1 at x = 0."""
    z = 5 * math.pi * x
    return torch.where(z == 0, torch.ones_like(z), torch.sin(z) / torch.where(z == 0, torch.ones_like(z), z))


def _batched_init(nets: int, hidden: int, seed: int) -> list[torch.Tensor]:
    """Stacked parameters of ``nets`` 1-H-H-1 nets, each from PyTorch's default init with its own seed."""
    parts: list[list[torch.Tensor]] = [[] for _ in range(6)]
    for i in range(nets):
        net = _single(hidden, seed + i)
        for slot, p in enumerate(net.parameters()):
            parts[slot].append(p.detach().to(torch.float64))
    return [torch.stack(slot).requires_grad_(True) for slot in parts]


def _single(hidden: int, seed: int) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )


def _forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    w1, b1, w2, b2, w3, b3 = params
    h = torch.tanh(torch.einsum("bi,nhi->nbh", x, w1) + b1[:, None, :])
    h = torch.tanh(torch.einsum("nbh,nkh->nbk", h, w2) + b2[:, None, :])
    return torch.einsum("nbh,nkh->nbk", h, w3) + b3[:, None, :]


def _losses(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((_forward(params, x) - y) ** 2).mean(dim=(1, 2))


def _grad_norms(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, *, graph: bool) -> torch.Tensor:
    grads = torch.autograd.grad(_losses(params, x, y).sum(), params, create_graph=graph)
    return torch.stack([(g**2).reshape(g.shape[0], -1).sum(1) for g in grads]).sum(0)


@single_threaded
def run(config: MinimumRatioConfig | None = None, *, progress: Progress | None = None) -> MinimumRatioResult:
    """Train the nets, descend ‖∇L‖², classify every end point.

    Raises:
        ConfigError: If a setting is out of range.
    """
    from ravine.curvature import classify
    from ravine.optim import adam

    config = config or MinimumRatioConfig.quick()
    report = progress or silent
    check_all_positive(
        "minimum_ratio", nets=config.nets, hidden=config.hidden, lr=config.lr, grad_lr=config.grad_lr
    )
    if config.points < 4 or config.train_steps < 0 or config.grad_steps < 0 or config.eps < 0:
        raise ConfigError(f"minimum_ratio: need points >= 4 and non-negative steps and eps, got {config}")
    x = torch.linspace(-1.0, 1.0, config.points, dtype=torch.float64)[:, None]
    y = target_function(x)
    params = _batched_init(config.nets, config.hidden, config.seed)
    optimizer = adam(params, lr=config.lr)
    total = config.train_steps + config.grad_steps
    for step in range(config.train_steps):
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(_losses(params, x, y).sum())
        optimizer.step()
        if (step + 1) % 50 == 0:
            report(0.8 * (step + 1) / max(total, 1), 1.0, "training")
    before = _grad_norms(params, x, y, graph=False).sqrt().tolist()
    optimizer = adam(params, lr=config.grad_lr)
    for step in range(config.grad_steps):
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(_grad_norms(params, x, y, graph=True).sum())
        optimizer.step()
        if (step + 1) % 50 == 0:
            report(0.8 * (config.train_steps + step + 1) / max(total, 1), 1.0, "minimising ‖∇L‖²")

    points: list[NetPoint] = []
    for i in range(config.nets):
        net = _single(config.hidden, config.seed + i).double()
        with torch.no_grad():
            for p, stacked in zip(net.parameters(), params, strict=True):
                p.copy_(stacked[i])
        point = classify(net, nn.functional.mse_loss, (x, y), grad_tol=config.grad_tol, eps=config.eps)
        coarse = classify(net, nn.functional.mse_loss, (x, y), grad_tol=config.grad_tol, eps=1e-3)
        points.append(
            NetPoint(
                seed=config.seed + i,
                loss=point.loss,
                gradient_norm=point.gradient_norm,
                minimum_ratio=point.minimum_ratio,
                positive_share=point.positive_share,
                negative_share=point.negative_share,
                flat_share=point.flat_share,
                lambda_min=point.lambda_min,
                lambda_max=point.lambda_max,
                kind=point.kind.value,
                hessian_kind=point.hessian_kind.value,
                minimum_ratio_coarse=coarse.minimum_ratio,
            )
        )
        report(0.8 + 0.2 * (i + 1) / config.nets, 1.0, "Hessian spectra")

    n = len(points)
    num_params = sum(p[0].numel() for p in params)
    minimum_like = sum(p.hessian_kind == "local minimum like" for p in points) / n
    critical = sum(p.gradient_norm <= config.grad_tol for p in points) / n
    holds = minimum_like < 0.5
    notes = [
        f"{n} nets 1-{config.hidden}-{config.hidden}-1 (tanh, {num_params} parameters) fitting "
        "sin(5πx)/(5πx) on "
        f"{config.points} points, MSE; Adam lr {config.lr} for {config.train_steps} updates, then Adam lr "
        f"{config.grad_lr} on ‖∇L‖² for {config.grad_steps} updates; float64 throughout.",
        f"Exact Hessian (dense, eigh) from ravine.curvature.classify; flat means |λ| ≤ ε·max|λ| with ε = "
        f"{config.eps:g}. The minimum ratio is positive/(positive+negative), flat eigenvalues not counted; "
        "at "
        "ε = 1e-3 (the coarse column in the data) many small eigenvalues become flat and the ratio moves.",
        f"{critical:.0%} of the nets reached ‖∇L‖ ≤ {config.grad_tol:g}; the others are near-critical at "
        "best. "
        "Minimising ‖∇L‖² is attracted by saddles as much as by minima (and can stall where ‖∇L‖² has a "
        "non-zero minimum), which is why the lecture uses it to find critical points, not to find minima.",
    ]
    relative = sorted(p.lambda_min / p.lambda_max for p in points if p.lambda_max > 0)
    if relative:
        coarse_one = sum(p.minimum_ratio_coarse >= 1.0 for p in points)
        notes.append(
            f"The negative eigenvalues are small: median λ_min/λ_max = {_median(relative):.1e}. At ε = 1e-3 "
            f"{coarse_one} of {n} nets have no negative eigenvalue left (ratio 1) — the verdict depends on ε."
        )
    ratios = sorted(p.minimum_ratio for p in points)
    evidence = (
        f"{minimum_like:.0%} of {n} end points are local-minimum-like (no negative eigenvalue at ε = "
        f"{config.eps:g}); minimum ratio min / median / max = {_three(ratios)}; {critical:.0%} reached "
        f"‖∇L‖ ≤ {config.grad_tol:g}"
    )
    if not holds:
        notes.append(
            f"The claim does not hold on this run: {minimum_like:.0%} of the nets are local-minimum-like."
        )
    return MinimumRatioResult(
        config,
        num_params,
        points,
        before,
        minimum_like,
        critical,
        holds=holds,
        claims=[Claim(CLAIM, holds, evidence)],
        notes=notes,
    )
