"""NAdam, Adamax, Adadelta and Rprop equal torch.optim for 500 steps; Lion equals its published update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from _helpers import assert_all_close, random_tensors, run_random

import ravine.optim as ro
from ravine.errors import UnsupportedError

STEPS = 500
TORCH = {
    "nadam": torch.optim.NAdam,
    "adamax": torch.optim.Adamax,
    "adadelta": torch.optim.Adadelta,
    "rprop": torch.optim.Rprop,
}
GRID: list[tuple[str, dict[str, Any]]] = [
    ("nadam", {"lr": 2e-3, "weight_decay": 1e-2}),
    ("nadam", {"lr": 2e-3, "weight_decay": 1e-2, "decoupled_weight_decay": True, "momentum_decay": 1e-2}),
    ("nadam", {"lr": 2e-3, "betas": (0.8, 0.99)}),
    ("adamax", {"lr": 2e-3, "weight_decay": 1e-2}),
    ("adamax", {"lr": 2e-3, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("adadelta", {"weight_decay": 1e-2}),
    ("adadelta", {"lr": 0.5, "rho": 0.8}),
    ("rprop", {"lr": 1e-2}),
    ("rprop", {"lr": 1e-3, "etas": (0.3, 1.5), "step_sizes": (1e-4, 1.0)}),
]
IDS = [f"{name}-" + "-".join(f"{k}={v}" for k, v in kwargs.items()) for name, kwargs in GRID]


@pytest.mark.parametrize(("name", "kwargs"), GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("torch_foreach", [False, True], ids=["torch-loop", "torch-foreach"])
def test_extra_preset_equals_torch(
    name: str, kwargs: dict[str, Any], dtype: torch.dtype, torch_foreach: bool
) -> None:
    preset: Callable[..., ro.ChainOptimizer] = getattr(ro, name)
    ours = run_random(lambda p: preset(p, **kwargs), dtype, STEPS)
    theirs = run_random(lambda p: TORCH[name](p, foreach=torch_foreach, **kwargs), dtype, STEPS)
    assert_all_close(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_rprop_is_bit_identical_to_torch(dtype: torch.dtype) -> None:
    """Every op of Rprop is exact but s·η±, which ravine rounds as torch does: equal bit for bit, on tensors
    that stay in one chunk and cut into flat slices of four elements (chunk_bytes=16)."""
    for chunk_bytes in (1 << 19, 16):

        def make(p: Any, chunk_bytes: int = chunk_bytes) -> ro.ChainOptimizer:
            opt = ro.rprop(p, lr=1e-2, etas=(0.4, 1.3))
            opt.chunk_bytes = chunk_bytes
            return opt

        ours = run_random(make, dtype, 200)
        theirs = run_random(
            lambda p: torch.optim.Rprop(p, lr=1e-2, etas=(0.4, 1.3), foreach=False), dtype, 200
        )
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True)), chunk_bytes


@pytest.mark.parametrize("name", list(TORCH))
def test_torch_state_of_extra_presets_loads_exactly(name: str) -> None:
    """torch's optimizer for 7 steps, its state (weights_only) into ravine's preset, 7 more steps each."""
    kwargs: dict[str, Any] = {"lr": 1e-2} if name != "adadelta" else {}
    params = random_tensors(torch.float64)
    twin = [torch.nn.Parameter(p.detach().clone()) for p in params]
    reference = TORCH[name](params, **kwargs)
    generator = torch.Generator().manual_seed(0)
    for _ in range(7):
        for p in params:
            p.grad = p.detach() + torch.randn(p.shape, generator=generator, dtype=p.dtype)
        reference.step()
    for p, q in zip(params, twin, strict=True):
        q.data.copy_(p.detach())
    ours: ro.ChainOptimizer = getattr(ro, name)(twin)
    ours.load_state_dict(reference.state_dict())
    for _ in range(7):
        grads = [p.detach() + torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in params]
        for p, q, g in zip(params, twin, grads, strict=True):
            p.grad, q.grad = g, g.clone()
        reference.step()
        ours.step()
    for p, q in zip(params, twin, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def _lion_by_hand(
    theta: list[torch.Tensor],
    grads: list[list[torch.Tensor]],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    wd: float,
) -> list[torch.Tensor]:
    """Chen et al. 2023, Algorithm 2 (decoupled weight decay), written out one tensor at a time."""
    theta = [t.clone() for t in theta]
    m = [torch.zeros_like(t) for t in theta]
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            c = beta1 * m[i] + (1 - beta1) * g  # interpolate
            theta[i] = theta[i] - lr * (torch.sign(c) + wd * theta[i])  # signed update, decoupled decay
            m[i] = beta2 * m[i] + (1 - beta2) * g  # momentum with the other β
    return theta


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("beta1", "beta2", "wd"), [(0.9, 0.99, 0.0), (0.95, 0.98, 0.1)])
def test_lion_equals_its_published_update(dtype: torch.dtype, beta1: float, beta2: float, wd: float) -> None:
    lr, steps = 1e-3, STEPS
    params = random_tensors(dtype)
    start = [p.detach().clone() for p in params]
    generator = torch.Generator().manual_seed(2)
    history = []
    opt = ro.lion(params, lr=lr, betas=(beta1, beta2), weight_decay=wd)
    for _ in range(steps):
        step_grads = [
            torch.cos(p.detach()) + torch.randn(p.shape, generator=generator, dtype=dtype) for p in params
        ]
        history.append(step_grads)
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g
        opt.step()
    expected = _lion_by_hand(start, history, lr=lr, beta1=beta1, beta2=beta2, wd=wd)
    ours = [p.detach() for p in params]
    if dtype == torch.float32 and wd > 0:
        # ravine shrinks θ·(1 − ηλ) then subtracts η·sign(c), torch-AdamW style; the paper writes
        # θ − η(sign(c) + λθ). Equal in exact arithmetic; in float32 the rounding drifts to ~1e-5 over 500 steps.
        for a, b in zip(ours, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    else:
        assert_all_close(ours, expected, dtype)


def test_sign_rules_say_they_have_no_effective_lr() -> None:
    params = random_tensors(torch.float32)
    opt = ro.lion(params)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    with pytest.raises(UnsupportedError, match="sign"):
        opt.effective_lr(params[0])
    assert opt.lr_summary() == []


def test_adamax_effective_lr_times_momentum_is_the_step() -> None:
    params = random_tensors(torch.float64)
    opt = ro.adamax(params, lr=1e-2)
    for p in params:
        p.grad = torch.sin(p.detach())
    opt.step()
    before = params[0].detach().clone()
    params[0].grad = torch.cos(before)
    opt.step()
    step = before - params[0].detach()
    buffer = opt.momentum_buffer(params[0])
    assert buffer is not None
    torch.testing.assert_close(opt.effective_lr(params[0]) * buffer, step, rtol=1e-12, atol=1e-15)
