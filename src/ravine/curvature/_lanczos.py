"""Lanczos with full reorthogonalisation and thick restarts, certified by the residual of every Ritz pair.

The Krylov basis Q and its image HQ are both kept (preallocated, interleaved row by row), so the residuals
‖H x − θ x‖ = ‖(HQ)y − θ Q y‖ of the Ritz pairs are exact (no extra products, no ghost eigenvalues from lost
orthogonality). A step costs two passes over the basis besides its product: one matrix product gives both the
new column of T = Q·(HQ)ᵀ and the new row of the Gram matrix G = Q·Qᵀ, and one projection removes the basis
from H q. Because G is known exactly, that single projection (with G⁻¹ once G drifts from I) does what the
second pass of classical Gram–Schmidt ("twice is enough") would. Every step estimates the residuals from T
alone (‖w‖·|y_m| along the newest residual w); when the estimate says the wanted pairs have converged, and at
each restart, the residuals are computed from the basis: those certify, and their part inside the basis, which
only the operator's asymmetry makes nonzero, measures its noise floor. When the basis is full it is compressed
in place to the wanted Ritz vectors (a thick restart) and the Krylov space is extended from the next vector.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from ravine.errors import ConfigError

__all__ = ["EigenResult", "LinearOperatorLike", "as_matmat", "lanczos"]

Which = Literal["largest", "smallest", "both"]
_GRAM_EXACT = 1e-12
"""The largest |Q·Qᵀ − I| for which the basis is treated as orthonormal (its Ritz values then err by ≲ 1e-12·‖H‖)."""


class LinearOperatorLike(Protocol):
    """Anything with a square ``shape`` and ``matmat`` (n × k → n × k) or ``matvec``; or a square tensor."""

    @property
    def shape(self) -> tuple[int, int]: ...


def as_matmat(A: Any) -> tuple[int, Callable[[Tensor], Tensor], torch.dtype, torch.device]:
    """``(n, matmat, dtype, device)`` for a square tensor or an operator with ``matmat``/``matvec``."""
    if isinstance(A, Tensor):
        if A.dim() != 2 or A.shape[0] != A.shape[1]:
            raise ConfigError(f"curvature: expected a square matrix, got shape {tuple(A.shape)}")
        return int(A.shape[0]), lambda V: A @ V.to(A.dtype), A.dtype, A.device
    shape = getattr(A, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != shape[1]:
        raise ConfigError(f"curvature: expected a square linear operator with .shape, got {type(A).__name__}")
    dtype = getattr(A, "dtype", torch.float64)
    device = getattr(A, "device", torch.device("cpu"))
    if hasattr(A, "matmat"):
        return int(shape[0]), lambda V: A.matmat(V.to(dtype)), dtype, device
    if hasattr(A, "matvec"):
        return (
            int(shape[0]),
            lambda V: torch.stack([A.matvec(V[:, j].to(dtype)) for j in range(V.shape[1])], 1),
            dtype,
            device,
        )
    raise ConfigError(f"curvature: {type(A).__name__} has neither matmat nor matvec")


@dataclass(frozen=True)
class EigenResult:
    """Ritz pairs of a symmetric operator with their certificates.

    Attributes:
        eigenvalues: Ritz values (float64): descending for ``"largest"``, ascending for ``"smallest"`` and
            ``"both"``.
        eigenvectors: Unit Ritz vectors as the columns of an ``(n, k)`` tensor.
        residuals: ‖H x − θ x‖ per pair. For symmetric H an eigenvalue lies within this distance of θ.
        converged: ``residual ≤ tol · scale`` per pair.
        num_hvps: Matrix-vector products used.
        scale: The largest |Ritz value| seen, the estimate of ‖H‖ that ``tol`` is relative to.
        tol: The relative tolerance asked for.
        which: Which end(s) of the spectrum.
        restarts: Number of thick restarts.
        noise_floor: The operator's own error level, 10 × the largest part of a wanted pair's residual that
            lies inside the Krylov basis, Q·(Hx − θx) = (QᵀHQ − its symmetric completion)·y, measured at each
            certification and restart (an exactly symmetric operator has none; one computed partly in float32
            has about 1e-7·‖H‖). A pair counts as converged when its residual is within
            max(tol·scale, noise_floor): a residual below the operator's noise cannot be certified.
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    converged: Tensor
    num_hvps: int
    scale: float
    tol: float
    which: str
    restarts: int
    noise_floor: float = 0.0

    @property
    def all_converged(self) -> bool:
        """Whether every pair met the tolerance."""
        return bool(self.converged.all())

    def smallest_sign(self, flat: float = 0.0) -> Literal["negative", "positive", "inconclusive"]:
        """Sign of the smallest eigenvalue λ_min, or ``"inconclusive"`` when it cannot be certified.

        The smallest Ritz value θ is an upper bound on λ_min (Cauchy interlacing), so θ < −flat proves a
        negative eigenvalue. ``"positive"`` needs θ − residual > flat, i.e. the whole interval where λ_min
        lies (for a converged pair) above ``flat``.
        """
        index = int(torch.argmin(self.eigenvalues))
        theta, radius = float(self.eigenvalues[index]), float(self.residuals[index])
        if theta < -flat:
            return "negative"
        if theta - radius > flat and bool(self.converged[index]):
            return "positive"
        return "inconclusive"


def _project(v: Tensor, Q: Tensor, inverse: np.ndarray | None) -> Tensor:
    """v minus its orthogonal projection onto the rows of Q, whose Gram matrix has the inverse ``inverse``."""
    coefficients = (Q @ v).cpu().numpy()
    if inverse is not None:
        coefficients = inverse @ coefficients
    return v - Q.T @ torch.from_numpy(coefficients).to(v.device)


def _compress(B: Tensor, Y: Tensor, m: int, width: int = 2048) -> None:
    """B[:k] ← Yᵀ·B[:m] in place (k = Y's columns), a block of columns at a time: no basis-sized temporary."""
    for start in range(0, B.shape[1], width):
        block = B[:, start : start + width]
        block[: Y.shape[1]] = Y.T @ block[:m]


def _ritz(S: np.ndarray, factor: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of S y = θ G y, ascending, with Yᵀ G Y = I: Rayleigh–Ritz in a basis whose Gram matrix is G.

    ``factor`` is L⁻¹ for G = L·Lᵀ (None: G = I).
    """
    B = S if factor is None else factor @ S @ factor.T
    theta, Z = torch.linalg.eigh(torch.from_numpy((B + B.T) / 2 if factor is not None else B))
    values, vectors = theta.numpy(), Z.numpy()
    return values, (vectors if factor is None else factor.T @ vectors)


def _wanted(m: int, which: str, k: int) -> np.ndarray:
    if which == "largest":
        return np.arange(m - 1, m - k - 1, -1)
    if which == "smallest":
        return np.arange(k)
    return np.unique(np.concatenate([np.arange(min(k, m)), np.arange(max(m - k, 0), m)]))


def lanczos(
    A: Any,
    k: int = 6,
    *,
    which: Which = "largest",
    tol: float = 1e-6,
    max_hvps: int = 1000,
    max_basis: int | None = None,
    seed: int = 0,
    v0: Tensor | None = None,
) -> EigenResult:
    r"""The ``k`` largest and/or smallest eigenpairs of a symmetric operator, certified by residuals.

    Stops when every wanted pair has ‖Hx − θx‖ ≤ tol·max|θ| (or ≤ the operator's own noise floor, where
    that is larger: see :attr:`EigenResult.noise_floor`), the Krylov space is the whole space, or
    ``max_hvps`` products are spent (pairs then carry ``converged=False``). A residual certifies that an
    eigenvalue lies within it of θ; like any single-vector Krylov method, Lanczos may find only one copy of
    a repeated eigenvalue before its Krylov space becomes invariant (then it continues from a random vector).

    Args:
        A: A :class:`HessianOperator`, any object with ``shape`` and ``matmat``/``matvec``, or a square tensor.
        k: Pairs wanted at each end.
        which: ``"largest"``, ``"smallest"`` or ``"both"`` (k at each end).
        tol: Residual tolerance relative to the largest |eigenvalue|.
        max_hvps: Budget of products.
        max_basis: Basis size before a thick restart (default ``max(2·wanted + 20, 40)``).
        seed: Seed of the random start vector.
        v0: Start vector instead of a random one.

    Example:
        >>> import torch
        >>> result = lanczos(torch.diag(torch.arange(1.0, 101.0, dtype=torch.float64)), 2, tol=1e-10)
        >>> [round(x, 6) for x in result.eigenvalues.tolist()], result.all_converged
        ([100.0, 99.0], True)
    """
    if which not in ("largest", "smallest", "both"):
        raise ConfigError(f"lanczos: which must be 'largest', 'smallest' or 'both', got {which=}")
    n, matmat, dtype, device = as_matmat(A)
    if k < 1 or k > n:
        raise ConfigError(f"lanczos: k must be in [1, {n}], got {k=}")
    if not tol > 0:
        raise ConfigError(f"lanczos: tol must be positive, got {tol=}")
    if max_hvps < 1:
        raise ConfigError(f"lanczos: max_hvps must be at least 1, got {max_hvps=}")
    wanted_count = min(n, 2 * k if which == "both" else k)
    basis = min(n, max_basis or max(2 * wanted_count + 20, 40))
    if basis <= wanted_count and basis < n:
        raise ConfigError(
            f"lanczos: max_basis must exceed the number of wanted pairs ({wanted_count}), got {basis}"
        )
    work = torch.float64
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def random_vector() -> Tensor:
        return torch.randn(n, generator=generator, dtype=work).to(device)

    q = v0.detach().to(device=device, dtype=work).reshape(-1) if v0 is not None else random_vector()
    if q.shape[0] != n:
        raise ConfigError(f"lanczos: v0 must have length {n}, got {q.shape[0]}")
    # Preallocated on the operator's device: `rows[i]` = (H q_i, q_i), i.e. the image HQ and the basis Q (one
    # vector per row, and a spare row for the next vector), so that one product of rows[m] with Qᵀ gives both
    # T's new column and the Gram matrix's new row. On the host, in float64: T = Q·(HQ)ᵀ completed from its
    # upper triangle (the columns Q·(H q)), and G = Q·Qᵀ, which is I to within `drift`.
    rows = torch.empty(basis + 1, 2, n, dtype=work, device=device)
    HQ, Q = rows[:, 0], rows[:, 1]
    T = np.zeros((basis, basis))
    G = np.zeros((basis, basis))
    torch.div(q, q.norm(), out=Q[0])
    m, hvps, restarts, exhausted, lost, noise, drift = 0, 0, 0, False, 0.0, 0.0, 0.0
    while True:
        HQ[m].copy_(matmat(Q[m][:, None].to(dtype))[:, 0])
        hvps += 1
        m += 1
        Qm, HQm = Q[:m], HQ[:m]
        products = torch.mm(rows[m - 1], Qm.T).cpu().numpy()  # one pass over the basis: Q·(H q) and Q·q
        column = products[0]
        T[:m, m - 1] = T[m - 1, :m] = column
        G[:m, m - 1] = G[m - 1, :m] = products[1]
        products[1, m - 1] -= 1.0
        drift = max(drift, float(np.abs(products[1]).max()))
        # a Gram matrix further than `_GRAM_EXACT` from I enters the projections and the Rayleigh–Ritz step
        factor = np.linalg.inv(np.linalg.cholesky(G[:m, :m])) if drift > _GRAM_EXACT else None
        # the part of H q outside the basis, projected out in one pass: the Gram matrix carries what a second
        # Gram–Schmidt pass would correct, so w is orthogonal to the basis to rounding ("twice is enough"
        # without the second pass over the basis)
        inverse = None if factor is None else factor.T @ factor
        coefficients = column if inverse is None else inverse @ column
        w = torch.addmv(HQ[m - 1], Qm.T, torch.from_numpy(coefficients).to(device), alpha=-1, out=Q[m])
        outside = length = float(w.norm())  # the residuals' only source outside the basis
        inside = max(float(column @ coefficients), 0.0)  # ‖H q‖² = ‖its projection‖² + ‖w‖²
        if m >= n:
            exhausted = True
        elif outside <= 1e-10 * max(math.sqrt(inside + outside**2), 1e-300):  # invariant: continue elsewhere
            lost += outside  # this small part of H q stays outside the basis: bound it in the residuals
            Q[m].copy_(_project(_project(random_vector(), Qm, inverse), Qm, inverse))
            length = float(Q[m].norm())
        theta, Y = _ritz(T[:m, :m], factor)
        index = _wanted(m, which, min(k, m))
        scale = float(np.abs(theta).max())
        # H x − θ x = ‖w‖·y_m·(the next vector) + a part inside the basis that only the operator's asymmetry
        # makes nonzero: the first is the estimate (no pass over the basis), and both are in the exact
        # residuals, which certify
        Yw = Y[:, index]
        limit = max(tol * max(scale, 1e-300), noise)
        likely = len(index) >= wanted_count and bool((np.abs(outside * Yw[-1]) + lost <= limit).all())
        if likely or exhausted or hvps >= max_hvps or m >= basis:  # certify (at a restart: measure the noise)
            Yd = torch.from_numpy(Yw).to(device)
            X = Qm.T @ Yd
            R = HQm.T @ Yd - X * torch.from_numpy(theta[index]).to(device)
            residuals = R.norm(dim=0).cpu()
            # the asymmetry (Qᵀ H Q − its symmetric completion)·y: the part of the residual inside the basis
            inner = (Qm @ R).cpu().numpy()
            skew = np.linalg.norm(inner if factor is None else factor @ inner, axis=0)
            noise = max(noise, 10 * float(skew.max()))
            limit = max(limit, noise)
            converged = residuals <= limit
            done = len(index) >= wanted_count and bool(converged.all())
            if done or exhausted or hvps >= max_hvps:
                break
        Q[m].div_(length)
        if m >= basis:  # thick restart: keep the wanted end(s) of the spectrum
            keep = max(wanted_count + (basis - wanted_count) // 2, wanted_count)
            if which == "largest":
                kept = np.arange(m - keep, m)
            elif which == "smallest":
                kept = np.arange(keep)
            else:
                kept = np.unique(np.concatenate([np.arange((keep + 1) // 2), np.arange(m - keep // 2, m)]))
            Yk = Y[:, kept]
            size = len(kept)
            _compress(rows.view(basis + 1, 2 * n), torch.from_numpy(Yk).to(device), m)
            Q[size].copy_(Q[m])
            T[:size, :size] = Yk.T @ T[:m, :m] @ Yk
            G[:size, :size] = Yk.T @ G[:m, :m] @ Yk
            drift = float(np.abs(G[:size, :size] - np.eye(size)).max())
            m = size
            restarts += 1
    values = theta[index]
    if which == "both":
        order = np.argsort(values)
        values, X, residuals, converged = values[order], X[:, order], residuals[order], converged[order]
    return EigenResult(
        eigenvalues=torch.from_numpy(values.copy()),
        eigenvectors=X.to(dtype),
        residuals=residuals.cpu(),
        converged=converged.cpu(),
        num_hvps=hvps,
        scale=scale,
        tol=tol,
        which=which,
        restarts=restarts,
        noise_floor=noise,
    )
