"""Critical points: is it a local minimum, a saddle, or not critical at all?

At a critical point (g = 0) the Taylor expansion L(θ) ≈ L(θ') + ½(θ − θ')ᵀH(θ − θ') leaves H to decide:
all eigenvalues positive → local minimum; all negative → local maximum; both signs → saddle, and moving
along an eigenvector u of a negative eigenvalue λ lowers the loss by about ½|λ|‖Δθ‖² (see
:mod:`ravine.curvature._escape`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ravine.curvature._data import DataLike
from ravine.curvature._lanczos import lanczos
from ravine.curvature._operator import HessianOperator, LossFn
from ravine.curvature._spectrum import spectral_density
from ravine.errors import ConfigError

__all__ = ["CriticalKind", "CriticalPoint", "classify", "classify_hessian"]


class CriticalKind(enum.Enum):
    """What the gradient and the Hessian say about a point."""

    LOCAL_MINIMUM = "local minimum like"
    SADDLE = "saddle"
    LOCAL_MAXIMUM = "local maximum like"
    NOT_CRITICAL = "not a critical point"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class CriticalPoint:
    """The verdict on a point with its evidence.

    Attributes:
        kind: The verdict; ``NOT_CRITICAL`` when ‖g‖ > ``grad_tol``, whatever the curvature.
        hessian_kind: What the Hessian alone says (as if the point were critical).
        gradient_norm: ‖∇L‖ over all the data; ``grad_tol`` the threshold used.
        loss: The mean loss.
        lambda_min, lambda_max: Extreme eigenvalues (exact for ``method="dense"``; Ritz values otherwise).
        lambda_min_bound: Uncertainty of λ_min: the Ritz residual (Lanczos) or round-off level (dense).
        positive_share, negative_share, flat_share: Shares of eigenvalues > thr, < −thr, |λ| ≤ thr.
        shares_stderr: Standard errors of (positive, negative, flat) for SLQ estimates, None if exact.
        minimum_ratio: positive / (positive + negative) — flat eigenvalues do not count.
        minimum_ratio_stderr: Its standard error (0 when exact).
        eps: Relative flat threshold; ``flat_threshold`` = eps · max|λ|.
        counts: (positive, negative, flat) eigenvalue counts when exact, else None.
        num_params: n; ``method``: "dense" or "lanczos+slq"; ``num_hvps``: products used.
        min_eigenvector: Unit eigenvector of λ_min (flat, parameter order), the escape direction.
        shares_bound: Bounds on the quadrature error of the SLQ shares (positive, negative, flat), None if
            exact; the error of a share is within about 3·stderr + bound.
        minimum_ratio_bound: The quadrature error bound of the minimum ratio (0 when exact).
        noise_floor: The smallest |λ| the working dtype resolves, 10·√n·ε·max|λ| (ε the dtype's machine
            epsilon); the flat threshold is never below it, so float32 noise never counts as curvature.
        shares_resolved: Whether the shares are resolved: exact, or every SLQ quadrature bound within
            ``share_tol``. When False the shares (and the minimum ratio) are inconclusive at that bound.
    """

    kind: CriticalKind
    hessian_kind: CriticalKind
    gradient_norm: float
    grad_tol: float
    loss: float
    lambda_min: float
    lambda_max: float
    lambda_min_bound: float
    positive_share: float
    negative_share: float
    flat_share: float
    shares_stderr: tuple[float, float, float] | None
    minimum_ratio: float
    minimum_ratio_stderr: float
    eps: float
    flat_threshold: float
    counts: tuple[int, int, int] | None
    num_params: int
    method: str
    num_hvps: int
    min_eigenvector: Tensor
    shares_bound: tuple[float, float, float] | None = None
    minimum_ratio_bound: float = 0.0
    noise_floor: float = 0.0
    shares_resolved: bool = True

    def summary(self) -> str:
        """One paragraph a person can read."""
        how = (
            "exact"
            if self.counts is not None
            else f"estimated, ± {self.minimum_ratio_stderr:.2f} from the probes, "
            f"± {self.minimum_ratio_bound:.2f} from the quadrature"
            + ("" if self.shares_resolved else "; INCONCLUSIVE: the quadrature cannot resolve the shares")
        )
        return (
            f"{self.kind.value}: ‖g‖ = {self.gradient_norm:.3g} (critical below {self.grad_tol:g}), "
            f"λ_min = {self.lambda_min:.4g} (± {self.lambda_min_bound:.2g}), λ_max = {self.lambda_max:.4g}; "
            f"minimum ratio {self.minimum_ratio:.3f} ({how}) — positive {self.positive_share:.1%} / negative "
            f"{self.negative_share:.1%} / flat {self.flat_share:.1%} of {self.num_params:,} eigenvalues, flat "
            f"meaning |λ| ≤ {self.eps:g}·|λ|max = {self.flat_threshold:.3g} ({self.method}, {self.num_hvps} HVPs)"
        )


def _hessian_kind(upper_min: float, bound: float, lambda_max: float, threshold: float) -> CriticalKind:
    """λ_min ≤ ``upper_min`` always; λ_min ≥ upper_min − bound when the Ritz pair has converged."""
    if upper_min < -threshold:
        return CriticalKind.SADDLE if lambda_max > threshold else CriticalKind.LOCAL_MAXIMUM
    if upper_min - bound < -threshold:
        return CriticalKind.INCONCLUSIVE
    return CriticalKind.LOCAL_MINIMUM if lambda_max > threshold else CriticalKind.INCONCLUSIVE


def _noise_floor(n: int, dtype: torch.dtype, abs_max: float) -> float:
    """10·√n·ε·max|λ|: the size of the round-off in a product with H in ``dtype`` (ε its machine epsilon)."""
    return 10 * math.sqrt(n) * torch.finfo(dtype).eps * abs_max


def classify_hessian(
    H: HessianOperator,
    *,
    grad_tol: float = 1e-3,
    eps: float = 1e-6,
    method: str = "auto",
    max_dense_params: int = 4000,
    tol: float = 1e-6,
    max_hvps: int = 2000,
    num_probes: int = 20,
    num_steps: int = 60,
    seed: int = 0,
    share_tol: float = 0.05,
) -> CriticalPoint:
    """:func:`classify` on an existing :class:`HessianOperator`."""
    if method not in ("auto", "dense", "lanczos"):
        raise ConfigError(f"classify: method must be 'auto', 'dense' or 'lanczos', got {method=}")
    if not grad_tol >= 0 or not eps >= 0:
        raise ConfigError(f"classify: grad_tol and eps must be non-negative, got {grad_tol=}, {eps=}")
    n = H.shape[0]
    start = H.num_hvps
    gradient_norm = float(H.gradient().norm())
    loss = H.loss()
    if method == "dense" or (method == "auto" and n <= max_dense_params):
        values, vectors = torch.linalg.eigh(H.dense().to(torch.float64))
        abs_max = float(values.abs().max())
        roundoff = _noise_floor(n, H.dtype, abs_max)
        threshold = max(eps * abs_max, roundoff)
        counts = (int((values > threshold).sum()), int((values < -threshold).sum()), 0)
        counts = (counts[0], counts[1], n - counts[0] - counts[1])
        lambda_min, lambda_max = float(values[0]), float(values[-1])
        shares = tuple(c / n for c in counts)
        ratio = counts[0] / max(counts[0] + counts[1], 1)
        hessian_kind = _hessian_kind(lambda_min, roundoff, lambda_max, threshold)
        result = {
            "noise_floor": roundoff,
            "lambda_min_bound": roundoff,
            "shares_stderr": None,
            "minimum_ratio_stderr": 0.0,
            "counts": counts,
            "method": "dense",
            "min_eigenvector": vectors[:, 0].to(H.dtype),
        }
    else:
        ends = lanczos(
            H, 1, which="both", tol=max(tol, 10 * torch.finfo(H.dtype).eps), max_hvps=max_hvps, seed=seed
        )
        lambda_min, lambda_max = float(ends.eigenvalues[0]), float(ends.eigenvalues[-1])
        abs_max = max(abs(lambda_min), abs(lambda_max))
        noise = _noise_floor(n, H.dtype, abs_max)
        threshold = max(eps * abs_max, noise)
        relative = threshold / abs_max if abs_max > 0 else eps
        density = spectral_density(H, num_probes=num_probes, num_steps=num_steps, eps=relative, seed=seed + 1)
        shares = (density.positive_share, density.negative_share, density.flat_share)
        ratio = density.minimum_ratio
        bound = float(ends.residuals[0]) if bool(ends.converged[0]) else math.inf
        hessian_kind = _hessian_kind(lambda_min, bound, lambda_max, threshold)
        share_bounds = (density.positive_bound, density.negative_bound, density.flat_bound)
        result = {
            "noise_floor": noise,
            "shares_resolved": max(share_bounds) <= share_tol,
            "lambda_min_bound": bound,
            "shares_stderr": (density.positive_stderr, density.negative_stderr, density.flat_stderr),
            "shares_bound": share_bounds,
            "minimum_ratio_stderr": density.minimum_ratio_stderr,
            "minimum_ratio_bound": density.minimum_ratio_bound,
            "counts": None,
            "method": "lanczos+slq",
            "min_eigenvector": ends.eigenvectors[:, 0],
        }
    kind = CriticalKind.NOT_CRITICAL if gradient_norm > grad_tol else hessian_kind
    return CriticalPoint(
        kind=kind,
        hessian_kind=hessian_kind,
        gradient_norm=gradient_norm,
        grad_tol=grad_tol,
        loss=loss,
        lambda_min=lambda_min,
        lambda_max=lambda_max,
        positive_share=shares[0],
        negative_share=shares[1],
        flat_share=shares[2],
        minimum_ratio=ratio,
        eps=eps,
        flat_threshold=threshold,
        num_params=n,
        num_hvps=H.num_hvps - start,
        **result,
    )


def classify(
    model: nn.Module,
    loss_fn: LossFn,
    data: DataLike,
    *,
    params: Any = None,
    dtype: torch.dtype | None = None,
    train_mode: bool = False,
    grad_tol: float = 1e-3,
    eps: float = 1e-6,
    method: str = "auto",
    max_dense_params: int = 4000,
    tol: float = 1e-6,
    max_hvps: int = 2000,
    num_probes: int = 20,
    num_steps: int = 60,
    seed: int = 0,
) -> CriticalPoint:
    """Classify the model's current parameters: local minimum like, saddle, local maximum like, not critical.

    Small models (n ≤ ``max_dense_params``) get the exact spectrum (dense Hessian, ``eigh``; in float64
    unless ``dtype`` says otherwise), larger ones Lanczos for λ_min/λ_max (with residual bounds) and SLQ for
    the shares (with standard errors). The verdict is ``INCONCLUSIVE`` when λ_min's sign cannot be certified
    (λ_min within its error bound of the flat zone) or when every eigenvalue is flat.

    Args:
        model, loss_fn, data, params, train_mode: As for :class:`HessianOperator`.
        dtype: Working dtype (default float64 for the dense path, the model's for Lanczos).
        grad_tol: ‖∇L‖ above this is "not a critical point" (HW2-2 uses 1e-3).
        eps: Eigenvalues with |λ| ≤ eps·max|λ| count as flat.
        method: ``"auto"``, ``"dense"`` or ``"lanczos"``.
        tol, max_hvps: Lanczos residual tolerance (relative) and budget.
        num_probes, num_steps: SLQ probes and steps.
        seed: Seed of the random vectors.

    Example:
        >>> import torch
        >>> from ravine.curvature import classify
        >>> net = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False))
        >>> with torch.no_grad():
        ...     for layer in net:
        ...         _ = layer.weight.zero_()
        >>> point = classify(net, torch.nn.functional.mse_loss, (torch.ones(1, 1), torch.ones(1, 1)))
        >>> point.kind.value, round(point.lambda_min, 6)
        ('saddle', -2.0)
    """
    n = sum(p.numel() for p in model.parameters() if p.requires_grad) if params is None else None
    dense = method == "dense" or (method == "auto" and (n is None or n <= max_dense_params))
    working = dtype if dtype is not None else (torch.float64 if dense else None)
    H = HessianOperator(model, loss_fn, data, params=params, dtype=working, train_mode=train_mode, seed=seed)
    return classify_hessian(
        H, grad_tol=grad_tol, eps=eps, method=method, max_dense_params=max_dense_params, tol=tol,
        max_hvps=max_hvps, num_probes=num_probes, num_steps=num_steps, seed=seed,
    )  # fmt: skip
