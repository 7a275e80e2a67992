"""Checkpoints: plain data for weights_only loads, torch.optim states mapped exactly, bad states refused at load."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from _helpers import noisy_quadratic_grads as _grads
from _helpers import random_tensors
from _helpers import weights_only_copy as _weights_only

import ravine.optim as ro
from ravine.errors import ConfigError, DataError, RavineError, UnsupportedError

SPLIT, REST = 6, 6


def _resume_matches(
    first: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    second: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
) -> None:
    """``first`` for SPLIT steps, saved (weights_only), loaded into ``second``, REST more steps, equals an
    uninterrupted run of ``second`` that started from ``first``'s trajectory."""
    params = random_tensors(torch.float64)
    generator = torch.Generator().manual_seed(3)
    opt = first(params)
    for _ in range(SPLIT):
        _grads(params, generator)
        opt.step()
    saved = _weights_only(opt.state_dict())
    twin_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    resumed = second(twin_params)
    resumed.load_state_dict(saved)
    twin_generator = copy.deepcopy(generator)
    for _ in range(REST):
        _grads(params, generator)
        opt.step()
        _grads(twin_params, twin_generator)
        resumed.step()
    for a, b in zip(params, twin_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


CHAIN = ro.chain(ro.WeightDecay(1e-3), ro.RMSProp(0.9), ro.Momentum(0.5))
SCHEDULE = ro.Sequential([ro.LinearWarmup(3), ro.CosineDecay(20) * ro.ExponentialDecay(0.99)], milestones=[3])
RAVINE_CASES: dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]] = {
    "adamw-cosine": lambda p: ro.adamw(p, lr=1e-2, schedule=ro.CosineDecay(50)),
    "chain-sequential": lambda p: ro.ChainOptimizer(p, CHAIN, lr=1e-2, schedule=SCHEDULE),
    "adagrad-lr-decay": lambda p: ro.adagrad(p, lr=0.1, lr_decay=0.01),
}


@pytest.mark.parametrize("name", list(RAVINE_CASES))
def test_ravine_checkpoint_is_plain_data_and_resumes_exactly(name: str) -> None:
    make = RAVINE_CASES[name]
    _resume_matches(make, make)


def test_state_dict_describes_parts_as_data() -> None:
    opt = ro.ChainOptimizer(random_tensors(torch.float32), CHAIN, lr=0.1, schedule=SCHEDULE)
    group = opt.state_dict()["param_groups"][0]
    assert group["transform"]["ravine"] == "Chain"
    assert [part["ravine"] for part in group["transform"]["args"]["transforms"]] == [
        "WeightDecay",
        "RMSProp",
        "Momentum",
    ]
    assert group["schedule"]["args"]["milestones"] == (3,)


def test_lambda_schedule_loads_only_into_the_same_function() -> None:
    def warm(t: int) -> float:
        return min(1.0, (t + 1) / 4)

    params = random_tensors(torch.float64)
    opt = ro.adam(params, schedule=ro.Lambda(warm))
    _grads(params, torch.Generator().manual_seed(0))
    opt.step()
    saved = _weights_only(opt.state_dict())
    ro.adam(random_tensors(torch.float64), schedule=ro.Lambda(warm)).load_state_dict(saved)
    other = ro.adam(random_tensors(torch.float64), schedule=ro.Lambda(lambda t: 1.0))
    with pytest.raises(DataError, match="Lambda"):
        other.load_state_dict(saved)


TORCH_CASES: list[
    tuple[str, Callable[..., torch.optim.Optimizer], Callable[..., ro.ChainOptimizer], dict[str, Any]]
]
TORCH_CASES = [
    ("sgd", torch.optim.SGD, ro.sgd, {"lr": 0.05, "weight_decay": 1e-2}),
    ("sgd-momentum", torch.optim.SGD, ro.sgd, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1}),
    ("sgd-nesterov", torch.optim.SGD, ro.momentum, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    (
        "adagrad",
        torch.optim.Adagrad,
        ro.adagrad,
        {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
    ),
    ("rmsprop", torch.optim.RMSprop, ro.rmsprop, {"lr": 1e-2, "centered": True, "momentum": 0.5}),
    ("adam-maximize", torch.optim.Adam, ro.adam, {"lr": 1e-2, "amsgrad": True, "maximize": True}),
    (
        "adam-decoupled",
        torch.optim.Adam,
        ro.adam,
        {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True},
    ),
    ("adamw", torch.optim.AdamW, ro.adamw, {"lr": 1e-2, "weight_decay": 0.1}),
    ("radam", torch.optim.RAdam, ro.radam, {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}),
]


@pytest.mark.parametrize(("label", "theirs", "ours", "kwargs"), TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_torch_state_loads_exactly(
    label: str,
    theirs: Callable[..., torch.optim.Optimizer],
    ours: Callable[..., ro.ChainOptimizer],
    kwargs: dict[str, Any],
) -> None:
    """torch for SPLIT steps, its state into ravine's preset (built with defaults only), then both go on."""
    del label
    _resume_matches(lambda p: theirs(p, **kwargs), ours)


def test_torch_state_keeps_maximize_and_the_other_group_keys() -> None:
    params = random_tensors(torch.float32)
    reference = torch.optim.Adam(params, maximize=True, foreach=False)
    opt = ro.adam([torch.nn.Parameter(p.detach().clone()) for p in params])
    opt.load_state_dict(reference.state_dict())
    group = opt.param_groups[0]
    assert group["maximize"] is True
    assert group["foreach"] is False


def _torch_adam_state(**kwargs: Any) -> tuple[list[torch.nn.Parameter], dict[str, Any]]:
    params = random_tensors(torch.float64)
    reference = torch.optim.Adam(params, **kwargs)
    _grads(params, torch.Generator().manual_seed(0))
    reference.step()
    return params, reference.state_dict()


def _fresh_like(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(p.detach().clone()) for p in params]


def _edit(state: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    edited = copy.deepcopy(state)
    edit(edited)
    return edited


BAD_LOADS: list[tuple[str, Callable[[list[torch.nn.Parameter]], ro.ChainOptimizer], Callable[..., None], str]]
BAD_LOADS = [
    ("adam-into-sgd", lambda p: ro.sgd(p, momentum=0.9), lambda s: None, "keys"),
    (
        "amsgrad-mismatch",
        lambda p: ro.adam(p, amsgrad=False),
        lambda s: s["state"][0].update(max_exp_avg_sq=s["state"][0]["exp_avg"]),
        "unexpected",
    ),
    ("missing-key", ro.adam, lambda s: s["state"][1].pop("exp_avg_sq"), "missing"),
    ("shape", ro.adam, lambda s: s["state"][0].update(exp_avg=torch.zeros(3)), "shape"),
    ("negative-step", ro.adam, lambda s: s["state"][0].update(step=torch.tensor(-2.0)), "step"),
    ("fractional-step", ro.adam, lambda s: s["state"][0].update(step=1.5), "step"),
    ("group-count", ro.adam, lambda s: s["param_groups"].append(dict(s["param_groups"][0])), "param groups"),
    ("group-size", ro.adam, lambda s: s["param_groups"][0]["params"].pop(), "parameters"),
    ("unknown-key", ro.adam, lambda s: s["param_groups"][0].update(momentum_decay=4e-3), "momentum_decay"),
    ("capturable", ro.adam, lambda s: s["param_groups"][0].update(capturable=True), "torch.compile"),
    ("fused-value", ro.adam, lambda s: s["param_groups"][0].update(fused="yes"), "fused must be"),
    ("bad-beta", ro.adam, lambda s: s["param_groups"][0].update(betas=(1.5, 0.999)), "beta1"),
    ("not-a-dict", ro.adam, lambda s: s.pop("state"), "state"),
]


@pytest.mark.parametrize(("label", "make", "edit", "match"), BAD_LOADS, ids=[c[0] for c in BAD_LOADS])
def test_malformed_state_is_refused_at_load_and_changes_nothing(
    label: str,
    make: Callable[[list[torch.nn.Parameter]], ro.ChainOptimizer],
    edit: Callable[..., None],
    match: str,
) -> None:
    del label
    params, state = _torch_adam_state()
    ours = _fresh_like(params)
    opt = make(ours)
    _grads(ours, torch.Generator().manual_seed(5))
    opt.step()
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(RavineError, match=match):
        opt.load_state_dict(_edit(state, edit))
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for key, entry in before["state"].items():
        for name, value in entry.items():
            assert torch.equal(after["state"][key][name], value)


def test_torch_sgd_state_into_a_scheduled_group_is_refused() -> None:
    params = random_tensors(torch.float64)
    reference = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    _grads(params, torch.Generator().manual_seed(0))
    reference.step()
    opt = ro.sgd(_fresh_like(params), momentum=0.9, schedule=ro.CosineDecay(10))
    with pytest.raises(DataError, match="no update count"):
        opt.load_state_dict(reference.state_dict())


# ---------------------------------------------------------------------------------------- torch keywords
PRESETS_WITH_TORCH = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "radam": torch.optim.RAdam,
}


@pytest.mark.parametrize("name", list(PRESETS_WITH_TORCH))
@pytest.mark.parametrize("keyword", ["capturable", "differentiable"])
def test_unsupported_torch_keywords_say_what_to_use(name: str, keyword: str) -> None:
    """(``fused=True``: tests/optim/test_optim_fused.py.)"""
    preset: Callable[..., ro.ChainOptimizer] = getattr(ro, name)
    preset(random_tensors(torch.float32), **{keyword: False})  # the torch default is accepted
    with pytest.raises(UnsupportedError, match=rf"{keyword}=True .*torch\.(compile|func)"):
        preset(random_tensors(torch.float32), **{keyword: True})


@pytest.mark.parametrize("name", list(PRESETS_WITH_TORCH))
def test_maximize_and_foreach_per_group_equal_torch(name: str) -> None:
    """Two groups, one maximising with foreach off; the other minimising: equal to torch's for 20 steps."""
    results = []
    for make in (getattr(ro, name), PRESETS_WITH_TORCH[name]):
        params = random_tensors(torch.float64)
        groups = [{"params": params[:2], "maximize": True, "foreach": False}, {"params": params[2:]}]
        opt = make(groups, lr=1e-2)
        generator = torch.Generator().manual_seed(4)
        for _ in range(20):
            for p in params:
                p.grad = torch.sin(p.detach()) + 0.1 * torch.randn(
                    p.shape, generator=generator, dtype=p.dtype
                )
            opt.step()
        results.append(params)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_bad_keyword_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="maximize"):
        ro.adam(random_tensors(torch.float32), maximize="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="foreach"):
        ro.adam([{"params": random_tensors(torch.float32), "foreach": 1}])


def test_plan_cache_stays_bounded_under_one_cycle() -> None:
    """OneCycleLR cycles betas every step: one plan per distinct value, kept to a bounded number."""
    params = random_tensors(torch.float32)
    opt = ro.adam(params, lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=400)
    generator = torch.Generator().manual_seed(0)
    for _ in range(400):
        _grads(params, generator)
        opt.step()
        scheduler.step()
    assert 1 <= len(opt._plans) <= 64


def test_float16_adam_with_eps_that_underflows_names_eps() -> None:
    params = [torch.nn.Parameter(torch.randn(4, dtype=torch.float16))]
    with pytest.raises(ConfigError, match=r"eps=1e-08 rounds to 0 in torch.float16"):
        ro.adam(params, lr=1e-3)
    ro.adam(params, lr=1e-3, eps=1e-4)  # a representable eps is fine
