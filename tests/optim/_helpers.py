"""Shared helpers of the optimizer tests: identical problems driven by ravine and by torch.optim."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import torch

import ravine.optim as ro

TORCH_CLASSES: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "radam": torch.optim.RAdam,
}
TORCH_LR = {
    "sgd": 0.05,
    "momentum": 0.02,
    "adagrad": 0.05,
    "rmsprop": 1e-3,
    "adam": 1e-3,
    "adamw": 1e-3,
    "radam": 1e-3,
}


def ravine_preset(name: str) -> Callable[..., ro.ChainOptimizer]:
    factory: Callable[..., ro.ChainOptimizer] = getattr(ro, name)
    return factory


def make_mlp(dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 8),
        torch.nn.Tanh(),
        torch.nn.Linear(8, 1),
    ).to(dtype)


def random_tensors(dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 4, 2), (1,), (11,)]
    return [torch.nn.Parameter(torch.randn(s, generator=generator, dtype=dtype)) for s in shapes]


def run_mlp(
    make_opt: Callable[[Any], torch.optim.Optimizer], dtype: torch.dtype, steps: int
) -> list[torch.Tensor]:
    """Train the tiny MLP on fixed random data; returns the final parameters."""
    model = make_mlp(dtype)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(32, 6, generator=generator, dtype=dtype)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    opt = make_opt(model.parameters())
    for _ in range(steps):
        opt.zero_grad()
        torch.autograd.backward(torch.nn.functional.mse_loss(model(x), y))
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def run_random(
    make_opt: Callable[[Any], torch.optim.Optimizer], dtype: torch.dtype, steps: int
) -> list[torch.Tensor]:
    """Gradients g = θ + noise (a noisy quadratic) with the same noise for every optimizer."""
    params = random_tensors(dtype)
    opt = make_opt(params)
    generator = torch.Generator().manual_seed(2)
    for _ in range(steps):
        for p in params:
            p.grad = p.detach() + torch.randn(p.shape, generator=generator, dtype=dtype)
        opt.step()
    return [p.detach().clone() for p in params]


def noisy_quadratic_grads(params: list[torch.nn.Parameter], generator: torch.Generator) -> None:
    """g = θ + noise for every parameter."""
    for p in params:
        p.grad = p.detach() + torch.randn(p.shape, generator=generator, dtype=p.dtype)


def weights_only_copy(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` saved with torch.save and read back with ``torch.load(weights_only=True)``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer, weights_only=True)
    return loaded


def assert_all_close(
    ours: list[torch.Tensor], theirs: list[torch.Tensor], dtype: torch.dtype, *, loose: bool = False
) -> None:
    """rtol 1e-5 in float32, 1e-10 in float64 (``loose``: 1e-8, for ε-level differences)."""
    if dtype == torch.float32:
        rtol, atol = 1e-5, 1e-6
    else:
        rtol, atol = (1e-8, 1e-10) if loose else (1e-10, 1e-12)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
