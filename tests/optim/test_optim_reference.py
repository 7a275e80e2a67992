"""Every preset equals its torch.optim counterpart for 500 steps over a grid of hyper-parameters."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from _helpers import TORCH_CLASSES, TORCH_LR, assert_all_close, ravine_preset, run_mlp, run_random

import ravine.optim as ro

STEPS = 500


def _grid() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for wd in (0.0, 1e-2):
        cases.append(("sgd", {"weight_decay": wd}))
        cases.append(("momentum", {"weight_decay": wd}))
        cases.append(("momentum", {"weight_decay": wd, "dampening": 0.1}))
        cases.append(("momentum", {"weight_decay": wd, "nesterov": True}))
        for lr_decay, iav in itertools.product((0.0, 1e-2), (0.0, 0.1)):
            cases.append(
                ("adagrad", {"weight_decay": wd, "lr_decay": lr_decay, "initial_accumulator_value": iav})
            )
        for alpha, centered, mu in itertools.product((0.99, 0.9), (False, True), (0.0, 0.9)):
            cases.append(
                ("rmsprop", {"weight_decay": wd, "alpha": alpha, "centered": centered, "momentum": mu})
            )
        for betas, amsgrad in itertools.product(((0.9, 0.999), (0.8, 0.99)), (False, True)):
            cases.append(("adam", {"weight_decay": wd, "betas": betas, "amsgrad": amsgrad}))
        for decoupled in (False, True):
            cases.append(("radam", {"weight_decay": wd, "decoupled_weight_decay": decoupled}))
    for wd, amsgrad in itertools.product((1e-2, 0.1), (False, True)):
        cases.append(("adamw", {"weight_decay": wd, "amsgrad": amsgrad}))
    return cases


GRID = _grid()
IDS = [f"{name}-" + "-".join(f"{k}={v}" for k, v in kwargs.items()) for name, kwargs in GRID]


def _torch_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if name == "momentum":
        out.setdefault("momentum", 0.9)
    return out


@pytest.mark.parametrize(("name", "kwargs"), GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("torch_foreach", [False, True], ids=["torch-loop", "torch-foreach"])
def test_preset_equals_torch_on_random_tensors(
    name: str, kwargs: dict[str, Any], dtype: torch.dtype, torch_foreach: bool
) -> None:
    lr = TORCH_LR[name]
    ours = run_random(lambda p: ravine_preset(name)(p, lr=lr, **kwargs), dtype, STEPS)
    theirs = run_random(
        lambda p: TORCH_CLASSES[name](p, lr=lr, foreach=torch_foreach, **_torch_kwargs(name, kwargs)),
        dtype,
        STEPS,
    )
    assert_all_close(ours, theirs, dtype)


@pytest.mark.parametrize(("name", "kwargs"), GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_preset_equals_torch_on_mlp(name: str, kwargs: dict[str, Any], dtype: torch.dtype) -> None:
    lr = TORCH_LR[name]
    ours = run_mlp(lambda p: ravine_preset(name)(p, lr=lr, **kwargs), dtype, STEPS)
    theirs = run_mlp(
        lambda p: TORCH_CLASSES[name](p, lr=lr, foreach=True, **_torch_kwargs(name, kwargs)), dtype, STEPS
    )
    assert_all_close(ours, theirs, dtype)


@pytest.mark.parametrize(
    "name",
    [
        "sgd",
        "adam",
        "adamw",
        "rmsprop",
        "adagrad",
        "radam",
        "nadam",
        "adamax",
        "adadelta",
        "rprop",
        "lion",
        "adafactor",
    ],
)
def test_ravine_for_loop_fallback_equals_foreach(name: str) -> None:
    """foreach=False (torch's for-loop: one parameter at a time) equals the default path for every preset,
    on matrices, vectors and a 3-D tensor (Adafactor keeps some state keys for some parameters only)."""
    kwargs: dict[str, Any] = {} if name == "rprop" else {"weight_decay": 1e-2}
    lr = TORCH_LR.get(name, 1e-2)
    preset = getattr(ro, name)
    foreach = run_random(lambda p: preset(p, lr=lr, **kwargs), torch.float64, 100)
    loop = run_random(lambda p: preset(p, lr=lr, foreach=False, **kwargs), torch.float64, 100)
    for a, b in zip(foreach, loop, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("adam", lambda: ro.chain(ro.WeightDecay(1e-2), ro.Adam(0.9, 0.999, eps=1e-8))),
        ("adamw", lambda: ro.chain(ro.Adam(0.9, 0.999), ro.DecoupledWeightDecay(1e-2))),
        ("momentum", lambda: ro.chain(ro.WeightDecay(1e-2), ro.Momentum(0.9))),
        ("rmsprop", lambda: ro.chain(ro.WeightDecay(1e-2), ro.RMSProp(0.99, eps=1e-8), ro.Momentum(0.9))),
        ("radam", lambda: ro.chain(ro.WeightDecay(1e-2), ro.RAdam())),
    ],
)
def test_presets_are_buildable_from_parts(name: str, parts: Any) -> None:
    kwargs: dict[str, Any] = {"weight_decay": 1e-2}
    if name == "rmsprop":
        kwargs["momentum"] = 0.9
    lr = TORCH_LR[name]
    preset = run_random(lambda p: ravine_preset(name)(p, lr=lr, **kwargs), torch.float64, 200)
    built = run_random(lambda p: ro.ChainOptimizer(p, parts(), lr=lr), torch.float64, 200)
    for a, b in zip(preset, built, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_adagrad_lr_decay_is_a_schedule_from_parts() -> None:
    preset = run_random(lambda p: ro.adagrad(p, lr=0.05, lr_decay=0.01), torch.float64, 200)
    built = run_random(
        lambda p: ro.ChainOptimizer(p, ro.AdagradSum(), lr=0.05, schedule=ro.InverseTimeDecay(0.01)),
        torch.float64,
        200,
    )
    for a, b in zip(preset, built, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
