"""The edge-of-stability test: the (preconditioned) sharpness against the optimizer's stability limit.

Cohen et al. (2021): full-batch GD with step η is stable along an eigendirection of the Hessian H while
η·λ < 2 (2 + 2β with heavy-ball momentum β); at the edge of stability λ_max hovers at 2/η and the iterates
bounce across the steepest direction — the lecture's ravine, measured. Cohen et al. (2022): for an adaptive
optimizer θ ← θ − P⁻¹m the quantity is λ_max(P⁻¹H); with P = σ/η (σ the optimizer's current denominator,
e.g. Adam's √v̂ + ε) and EMA momentum β₁ the limit is (2 + 2β₁)/(1 − β₁) (38 at β₁ = 0.9). Comparing raw H
with 2/η for Adam is wrong.

λ_max(P⁻¹H) equals λ_max(E^½ H E^½), E = P⁻¹ = η/σ per element, a symmetric operator: one Hessian-vector
product of :class:`ravine.curvature.HessianOperator` per product, with :func:`ravine.curvature.lanczos`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ravine.curvature import HessianOperator, lanczos
from ravine.diagnose._records import SharpnessRecord
from ravine.diagnose._terms import OptimizerTerms, effective_lrs

__all__ = ["ScaledHessian", "measure_sharpness"]


class ScaledHessian:
    """v ↦ D (H + λI) D v with D = diag(scale^½): the eigenvalues of diag(scale)·(H + λI).

    λ is coupled (L2) weight decay, part of the objective the optimizer minimises."""

    def __init__(self, hessian: HessianOperator, scale: Tensor, decay: float = 0.0) -> None:
        self.hessian = hessian
        self.root = scale.to(hessian.dtype).clamp_min(0).sqrt().reshape(-1, 1)
        self.decay = decay
        self.shape = hessian.shape
        self.dtype = hessian.dtype
        self.device = hessian.device

    def matmat(self, V: Tensor) -> Tensor:
        out = self.root * self.hessian.matmat(self.root * V)
        return out + self.decay * self.root.square() * V if self.decay else out


def measure_sharpness(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    batch: tuple[Any, Any],
    *,
    names: Sequence[str],
    params: Sequence[Tensor],
    optimizer: Any,
    terms: OptimizerTerms,
    step: int,
    max_hvps: int = 40,
    seed: int = 0,
) -> tuple[SharpnessRecord, list[str]]:
    """The optimizer-scaled sharpness at the current parameters on ``batch`` and its stability limit.

    Args:
        model: The model (read only).
        loss_fn: ``loss_fn(model(inputs), targets)``.
        batch: ``(inputs, targets)``.
        names: Trainable parameter names (the order of ``params``).
        params: The parameters.
        optimizer: The optimizer (its per-element η/σ is read from its state).
        terms: Its hyper-parameters (:func:`~ravine.diagnose._terms.optimizer_terms`).
        step: For the record.
        max_hvps: Lanczos budget.
        seed: Lanczos start vector seed.

    Returns:
        The record and the warnings raised while measuring (as text).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        H = HessianOperator(model, loss_fn, batch, params=list(names), allow_zero=True, seed=seed)
        by_name = dict(zip(names, params, strict=True))
        scales = dict(zip(names, effective_lrs(optimizer, params), strict=True))
        lr = terms.lr if math.isfinite(terms.lr) else 1.0
        pieces = []
        preconditioned = False
        for name in H.parameter_names:
            e = scales[name]
            if e is None:
                pieces.append(torch.full((by_name[name].numel(),), lr, dtype=H.dtype, device=H.device))
            else:
                preconditioned = True
                pieces.append(e.reshape(-1).to(H.dtype))
        scale = torch.cat(pieces)
        operator = ScaledHessian(H, scale, terms.coupled_decay)
        result = lanczos(operator, 1, which="largest", tol=1e-2, max_hvps=max_hvps, seed=seed)
        sharpness = float(result.eigenvalues[0])
        threshold, rule = terms.stability_limit()
    raw = sharpness / lr - terms.coupled_decay if not preconditioned and lr > 0 else math.nan
    record = SharpnessRecord(
        step=step,
        sharpness=sharpness,
        threshold=threshold,
        raw_lambda_max=raw,
        preconditioned=preconditioned,
        converged=bool(result.converged[0]),
        num_hvps=result.num_hvps,
        rule=rule,
    )
    return record, [f"{w.category.__name__}: {w.message}" for w in caught]
