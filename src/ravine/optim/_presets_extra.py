r"""Presets beyond the lectures: torch 2.13's NAdam, Adamax, Adadelta, Rprop, Adafactor, Muon, and Lion.

Same conventions as :mod:`ravine.optim._presets`: torch's argument names, defaults and state keys (a torch
state loads exactly), every torch keyword, per-group hyper-parameters.

==========  ========================================================================================
preset      parts (λ = weight_decay)
==========  ========================================================================================
nadam       chain(WeightDecay(λ), NAdam(β₁, β₂, eps, ψ)) or chain(NAdam(...), DecoupledWeightDecay(λ))
adamax      chain(WeightDecay(λ), Adamax(β₁, β₂, eps))
adadelta    chain(WeightDecay(λ), Adadelta(ρ, eps)), lr = 1.0
rprop       Rprop(etas, step_sizes) (the step sizes start at lr)
lion        chain(Lion(β₁, β₂), DecoupledWeightDecay(λ))   (Chen et al. 2023; lr 1e-4, betas (0.9, 0.99))
adafactor   Adafactor(β₂-decay, ε₁, ε₂, d, λ): factored σ_t, relative clipped η_t (lr 1e-2)
muon        chain(MuonMomentum(μ, nesterov), NewtonSchulz(a, b, c, k, ε, adjust_lr_fn),
            DecoupledWeightDecay(λ))   (2-D parameters only; lr 1e-3, λ 0.1, μ 0.95)
==========  ========================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ravine.errors import ConfigError
from ravine.optim._adaptive import Adadelta, Adamax, NAdam
from ravine.optim._factored import Adafactor
from ravine.optim._groups import torch_keywords
from ravine.optim._optimizer import ChainOptimizer, NonFinitePolicy
from ravine.optim._orthogonal import MuonMomentum, NewtonSchulz
from ravine.optim._presets import Params, _betas, _coupled
from ravine.optim._schedules import Schedule
from ravine.optim._sign import Lion, Rprop
from ravine.optim._transforms import DecoupledWeightDecay, Transform, chain

__all__ = ["adadelta", "adafactor", "adamax", "lion", "muon", "nadam", "rprop"]


def _nadam_transform(group: Mapping[str, Any]) -> Transform:
    beta1, beta2 = _betas("nadam", group["betas"])
    core = NAdam(beta1, beta2, eps=group["eps"], momentum_decay=group["momentum_decay"])
    if group["decoupled_weight_decay"]:
        return chain(core, DecoupledWeightDecay(group["weight_decay"]))
    return chain(*_coupled(group, "nadam"), core)


def _adamax_transform(group: Mapping[str, Any]) -> Transform:
    beta1, beta2 = _betas("adamax", group["betas"])
    return chain(*_coupled(group, "adamax"), Adamax(beta1, beta2, eps=group["eps"]))


def _adadelta_transform(group: Mapping[str, Any]) -> Transform:
    return chain(*_coupled(group, "adadelta"), Adadelta(group["rho"], eps=group["eps"]))


def _rprop_transform(group: Mapping[str, Any]) -> Transform:
    return Rprop(tuple(group["etas"]), tuple(group["step_sizes"]))


def _lion_transform(group: Mapping[str, Any]) -> Transform:
    beta1, beta2 = _betas("lion", group["betas"])
    return chain(Lion(beta1, beta2), DecoupledWeightDecay(group["weight_decay"]))


def _adafactor_transform(group: Mapping[str, Any]) -> Transform:
    eps = group["eps"]
    if not isinstance(eps, tuple | list) or len(eps) != 2:
        raise ConfigError(f"adafactor: eps must be a pair (eps1 or None, eps2), got {eps=!r}")
    return Adafactor(
        group["beta2_decay"], eps1=eps[0], eps2=eps[1], d=group["d"], weight_decay=group["weight_decay"]
    )


def _muon_transform(group: Mapping[str, Any]) -> Transform:
    orthogonal = NewtonSchulz(
        tuple(group["ns_coefficients"]),
        ns_steps=group["ns_steps"],
        eps=group["eps"],
        adjust_lr_fn=group["adjust_lr_fn"],
    )
    momentum = MuonMomentum(group["momentum"], nesterov=group["nesterov"])
    return chain(momentum, orthogonal, DecoupledWeightDecay(group["weight_decay"]))


def _build(  # noqa: PLR0917 (private helper, one call per preset)
    name: str,
    params: Params,
    factory: Any,
    lr: float | torch.Tensor,
    defaults: dict[str, Any],
    schedule: Schedule | None,
    nonfinite: NonFinitePolicy,
    keywords: dict[str, Any],
) -> ChainOptimizer:
    return ChainOptimizer(
        params,
        factory,
        lr=lr,
        schedule=schedule,
        defaults=defaults,
        nonfinite=nonfinite,
        name=name,
        **keywords,
    )


def nadam(  # noqa: PLR0917 (torch.optim's positional signature)
    params: Params,
    lr: float | torch.Tensor = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
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
    r"""torch.optim.NAdam: Adam with Nesterov momentum and the μ_t = β₁(1 − ½·0.96^{tψ}) schedule."""
    defaults = {
        "betas": betas,
        "eps": eps,
        "weight_decay": weight_decay,
        "momentum_decay": momentum_decay,
        "decoupled_weight_decay": decoupled_weight_decay,
    }
    keywords = torch_keywords(maximize, foreach, fused, capturable, differentiable)
    return _build("nadam", params, _nadam_transform, lr, defaults, schedule, nonfinite, keywords)


def adamax(
    params: Params,
    lr: float | torch.Tensor = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.Adamax: θ ← θ − η/(1−β₁^t) · m_t/u_t with u_t = max(β₂u_{t−1}, |g| + ε)."""
    defaults = {"betas": betas, "eps": eps, "weight_decay": weight_decay}
    keywords = torch_keywords(maximize, foreach, fused, capturable, differentiable)
    return _build("adamax", params, _adamax_transform, lr, defaults, schedule, nonfinite, keywords)


def adadelta(
    params: Params,
    lr: float | torch.Tensor = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    *,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.Adadelta: d = sqrt(u_{t−1}+ε)/sqrt(v_t+ε)·g, θ ← θ − η·d."""
    defaults = {"rho": rho, "eps": eps, "weight_decay": weight_decay}
    keywords = torch_keywords(maximize, foreach, fused, capturable, differentiable)
    return _build("adadelta", params, _adadelta_transform, lr, defaults, schedule, nonfinite, keywords)


def rprop(
    params: Params,
    lr: float | torch.Tensor = 1e-2,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
    *,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.Rprop: per-element step sizes grown by η₊ / shrunk by η₋ with the sign of g·g_prev."""
    defaults = {"etas": etas, "step_sizes": step_sizes}
    keywords = torch_keywords(maximize, foreach, fused, capturable, differentiable)
    return _build("rprop", params, _rprop_transform, lr, defaults, None, nonfinite, keywords)


def lion(
    params: Params,
    lr: float | torch.Tensor = 1e-4,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 0.0,
    *,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""Lion (Chen et al. 2023): θ ← θ − η(sign(β₁m + (1−β₁)g) + λθ); m ← β₂m + (1−β₂)g.

    Example:
        >>> import torch
        >>> from ravine.optim import lion
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = lion([w], lr=0.1)
        >>> w.grad = torch.tensor([0.3, -5.0])
        >>> opt.step()
        >>> w.detach()  # every coordinate moves by exactly lr
        tensor([ 0.9000, -1.9000])
    """
    defaults = {"betas": betas, "weight_decay": weight_decay}
    keywords = torch_keywords(maximize, foreach, fused, capturable, differentiable)
    return _build("lion", params, _lion_transform, lr, defaults, schedule, nonfinite, keywords)


def adafactor(  # noqa: PLR0917 (torch.optim's positional signature)
    params: Params,
    lr: float | torch.Tensor = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: float = 0.0,
    *,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.Adafactor: factored second moments (row and column means), relative step size ρ_t·RMS(θ).

    See :mod:`ravine.optim._factored`; a torch Adafactor state (``row_var``/``col_var``/``variance``) loads
    exactly.

    Example:
        >>> import torch
        >>> from ravine.optim import adafactor
        >>> w = torch.nn.Parameter(torch.ones(4, 3))
        >>> opt = adafactor([w])
        >>> w.grad = torch.full((4, 3), 0.5)
        >>> opt.step()
        >>> sorted(opt.state[w])  # R + C numbers of second moment instead of R·C
        ['col_var', 'row_var', 'step']
        >>> round(float(w.detach()[0, 0]), 4)  # θ − lr·RMS(θ)·sign(g) on the first step
        0.99
    """
    defaults = {"beta2_decay": beta2_decay, "eps": eps, "d": d, "weight_decay": weight_decay}
    keywords = torch_keywords(maximize, foreach, fused, capturable, differentiable)
    return _build("adafactor", params, _adafactor_transform, lr, defaults, schedule, nonfinite, keywords)


def muon(  # noqa: PLR0917 (torch.optim's positional signature)
    params: Params,
    lr: float | torch.Tensor = 1e-3,
    weight_decay: float = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = (3.4445, -4.7750, 2.0315),
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    *,
    schedule: Schedule | None = None,
    nonfinite: NonFinitePolicy = "raise",
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> ChainOptimizer:
    r"""torch.optim.Muon: momentum orthogonalised by Newton–Schulz (bfloat16), for 2-D parameters only.

    Raises:
        UnsupportedError: a parameter that is not a real 2-D matrix (give those to e.g. :func:`adamw`).

    Example:
        >>> import torch
        >>> from ravine.optim import muon
        >>> w = torch.nn.Parameter(torch.zeros(3, 3))
        >>> opt = muon([w], lr=0.1, weight_decay=0.0)
        >>> w.grad = torch.diag(torch.tensor([1.0, 2.0, 3.0]))
        >>> opt.step()
        >>> bool((torch.linalg.svdvals(w.detach()) > 0.03).all())  # every direction moved, not only the largest
        True
    """
    defaults = {
        "weight_decay": weight_decay,
        "momentum": momentum,
        "nesterov": nesterov,
        "ns_coefficients": ns_coefficients,
        "eps": eps,
        "ns_steps": ns_steps,
        "adjust_lr_fn": adjust_lr_fn,
    }
    keywords = torch_keywords(maximize, foreach, fused, capturable, differentiable)
    return _build("muon", params, _muon_transform, lr, defaults, schedule, nonfinite, keywords)
