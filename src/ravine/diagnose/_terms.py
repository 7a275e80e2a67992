"""The optimizer's own terms, read from its param groups and state: what update is actually taken.

``p.grad`` is not always the gradient being minimised: coupled weight decay (torch's SGD/Adam/RMSprop/Adagrad
``weight_decay``, ravine's ``WeightDecay``) minimises L + λ‖θ‖²/2, whose gradient is g + λθ; decoupled decay
(AdamW, ``DecoupledWeightDecay``) shrinks θ after the preconditioner; momentum and an adaptive denominator σ
change the stability limit of the step. :func:`optimizer_terms` reads them for torch.optim and ravine.optim
optimizers (first param group; groups that differ are noted), never changing anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["OptimizerTerms", "effective_lrs", "optimizer_terms"]


@dataclass(frozen=True)
class OptimizerTerms:
    """Hyper-parameters that shape the update (first param group).

    Attributes:
        name: The optimizer's class name.
        lr: η.
        coupled_decay: λ of L2 weight decay added to the gradient (g + λθ).
        decoupled_decay: λ of decoupled decay (θ ← (1 − ηλ)θ − η·d).
        momentum: β of heavy-ball momentum (torch SGD ``momentum``), 0 if none.
        dampening: torch SGD's dampening.
        nesterov: Nesterov momentum.
        ema_beta: β₁ of an EMA momentum (Adam family), 0 if none.
        adaptive: The update divides by a per-element σ (Adam, RMSprop, Adagrad, ...).
        known: Whether the optimizer's rule was recognised (False: terms are torch's defaults guessed).
    """

    name: str
    lr: float = math.nan
    coupled_decay: float = 0.0
    decoupled_decay: float = 0.0
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    ema_beta: float = 0.0
    adaptive: bool = False
    known: bool = True

    def stability_limit(self) -> tuple[float, str]:
        """The limit on λ_max of the optimizer-scaled Hessian (η·H, or E^½HE^½ for adaptive ones), and why.

        Quadratic analysis (Cohen et al. 2021, App. and 2022): GD is stable while η·λ < 2; heavy-ball
        momentum β while η·λ < 2 + 2β (dampening d scales η by 1 − d); Nesterov while η·λ < (2 + 2β)/(1 + 2β);
        an EMA momentum m ← β₁m + (1 − β₁)g (Adam) while the preconditioned sharpness < (2 + 2β₁)/(1 − β₁).
        """
        if self.ema_beta > 0:
            b = self.ema_beta
            return (2 + 2 * b) / (1 - b), f"(2 + 2β₁)/(1 − β₁) with β₁ = {b:g}"
        if self.momentum > 0:
            b = self.momentum
            scale = 1.0 - self.dampening
            if self.nesterov:
                return (2 + 2 * b) / ((1 + 2 * b) * scale), f"(2 + 2β)/(1 + 2β) with Nesterov β = {b:g}"
            return (2 + 2 * b) / scale, f"2 + 2β with heavy-ball β = {b:g}"
        return 2.0, "2 (no momentum)"


_ADAPTIVE = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "Adafactor")


def _ravine_terms(optimizer: Any, group: dict[str, Any]) -> OptimizerTerms | None:
    plan = getattr(optimizer, "_plan", None)
    if not callable(plan):
        return None
    try:
        transform = plan(group)[0]
    except Exception:
        return None
    parts = list(getattr(transform, "transforms", (transform,)))
    fields: dict[str, Any] = {"name": type(optimizer).__name__, "lr": float(group.get("lr", math.nan))}
    for part in parts:
        kind = type(part).__name__
        if kind == "WeightDecay":
            fields["coupled_decay"] = float(part.weight_decay)
        elif kind == "DecoupledWeightDecay":
            fields["decoupled_decay"] = float(part.weight_decay)
        elif kind == "Momentum":
            fields.update(momentum=float(part.momentum), dampening=float(part.dampening))
            fields["nesterov"] = bool(part.nesterov)
        elif kind == "EmaMomentum":
            fields["ema_beta"] = float(part.beta)
        elif kind in ("Adam", "RAdam"):
            fields.update(ema_beta=float(part.beta1), adaptive=True)
        elif kind in ("RMSProp", "AdagradSum", "AdagradMean"):
            fields["adaptive"] = True
            if float(getattr(part, "momentum", 0.0)) > 0:
                fields["momentum"] = float(part.momentum)
    return OptimizerTerms(**fields)


def optimizer_terms(optimizer: Any) -> OptimizerTerms:
    """The update's terms for a torch.optim or ravine.optim optimizer (see :class:`OptimizerTerms`).

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> terms = optimizer_terms(torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=1e-4))
        >>> terms.coupled_decay, terms.stability_limit()[0]
        (0.0001, 3.8)
    """
    if optimizer is None or not getattr(optimizer, "param_groups", None):
        return OptimizerTerms("none", known=False)
    group = optimizer.param_groups[0]
    name = type(optimizer).__name__
    ravine = _ravine_terms(optimizer, group)
    if ravine is not None:
        return ravine
    lr = float(group.get("lr", math.nan))
    decay = float(group.get("weight_decay", 0.0) or 0.0)
    decoupled = name == "AdamW" or bool(group.get("decoupled_weight_decay", False))
    betas = group.get("betas")
    beta1 = float(betas[0]) if isinstance(betas, tuple | list) and betas else 0.0
    momentum = float(group.get("momentum", 0.0) or 0.0)
    return OptimizerTerms(
        name=name,
        lr=lr,
        coupled_decay=0.0 if decoupled else decay,
        decoupled_decay=decay if decoupled else 0.0,
        momentum=momentum,
        dampening=float(group.get("dampening", 0.0) or 0.0),
        nesterov=bool(group.get("nesterov", False)),
        ema_beta=beta1 if name in ("Adam", "AdamW", "Adamax", "NAdam", "RAdam") else 0.0,
        adaptive=name in _ADAPTIVE,
        known=name in _ADAPTIVE or name in ("SGD", "ASGD"),
    )


def _sigma(optimizer: Any, group: dict[str, Any], state: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """σ of torch's Adagrad (sqrt of the sum of g²), Adam/AdamW (bias-corrected), RMSprop; None otherwise."""
    if isinstance(optimizer, torch.optim.Adagrad) and "sum" in state:
        return state["sum"].sqrt()
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) and "exp_avg_sq" in state:
        betas = group["betas"]
        t = float(state["step"])
        return torch.sqrt(state["exp_avg_sq"] / (1 - float(betas[1]) ** t))
    if isinstance(optimizer, torch.optim.RMSprop) and "square_avg" in state:
        return torch.sqrt(state["square_avg"])
    return None


def effective_lrs(optimizer: Any, params: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    """Per parameter, the per-element effective learning rate η/σ (a new tensor), or None where the
    optimizer does not divide by a σ ravine can read (or the parameter has not stepped yet)."""
    out: list[torch.Tensor | None] = [None] * len(params)
    if optimizer is None:
        return out
    index = {id(p): i for i, p in enumerate(params)}
    with torch.no_grad():
        effective_lr = getattr(optimizer, "effective_lr", None)
        if callable(effective_lr):
            for i, p in enumerate(params):
                try:
                    value = effective_lr(p)
                except Exception:  # not stepped yet, or not this optimizer's parameter
                    continue
                if isinstance(value, torch.Tensor):
                    out[i] = value.detach()
            return out
        for group in optimizer.param_groups:
            lr = float(group.get("lr", math.nan))
            eps = float(group.get("eps", 1e-8) or 1e-8)
            for p in group["params"]:
                found = index.get(id(p))
                if found is None:
                    continue
                sigma = _sigma(optimizer, group, optimizer.state.get(p, {}))
                if sigma is not None:
                    out[found] = lr / (sigma + eps)
    return out
