r"""Presets: torch.optim's optimizers as chains, with torch's argument names and defaults.

Each preset returns a :class:`~ravine.optim.ChainOptimizer` whose param groups carry torch's
hyper-parameter names (``momentum``, ``betas``, ``weight_decay``, ...), so per-group values, torch's LR
schedulers and state dicts work as with torch. Every preset is also buildable from parts:

==========  =====================================================================================
preset      parts (λ = weight_decay)
==========  =====================================================================================
sgd         chain(WeightDecay(λ), Momentum(μ, dampening=τ, nesterov=…))   (no Momentum if μ = 0)
momentum    sgd with μ = 0.9 by default
adagrad     chain(WeightDecay(λ), AdagradSum(eps, initial_accumulator_value)), schedule
            InverseTimeDecay(lr_decay); ``mean=True``: the lecture's AdagradMean
rmsprop     chain(WeightDecay(λ), RMSProp(α, eps, centered), Momentum(μ))
adam        chain(WeightDecay(λ), Adam(β₁, β₂, eps, amsgrad))
adamw       chain(Adam(β₁, β₂, eps, amsgrad), DecoupledWeightDecay(λ))
radam       chain(WeightDecay(λ), RAdam(β₁, β₂, eps)) or chain(RAdam(...), DecoupledWeightDecay(λ))
==========  =====================================================================================

Example:
    >>> import torch
    >>> from ravine.optim import adam
    >>> _ = torch.manual_seed(0)
    >>> ours, theirs = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    >>> theirs.load_state_dict(ours.state_dict())
    <All keys matched successfully>
    >>> pairs = [(ours, adam(ours.parameters(), lr=0.01)),
    ...          (theirs, torch.optim.Adam(theirs.parameters(), lr=0.01))]
    >>> for _ in range(3):
    ...     for model, opt in pairs:
    ...         opt.zero_grad()
    ...         model(torch.ones(2, 3)).pow(2).mean().backward()
    ...         opt.step()
    >>> torch.allclose(ours.weight, theirs.weight, rtol=1e-6)
    True
    >>> opt = pairs[0][1]
    >>> round(opt.effective_lr(ours.bias).item(), 4)  # η/σ_t, with σ_t = (sqrt(v̂_t) + ε)(1 − β₁^t)
    0.0332
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ravine._validate import check_nonnegative
from ravine.errors import ConfigError
from ravine.optim import _fused
from ravine.optim._optimizer import ChainOptimizer, NonFinitePolicy
from ravine.optim._preconditioners import AdagradMean, AdagradSum, Adam, RAdam, RMSProp
from ravine.optim._schedules import InverseTimeDecay, Schedule
from ravine.optim._transforms import DecoupledWeightDecay, Momentum, Transform, WeightDecay, chain

__all__ = ["adagrad", "adam", "adamw", "momentum", "radam", "rmsprop", "sgd"]

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def _betas(owner: str, betas: Any) -> tuple[float, float]:
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ConfigError(f"{owner}: betas must be a pair (beta1, beta2), got {betas=!r}") from None
    return beta1, beta2


def _coupled(group: Mapping[str, Any], owner: str) -> list[Transform]:
    decay = check_nonnegative(owner, "weight_decay", group["weight_decay"])
    return [WeightDecay(decay)] if decay else []


def _sgd_transform(group: Mapping[str, Any]) -> Transform:
    parts = _coupled(group, "sgd")
    mu = check_nonnegative("sgd", "momentum", group["momentum"])
    if mu > 0:
        parts.append(Momentum(mu, dampening=group["dampening"], nesterov=group["nesterov"]))
    elif group["nesterov"]:
        raise ConfigError(f"sgd: nesterov=True needs momentum > 0, got momentum={group['momentum']!r}")
    else:
        Momentum(0.0, dampening=group["dampening"])  # validates dampening
    return chain(*parts)


def _adagrad_transform(group: Mapping[str, Any]) -> Transform:
    parts = _coupled(group, "adagrad")
    if group["mean"]:
        if group["initial_accumulator_value"] != 0:
            raise ConfigError(
                "adagrad: mean=True takes no initial_accumulator_value, "
                f"got initial_accumulator_value={group['initial_accumulator_value']!r}"
            )
        parts.append(AdagradMean(eps=group["eps"]))
    else:
        parts.append(
            AdagradSum(eps=group["eps"], initial_accumulator_value=group["initial_accumulator_value"])
        )
    return chain(*parts)


def _adagrad_schedule(group: Mapping[str, Any]) -> Schedule | None:
    decay = check_nonnegative("adagrad", "lr_decay", group["lr_decay"])
    return InverseTimeDecay(decay) if decay else None


def _rmsprop_transform(group: Mapping[str, Any]) -> Transform:
    parts = _coupled(group, "rmsprop")
    parts.append(RMSProp(group["alpha"], eps=group["eps"], centered=group["centered"]))
    mu = check_nonnegative("rmsprop", "momentum", group["momentum"])
    if mu > 0:
        parts.append(Momentum(mu))
    return chain(*parts)


def _adam_transform(group: Mapping[str, Any]) -> Transform:
    """Adam, or AdamW with ``decoupled_weight_decay=True`` (torch 2.13's Adam keyword; AdamW's default)."""
    beta1, beta2 = _betas("adam", group["betas"])
    core = Adam(beta1, beta2, eps=group["eps"], amsgrad=group["amsgrad"])
    if group.get("decoupled_weight_decay"):
        return chain(core, DecoupledWeightDecay(group["weight_decay"]))
    return chain(*_coupled(group, "adam"), core)


def _radam_transform(group: Mapping[str, Any]) -> Transform:
    beta1, beta2 = _betas("radam", group["betas"])
    core = RAdam(beta1, beta2, eps=group["eps"])
    if group["decoupled_weight_decay"]:
        return chain(core, DecoupledWeightDecay(group["weight_decay"]))
    return chain(*_coupled(group, "radam"), core)


def sgd(  # noqa: PLR0917 (torch.optim's positional signature)
    params: Params,
    lr: float | torch.Tensor = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.SGD: b_t = μb_{t−1} + (1−τ)(g + λθ), b_1 = g_1 + λθ; θ ← θ − η·b_t.

    Nesterov uses g + λθ + μb_t instead of b_t.
    """
    defaults = {
        "momentum": momentum,
        "dampening": dampening,
        "weight_decay": weight_decay,
        "nesterov": nesterov,
    }
    return ChainOptimizer(
        params,
        _sgd_transform,
        lr=lr,
        schedule=schedule,
        defaults=defaults,
        nonfinite=nonfinite,
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        capturable=capturable,
        differentiable=differentiable,
        fused_rule=_fused.sgd,
        name="sgd",
    )


def momentum(  # noqa: PLR0917 (torch.optim's positional signature)
    params: Params,
    lr: float | torch.Tensor = 1e-3,
    momentum: float = 0.9,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    """SGD with heavy-ball momentum μ = 0.9 by default (torch.optim.SGD(momentum=0.9))."""
    return sgd(
        params,
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
        schedule=schedule,
        nonfinite=nonfinite,
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        capturable=capturable,
        differentiable=differentiable,
    )


def adagrad(  # noqa: PLR0917 (torch.optim's positional signature)
    params: Params,
    lr: float | torch.Tensor = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    *,
    mean: bool = False,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.Adagrad: s_t = s_{t−1} + g², θ ← θ − η/(1 + (t−1)·lr_decay) · g/(sqrt(s_t) + ε).

    ``mean=True`` gives the lecture's root-mean-square σ_t = sqrt(s_t/t) + ε instead.
    """
    defaults = {
        "lr_decay": lr_decay,
        "weight_decay": weight_decay,
        "initial_accumulator_value": initial_accumulator_value,
        "eps": eps,
        "mean": mean,
    }
    return ChainOptimizer(
        params,
        _adagrad_transform,
        lr=lr,
        schedule=_adagrad_schedule,
        defaults=defaults,
        nonfinite=nonfinite,
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        capturable=capturable,
        differentiable=differentiable,
        fused_rule=_fused.adagrad,
        name="adagrad",
    )


def rmsprop(  # noqa: PLR0917 (torch.optim's positional signature)
    params: Params,
    lr: float | torch.Tensor = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    *,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.RMSprop: v_t = αv + (1−α)g², θ ← θ − η·g/(sqrt(v_t) + ε); with momentum b = μb + g/σ."""
    defaults = {
        "alpha": alpha,
        "eps": eps,
        "weight_decay": weight_decay,
        "momentum": momentum,
        "centered": centered,
    }
    return ChainOptimizer(
        params,
        _rmsprop_transform,
        lr=lr,
        schedule=schedule,
        defaults=defaults,
        nonfinite=nonfinite,
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        capturable=capturable,
        differentiable=differentiable,
        name="rmsprop",
    )


def adam(  # noqa: PLR0917 (torch.optim's positional signature)
    params: Params,
    lr: float | torch.Tensor = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    *,
    decoupled_weight_decay: bool = False,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.Adam (coupled L2 weight decay): θ ← θ − η·m̂_t/(sqrt(v̂_t) + ε)."""
    defaults = {
        "betas": betas,
        "eps": eps,
        "weight_decay": weight_decay,
        "amsgrad": amsgrad,
        "decoupled_weight_decay": decoupled_weight_decay,
    }
    return ChainOptimizer(
        params,
        _adam_transform,
        lr=lr,
        schedule=schedule,
        defaults=defaults,
        nonfinite=nonfinite,
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        capturable=capturable,
        differentiable=differentiable,
        fused_rule=_fused.adam,
        name="adam",
    )


def adamw(  # noqa: PLR0917 (torch.optim's positional signature)
    params: Params,
    lr: float | torch.Tensor = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.AdamW: θ ← (1 − ηλ)θ − η·m̂_t/(sqrt(v̂_t) + ε)."""
    defaults = {
        "betas": betas,
        "eps": eps,
        "weight_decay": weight_decay,
        "amsgrad": amsgrad,
        "decoupled_weight_decay": True,
    }
    return ChainOptimizer(
        params,
        _adam_transform,
        lr=lr,
        schedule=schedule,
        defaults=defaults,
        nonfinite=nonfinite,
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        capturable=capturable,
        differentiable=differentiable,
        fused_rule=_fused.adam,
        name="adamw",
    )


def radam(  # noqa: PLR0917 (torch.optim's positional signature)
    params: Params,
    lr: float | torch.Tensor = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    *,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.RAdam: Adam's moments with variance rectification once ρ_t > 5 (step 6 at β₂ = 0.999)."""
    defaults = {
        "betas": betas,
        "eps": eps,
        "weight_decay": weight_decay,
        "decoupled_weight_decay": decoupled_weight_decay,
    }
    return ChainOptimizer(
        params,
        _radam_transform,
        lr=lr,
        schedule=schedule,
        defaults=defaults,
        nonfinite=nonfinite,
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        capturable=capturable,
        differentiable=differentiable,
        name="radam",
    )
