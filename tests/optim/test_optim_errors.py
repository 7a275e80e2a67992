"""Bad inputs raise clear errors; valid hyper-parameters never raise and keep parameters finite."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch
from _helpers import random_tensors, ravine_preset
from hypothesis import given
from hypothesis import strategies as st

import ravine.optim as ro
from ravine.errors import ConfigError, NonFiniteError, UnsupportedError


def _run(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], steps: int = 20) -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        for p in params:
            p.grad = p.detach() + torch.randn(p.shape, generator=generator, dtype=p.dtype)
        opt.step()


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("sgd", {"lr": -0.1}, "lr=-0.1"),
    ("adam", {"lr": float("nan")}, "lr=nan"),
    ("sgd", {"momentum": -0.5}, "momentum=-0.5"),
    ("sgd", {"nesterov": True}, "nesterov"),
    ("momentum", {"nesterov": True, "dampening": 0.1}, "dampening=0.1"),
    ("sgd", {"weight_decay": -1.0}, "weight_decay=-1.0"),
    ("rmsprop", {"alpha": 1.0}, "alpha=1.0"),
    ("rmsprop", {"alpha": -0.1}, "alpha=-0.1"),
    ("rmsprop", {"eps": 0.0}, "eps=0.0"),
    ("adam", {"betas": (1.0, 0.999)}, "beta1=1.0"),
    ("adam", {"betas": (0.9, 1.5)}, "beta2=1.5"),
    ("adam", {"betas": (0.9,)}, "betas"),
    ("adamw", {"eps": -1e-8}, "eps=-1e-08"),
    ("radam", {"betas": (0.9, -0.1)}, "beta2=-0.1"),
    ("adagrad", {"eps": 0.0}, "eps=0.0"),
    ("adagrad", {"lr_decay": -1.0}, "lr_decay=-1.0"),
    ("adagrad", {"initial_accumulator_value": -1.0}, "initial_accumulator_value=-1.0"),
]


@pytest.mark.parametrize(("name", "kwargs", "named"), BAD, ids=[f"{n}-{m}" for n, _, m in BAD])
def test_bad_hyper_parameters_raise_config_error_naming_the_value(
    name: str, kwargs: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        ravine_preset(name)(random_tensors(torch.float32), **kwargs)


def test_bad_group_hyper_parameter_raises_and_adds_no_group() -> None:
    params = random_tensors(torch.float32)
    opt = ro.adam(params[:2])
    with pytest.raises(ConfigError, match=re.escape("beta2=2.0")):
        opt.add_param_group({"params": params[2:], "betas": (0.9, 2.0)})
    assert len(opt.param_groups) == 1


def test_non_float_parameters_are_unsupported() -> None:
    with pytest.raises(UnsupportedError, match="floating point"):
        ro.sgd([torch.zeros(3, dtype=torch.int64)], lr=0.1)


def test_sparse_gradients_are_unsupported() -> None:
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    opt = ro.adam(embedding.parameters())
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(UnsupportedError, match="sparse"):
        opt.step()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", list(ro.PRESETS))
def test_non_finite_gradient_raises_before_touching_anything(name: str, bad: float) -> None:
    params = random_tensors(torch.float32)
    opt = ravine_preset(name)(params, weight_decay=0.01)
    _run(opt, params, steps=3)
    before = [p.detach().clone() for p in params]
    state_before = {
        k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in opt.state[params[0]].items()
    }
    for p in params:
        p.grad = torch.ones_like(p)
    params[3].grad = torch.full_like(params[3], bad)
    with pytest.raises(NonFiniteError, match="no parameter or state was changed"):
        opt.step()
    for a, b in zip(params, before, strict=True):
        assert torch.equal(a.detach(), b)
    for key, value in opt.state[params[0]].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, state_before[key])
        else:
            assert value == state_before[key]


def test_skip_mode_skips_and_counts() -> None:
    params = random_tensors(torch.float64)
    opt = ro.adam(params, nonfinite="skip")
    _run(opt, params, steps=2)
    before = [p.detach().clone() for p in params]
    params[0].grad = torch.full_like(params[0], math.nan)
    opt.step()
    opt.step()
    assert opt.skipped_steps == 2
    assert all(torch.equal(a.detach(), b) for a, b in zip(params, before, strict=True))
    assert opt.state_dict()["ravine"] == {"skipped_steps": 2}


def test_unknown_nonfinite_policy() -> None:
    with pytest.raises(ConfigError, match="nonfinite"):
        ro.adam(random_tensors(torch.float32), nonfinite="ignore")  # type: ignore[arg-type]


unit = st.floats(min_value=0.0, max_value=0.999)
lrs = st.floats(min_value=0.0, max_value=0.05)
decays = st.floats(min_value=0.0, max_value=0.1)
epss = st.floats(min_value=1e-10, max_value=1.0)


@st.composite
def valid_configs(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(ro.PRESETS))
    kwargs: dict[str, Any] = {"lr": draw(lrs), "weight_decay": draw(decays)}
    if name in ("sgd", "momentum"):
        mu = draw(st.floats(min_value=0.0, max_value=0.95))
        nesterov = draw(st.booleans()) and mu > 0
        kwargs.update(momentum=mu, nesterov=nesterov, dampening=0.0 if nesterov else draw(unit))
    elif name == "adagrad":
        kwargs.update(lr_decay=draw(decays), eps=draw(epss), initial_accumulator_value=draw(decays))
    elif name == "rmsprop":
        kwargs.update(
            alpha=draw(unit), eps=draw(epss), momentum=draw(st.floats(0.0, 0.9)), centered=draw(st.booleans())
        )
    else:
        kwargs.update(betas=(draw(unit), draw(unit)), eps=draw(epss))
    return name, kwargs


@given(valid_configs())
def test_valid_hyper_parameters_never_raise_and_stay_finite(config: tuple[str, dict[str, Any]]) -> None:
    name, kwargs = config
    params = random_tensors(torch.float64)
    opt = ravine_preset(name)(params, **kwargs)
    _run(opt, params, steps=15)
    assert all(torch.isfinite(p).all() for p in params)
    for p in params:
        assert torch.isfinite(opt.effective_lr(p)).all()


bad_unit = st.one_of(st.floats(max_value=-1e-6, allow_nan=False), st.floats(min_value=1.0, allow_nan=False))


RATE_SETTERS: dict[str, Any] = {
    "alpha": lambda params, value: ro.rmsprop(params, alpha=value),
    "beta1": lambda params, value: ro.adam(params, betas=(value, 0.999)),
    "beta2": lambda params, value: ro.radam(params, betas=(0.9, value)),
}


@given(st.sampled_from(sorted(RATE_SETTERS)), bad_unit)
def test_out_of_range_rates_raise_config_error_naming_the_value(which: str, value: float) -> None:
    params = random_tensors(torch.float32)
    with pytest.raises(ConfigError) as info:
        RATE_SETTERS[which](params, value)
    assert f"{which}={value!r}" in str(info.value)


NEGATIVE_SETTERS: dict[str, Any] = {
    "lr": lambda params, value: ro.adam(params, lr=value),
    "eps": lambda params, value: ro.rmsprop(params, eps=value),
    "momentum": lambda params, value: ro.sgd(params, momentum=value),
}


@given(
    st.sampled_from(sorted(NEGATIVE_SETTERS)),
    st.one_of(st.floats(max_value=-1e-300, allow_nan=False), st.just(math.nan)),
)
def test_negative_values_raise_config_error(which: str, value: float) -> None:
    params = random_tensors(torch.float32)
    with pytest.raises(ConfigError, match=which):
        NEGATIVE_SETTERS[which](params, value)


def test_huge_finite_gradients_are_not_mistaken_for_non_finite() -> None:
    # The fast check's sum overflows to inf here (35 × 3e37 > 3.4e38); the exact check must clear it.
    params = random_tensors(torch.float32)
    opt = ro.sgd(params, lr=1e-40)
    for p in params:
        p.grad = torch.full_like(p, 3e37)
    assert not bool(params[0].grad.sum().isfinite())  # type: ignore[union-attr]
    opt.step()
    assert all(bool(p.isfinite().all()) for p in params)
