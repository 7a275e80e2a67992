"""Escaping a saddle: a step along the eigenvector of the most negative eigenvalue, with a line search.

At a saddle the Taylor expansion L(θ' + αu) ≈ L(θ') + α gᵀu + ½α²λ with λ < 0 along an eigenvector u: the
loss falls by about ½|λ|α² whichever side is taken. Where there is no negative curvature, nothing moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ravine.curvature._data import DataLike
from ravine.curvature._lanczos import lanczos
from ravine.curvature._operator import HessianOperator, LossFn
from ravine.errors import ConfigError

__all__ = ["EscapeResult", "escape", "escape_hessian"]


@dataclass(frozen=True)
class EscapeResult:
    """A step along the most negative curvature direction (or why none was taken).

    Attributes:
        escaped: Whether a step lowered the loss.
        reason: Why not, when ``escaped`` is False ("" otherwise).
        lambda_min: The curvature along ``direction``.
        direction: Unit eigenvector of λ_min (flat, parameter order); ``sign`` the side taken (±1).
        step_size: Length α of the step θ + sign·α·u (0 when none).
        loss_before, loss_after, decrease: The mean loss before and after, and their difference.
        params_flat: New values of the selected parameters, flat.
        state_dict: New values by parameter name (selected parameters only).
        applied: Whether the model's parameters were overwritten in place.
        backtracks: Halvings of the step before the loss went down.
        num_hvps: Products used to find the direction.
    """

    escaped: bool
    reason: str
    lambda_min: float
    direction: Tensor
    sign: int
    step_size: float
    loss_before: float
    loss_after: float
    decrease: float
    params_flat: Tensor
    state_dict: dict[str, Tensor]
    applied: bool
    backtracks: int
    num_hvps: int


def escape_hessian(
    H: HessianOperator,
    *,
    step: float = 1.0,
    shrink: float = 0.5,
    max_backtracks: int = 40,
    sufficient: float = 1e-4,
    eps: float = 1e-6,
    apply: bool = False,
    max_dense_params: int = 4000,
    tol: float = 1e-6,
    max_hvps: int = 2000,
    seed: int = 0,
) -> EscapeResult:
    """:func:`escape` on an existing :class:`HessianOperator`."""
    if not step > 0 or not 0 < shrink < 1 or max_backtracks < 0:
        raise ConfigError(
            f"escape: need step > 0, 0 < shrink < 1, max_backtracks ≥ 0; got {step=}, {shrink=}, {max_backtracks=}"
        )
    start = H.num_hvps
    n = H.shape[0]
    if n <= max_dense_params:
        values, vectors = torch.linalg.eigh(H.dense().to(torch.float64))
        lambda_min, abs_max, u = float(values[0]), float(values.abs().max()), vectors[:, 0]
    else:
        ends = lanczos(H, 1, which="both", tol=tol, max_hvps=max_hvps, seed=seed)
        lambda_min, u = float(ends.eigenvalues[0]), ends.eigenvectors[:, 0].to(torch.float64)
        abs_max = float(ends.eigenvalues.abs().max())
    u = u.to(H.dtype)
    theta = H.parameters_flat()
    loss_before = H.loss()
    hvps = H.num_hvps - start

    def result(
        *, escaped: bool, reason: str, sign: int, alpha: float, loss_after: float, new: Tensor
    ) -> EscapeResult:
        applied = False
        if escaped and apply:
            named = dict(H.model.named_parameters())
            with torch.no_grad():
                for name, value in H.unflatten(new).items():
                    named[name].copy_(value.to(named[name].dtype))
            applied = True
        return EscapeResult(
            escaped=escaped, reason=reason, lambda_min=lambda_min, direction=u, sign=sign, step_size=alpha,
            loss_before=loss_before, loss_after=loss_after, decrease=loss_before - loss_after, params_flat=new,
            state_dict={k: v.clone() for k, v in H.unflatten(new).items()}, applied=applied,
            backtracks=tries, num_hvps=hvps,
        )  # fmt: skip

    tries = 0
    if abs_max == 0.0:
        reason = (
            "the Hessian is zero here (every eigenvalue is 0): second order says nothing about this point, which "
            "may be a higher-order saddle (e.g. a deep linear network at all-zero weights); a small random "
            "perturbation or the gradient at a nearby point can tell"
        )
        return result(escaped=False, reason=reason, sign=0, alpha=0.0, loss_after=loss_before, new=theta)
    if not lambda_min < -eps * abs_max:
        reason = (
            f"no negative curvature: λ_min = {lambda_min:.4g} ≥ −{eps:g}·|λ|max; this looks like a local minimum "
            "(or a flat region), there is no descent direction of second order"
        )
        return result(escaped=False, reason=reason, sign=0, alpha=0.0, loss_after=loss_before, new=theta)
    slope = float(H.gradient().to(torch.float64) @ u.to(torch.float64))
    alpha = step
    for tries in range(max_backtracks + 1):  # noqa: B007
        best: tuple[float, int] | None = None
        for sign in (1, -1):
            trial = H.loss(theta + sign * alpha * u)
            if best is None or trial < best[0]:
                best = (trial, sign)
        assert best is not None
        trial_loss, sign = best
        predicted = sign * alpha * slope + 0.5 * alpha**2 * lambda_min
        if trial_loss < loss_before and trial_loss <= loss_before + sufficient * min(predicted, 0.0):
            new = theta + sign * alpha * u
            return result(escaped=True, reason="", sign=sign, alpha=alpha, loss_after=trial_loss, new=new)
        alpha *= shrink
    reason = f"no step of length ≤ {step:g} along ±u lowered the loss after {max_backtracks} halvings"
    return result(escaped=False, reason=reason, sign=0, alpha=0.0, loss_after=loss_before, new=theta)


def escape(
    model: nn.Module,
    loss_fn: LossFn,
    data: DataLike,
    *,
    params: Any = None,
    dtype: torch.dtype | None = None,
    train_mode: bool = False,
    step: float = 1.0,
    shrink: float = 0.5,
    max_backtracks: int = 40,
    eps: float = 1e-6,
    apply: bool = False,
    max_dense_params: int = 4000,
    tol: float = 1e-6,
    max_hvps: int = 2000,
    seed: int = 0,
) -> EscapeResult:
    """Escape a saddle along the eigenvector u of the most negative eigenvalue, with a backtracking line search.

    Tries θ ± α·u for α = step, step·shrink, ... and takes the first (better-signed) step whose loss is
    below the starting loss by a sufficient decrease of the quadratic model α·gᵀu + ½α²λ_min. Where there
    is no negative curvature, returns ``escaped=False`` with the reason; nothing is changed.

    Example:
        >>> import torch
        >>> from ravine.curvature import escape
        >>> net = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False))
        >>> with torch.no_grad():
        ...     for layer in net:
        ...         _ = layer.weight.zero_()
        >>> out = escape(net, torch.nn.functional.mse_loss, (torch.ones(1, 1), torch.ones(1, 1)))
        >>> out.escaped, out.loss_before, round(out.loss_after, 4)
        (True, 1.0, 0.25)
    """
    H = HessianOperator(model, loss_fn, data, params=params, dtype=dtype, train_mode=train_mode, seed=seed)
    return escape_hessian(
        H, step=step, shrink=shrink, max_backtracks=max_backtracks, eps=eps, apply=apply,
        max_dense_params=max_dense_params, tol=tol, max_hvps=max_hvps, seed=seed,
    )  # fmt: skip
