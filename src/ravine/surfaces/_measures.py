"""What the lab's stories measure: claims with their numbers (:class:`Story`) and the
measurements themselves — sign flips, bursts, steps to a tolerance, log-spaced steps, a 2×2 Hessian."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ravine.claims import Claim
from ravine.surfaces._base import Surface
from ravine.surfaces._runner import LabRun

__all__ = [
    "Story",
    "burst_count",
    "fmt",
    "hessian_2d",
    "log_steps",
    "sign_flips",
    "steps_to",
]


@dataclass(frozen=True)
class Story:
    """A demonstration: its runs keyed by name, with the surface of each, its metrics and the claims it checked."""

    name: str
    title: str
    runs: Mapping[str, tuple[Surface, LabRun]]
    metrics: dict[str, float]
    claims: tuple[Claim, ...] = field(default=())


def sign_flips(values: torch.Tensor) -> int:
    """How many times a 1-D series changes sign (zeros count as no sign)."""
    s = torch.sign(values)
    return int(((s[1:] * s[:-1]) < 0).sum())


def burst_count(values: torch.Tensor, threshold: float) -> int:
    """How many times |values| rises above ``threshold`` (rising edges of |v| > threshold)."""
    big = values.abs() > threshold
    return int((big[1:] & ~big[:-1]).sum())


def steps_to(loss: torch.Tensor, steps: torch.Tensor, tol: float, *, stay: bool = False) -> int | None:
    """First recorded step with loss < tol (with ``stay``: from which it stays below); None if never."""
    below = loss < tol
    if stay:
        above = (~below).nonzero()
        first = 0 if len(above) == 0 else int(above[-1]) + 1
        return int(steps[first]) if first < len(steps) else None
    hits = below.nonzero()
    return int(steps[int(hits[0])]) if len(hits) else None


def log_steps(steps: int, count: int = 400) -> list[int]:
    """About ``count`` log-spaced update indices in [0, steps − 1] (0 included), for log-x σ plots."""
    if steps <= 0:
        return []
    grid = torch.logspace(0, math.log10(steps), count, dtype=torch.float64) - 1
    return sorted({min(int(t), steps - 1) for t in grid.tolist()})


def hessian_2d(surface: Surface, point: torch.Tensor) -> torch.Tensor:
    """The 2×2 Hessian of ``surface`` at ``point`` by double backward (autograd)."""
    with torch.enable_grad():
        x = point.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(surface.loss(x), x, create_graph=True)
        rows = [torch.autograd.grad(g[i], x, retain_graph=True)[0] for i in range(2)]
    return torch.stack(rows).detach()


def fmt(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e5 else f"{x:.2e}"
