"""Classify a small-gradient plateau with :mod:`ravine.curvature`: saddle or minimum-like, and how to escape.

The monitor builds a :class:`~ravine.curvature.HessianOperator` on (part of) the current batch, asks
:func:`~ravine.curvature.classify_hessian` for the Hessian's verdict (exact eigenvalues for small models,
Lanczos with certified residuals for larger ones) and, at a saddle, :func:`~ravine.curvature.escape_hessian`
for a trial step along the negative-curvature eigenvector (not applied). Nothing here is re-implemented.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from ravine.curvature import CriticalKind, HessianOperator, classify_hessian, escape_hessian
from ravine.diagnose._records import CriticalPointRecord

__all__ = ["classify_plateau"]

_KINDS = {
    CriticalKind.SADDLE: "saddle",
    CriticalKind.LOCAL_MINIMUM: "minimum-like",
    CriticalKind.LOCAL_MAXIMUM: "maximum-like",
    CriticalKind.INCONCLUSIVE: "inconclusive",
    CriticalKind.NOT_CRITICAL: "inconclusive",
}


def classify_plateau(
    model: nn.Module,
    loss_fn: Any,
    batch: tuple[Any, Any],
    params: list[str],
    *,
    step: int,
    max_dense_params: int,
    lanczos_hvps: int,
    saddle_tol: float,
    seed: int,
) -> tuple[CriticalPointRecord, list[str]]:
    """The Hessian's verdict at the current parameters on ``batch``, and the warnings it raised (as text).

    Args:
        model: The model (read, never changed).
        loss_fn: ``loss_fn(model(inputs), targets)``.
        batch: ``(inputs, targets)``.
        params: Names of the trainable parameters.
        step: The optimizer step, for the record.
        max_dense_params: Up to this many parameters, the exact spectrum in float64.
        lanczos_hvps: Budget of Hessian-vector products above that.
        saddle_tol: Relative flat zone: |λ| ≤ saddle_tol·max|λ| is not counted as negative.
        seed: Seed of the random start vectors.
    """
    n = sum(p.numel() for name, p in model.named_parameters() if name in set(params))
    dense = n <= max_dense_params
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        H = HessianOperator(
            model,
            loss_fn,
            batch,
            params=params,
            dtype=torch.float64 if dense else None,
            allow_zero=True,
            seed=seed,
        )
        point = classify_hessian(
            H,
            grad_tol=math.inf,
            eps=saddle_tol,
            method="dense" if dense else "lanczos",
            tol=1e-3,
            max_hvps=lanczos_hvps,
            num_probes=1,
            num_steps=min(10, n),
            seed=seed,
        )
        kind = _KINDS[point.hessian_kind]
        norms: tuple[tuple[str, float], ...] = ()
        drop = math.nan
        if kind == "saddle":
            result = escape_hessian(
                H,
                eps=saddle_tol,
                max_dense_params=max_dense_params,
                tol=1e-3,
                max_hvps=lanczos_hvps,
                max_backtracks=20,
                seed=seed,
            )
            norms = tuple(
                (name, float(piece.norm())) for name, piece in H.unflatten(result.direction).items()
            )
            drop = result.decrease if result.escaped else 0.0
    record = CriticalPointRecord(
        step=step,
        kind=kind,
        grad_norm=point.gradient_norm,
        lambda_min=point.lambda_min,
        lambda_max=point.lambda_max,
        source=f"ravine.curvature ({point.method}, {point.num_hvps} HVPs)",
        escape_norms=norms,
        escape_loss_drop=drop,
    )
    return record, [f"{w.category.__name__}: {w.message}" for w in caught]
