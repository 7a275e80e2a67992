"""Adafactor and Muon equal torch.optim for 500 steps; torch states load exactly; what they refuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from _helpers import assert_all_close, run_random

import ravine.optim as ro
from ravine.errors import DataError, UnsupportedError

STEPS = 500
MATRICES = [(7, 5), (3, 8), (4, 4)]
ADAFACTOR_GRID: list[dict[str, Any]] = [
    {},
    {"lr": 1e-3, "weight_decay": 1e-2},
    {"eps": (1e-30, 1e-3), "d": 2.0, "beta2_decay": -0.5, "weight_decay": 0.1},
]
MUON_GRID: list[dict[str, Any]] = [
    {},
    {"lr": 2e-2, "weight_decay": 0.0, "nesterov": False},
    {"adjust_lr_fn": "match_rms_adamw", "momentum": 0.9, "ns_steps": 3, "weight_decay": 0.01},
]


def _ids(grid: list[dict[str, Any]]) -> list[str]:
    return ["-".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults" for kwargs in grid]


def _matrices(dtype: torch.dtype) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=generator, dtype=dtype)) for s in MATRICES]


def _run_matrices(make_opt: Callable[[Any], torch.optim.Optimizer], dtype: torch.dtype) -> list[torch.Tensor]:
    params = _matrices(dtype)
    opt = make_opt(params)
    generator = torch.Generator().manual_seed(2)
    for _ in range(STEPS):
        for p in params:
            p.grad = p.detach() + torch.randn(p.shape, generator=generator, dtype=dtype)
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("kwargs", ADAFACTOR_GRID, ids=_ids(ADAFACTOR_GRID))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("torch_foreach", [False, True], ids=["torch-loop", "torch-foreach"])
def test_adafactor_equals_torch(kwargs: dict[str, Any], dtype: torch.dtype, torch_foreach: bool) -> None:
    """Matrices (factored), a 3-D tensor (factored over its last two axes) and vectors (unfactored)."""
    ours = run_random(lambda p: ro.adafactor(p, **kwargs), dtype, STEPS)
    theirs = run_random(lambda p: torch.optim.Adafactor(p, foreach=torch_foreach, **kwargs), dtype, STEPS)
    assert_all_close(ours, theirs, dtype)


@pytest.mark.parametrize("kwargs", MUON_GRID, ids=_ids(MUON_GRID))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_muon_equals_torch(kwargs: dict[str, Any], dtype: torch.dtype) -> None:
    """torch runs Newton–Schulz in bfloat16; ravine does the same operations in the same order, so the
    comparison keeps the 1e-10 / 1e-5 tolerances (measured: bit-identical on CPU)."""
    ours = _run_matrices(lambda p: ro.muon(p, **kwargs), dtype)
    theirs = _run_matrices(lambda p: torch.optim.Muon(p, **kwargs), dtype)
    assert_all_close(ours, theirs, dtype)


def test_muon_step_is_orthogonal() -> None:
    """The update's singular values sit in Newton–Schulz's band around 1 (× lr·r), though g's spread 33×."""
    w = torch.nn.Parameter(torch.zeros(6, 4, dtype=torch.float64))
    opt = ro.muon([w], lr=1.0, weight_decay=0.0, nesterov=False, momentum=0.0)
    gaussian = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u, _, vh = torch.linalg.svd(gaussian, full_matrices=False)
    spread = torch.tensor([10.0, 3.0, 1.0, 0.3], dtype=torch.float64)  # condition number 33
    w.grad = u @ torch.diag(spread) @ vh
    opt.step()
    ratio = (6 / 4) ** 0.5
    singular = torch.linalg.svdvals(-w.detach()) / ratio
    assert float(singular.min()) > 0.5
    assert float(singular.max()) < 1.5


@pytest.mark.parametrize(
    ("name", "params", "torch_class"),
    [
        ("adafactor", lambda: run_params(3), torch.optim.Adafactor),
        ("muon", lambda: _matrices(torch.float64), torch.optim.Muon),
    ],
)
def test_torch_state_loads_exactly(
    name: str, params: Callable[[], list[torch.nn.Parameter]], torch_class: Any
) -> None:
    """torch's optimizer for 7 steps, its state into ravine's preset, 7 more steps each: equal."""
    theirs_params = params()
    ours_params = [torch.nn.Parameter(p.detach().clone()) for p in theirs_params]
    reference = torch_class(theirs_params, lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(7):
        for p in theirs_params:
            p.grad = p.detach() + torch.randn(p.shape, generator=generator, dtype=p.dtype)
        reference.step()
    for p, q in zip(theirs_params, ours_params, strict=True):
        q.data.copy_(p.detach())
    ours: ro.ChainOptimizer = getattr(ro, name)(ours_params, lr=1e-2)
    ours.load_state_dict(reference.state_dict())
    for _ in range(7):
        grads = [p.detach() + torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in theirs_params]
        for p, q, g in zip(theirs_params, ours_params, grads, strict=True):
            p.grad, q.grad = g, g.clone()
        reference.step()
        ours.step()
    for p, q in zip(theirs_params, ours_params, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def run_params(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 4, 2), ()]
    return [torch.nn.Parameter(torch.randn(s, generator=generator, dtype=torch.float64)) for s in shapes]


def test_adafactor_state_of_another_shape_is_refused_at_load() -> None:
    """A torch state whose factored row_var does not fit the parameter fails at load, naming the shapes."""
    source = [torch.nn.Parameter(torch.randn(5, 7, dtype=torch.float64))]
    reference = torch.optim.Adafactor(source)
    source[0].grad = torch.ones_like(source[0])
    reference.step()
    target = ro.adafactor([torch.nn.Parameter(torch.randn(7, 5, dtype=torch.float64))])
    with pytest.raises(DataError, match=r"row_var.*\(5, 1\), expected \(7, 1\)"):
        target.load_state_dict(reference.state_dict())
    vector = ro.adafactor([torch.nn.Parameter(torch.randn(35, dtype=torch.float64))])
    with pytest.raises(DataError, match="variance"):
        vector.load_state_dict(reference.state_dict())


def test_muon_refuses_what_is_not_a_matrix() -> None:
    with pytest.raises(UnsupportedError, match=r"2-D.*shape \(3,\).*adamw"):
        ro.muon([torch.nn.Parameter(torch.zeros(3))])
    opt = ro.muon([torch.nn.Parameter(torch.zeros(3, 2))])
    with pytest.raises(UnsupportedError, match=r"shape \(2, 2, 2\)"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2, 2, 2))]})
    assert len(opt.param_groups) == 1
    with pytest.raises(UnsupportedError, match="complex"):
        ro.adafactor([torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.complex64))])


@pytest.mark.parametrize(("name", "phrase"), [("adafactor", "RMS"), ("muon", "orthogonalises")])
def test_effective_lr_says_why_it_is_not_defined(name: str, phrase: str) -> None:
    params = _matrices(torch.float32)
    opt: ro.ChainOptimizer = getattr(ro, name)(params)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    with pytest.raises(UnsupportedError, match=phrase):
        opt.effective_lr(params[0])
    assert opt.lr_summary() == []
    assert opt.momentum_buffer(params[0]) is not None or name == "adafactor"


@pytest.mark.parametrize("name", ["adafactor", "muon"])
def test_round_trip_with_weights_only(name: str, tmp_path: Any) -> None:
    params = _matrices(torch.float32)
    opt: ro.ChainOptimizer = getattr(ro, name)(params, schedule=ro.CosineDecay(50))
    for p in params:
        p.grad = torch.cos(p.detach())
    opt.step()
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    twin = [torch.nn.Parameter(p.detach().clone()) for p in params]
    again: ro.ChainOptimizer = getattr(ro, name)(twin, schedule=ro.CosineDecay(50))
    again.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=True))
    for p, q in zip(params, twin, strict=True):
        p.grad = torch.sin(p.detach())
        q.grad = p.grad.clone()
    opt.step()
    again.step()
    for p, q in zip(params, twin, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(300, 7), (3, 50, 4), (1, 9)])
def test_adafactor_column_mean_is_the_mean_of_squares_down_the_rows(shape: tuple[int, ...]) -> None:
    """c = mean over axis −2 of g² (torch's norm-then-square, rounded differently): float32 within 1e-6 of
    float64's, and the shape torch's state keeps, (…, 1, C)."""
    from ravine.optim._factored import _column_mean_square

    g = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 1e-3
    reference = (g.double() ** 2).mean(dim=-2, keepdim=True)
    ours = _column_mean_square(g)
    assert ours.shape == (*shape[:-2], 1, shape[-1])
    torch.testing.assert_close(ours.double(), reference, rtol=1e-6, atol=0.0)
