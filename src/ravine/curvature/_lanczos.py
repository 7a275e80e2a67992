"""Lanczos with thick restarts on an exactly tracked basis, certified by the residual of every Ritz pair.

The Krylov basis Q and its image HQ are both kept (preallocated, interleaved row by row), so the residuals
‖H x − θ x‖ = ‖(HQ)y − θ Q y‖ of the Ritz pairs are exact (no extra products, no ghost eigenvalues from lost
orthogonality). The Rayleigh–Ritz step solves T y = θ G y with T = Q·(HQ)ᵀ and the Gram matrix G = Q·Qᵀ both
known, so the basis need not be orthonormal, only well conditioned; this is what makes a step cheap:

- Every other step one matrix product over the basis measures T's new column and G's new row. In between they
  follow from the recurrence: the new vector is (H q − the parts subtracted)/β, so its row of G comes from the
  previous measured column, and by symmetry its column of T is (HQ)·q = Kᵀ·(its row of G), K being the
  recurrence's coefficients (a symmetric completion from the lower triangle instead of the upper one; the
  operator's asymmetry shows in the noise floor either way). Only q·H q is a product.
- H q is reduced against the two newest vectors only (the three-term recurrence). The overlap that leaves
  with the older ones is known exactly (G times the coefficients left out); only when it exceeds `_OVERLAP`
  relative to the new vector, and always before a restart, does one pass project the whole basis out (with G
  exact, that single pass does what the second pass of classical Gram–Schmidt would).

Every step estimates the residuals from T alone (‖w‖·|y_m| along the newest residual w, its part outside the
basis); when the estimate says the wanted pairs have converged, and at each restart, the residuals are computed
from the basis: those certify, and their part inside the basis, (Q·(HQ)ᵀ − T)·y, which only the operator's
asymmetry (and rounding) makes nonzero, measures its noise floor. When the basis is full it is compressed in
place to the wanted Ritz vectors (a thick restart) and the Krylov space is extended from the next vector.
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
_OVERLAP = 1e-6
"""The largest overlap of a new vector with the older basis left in place of a pass over the basis (G carries it;
the basis then stays within 1e-6·√m of orthonormal, so G's Cholesky factor costs no accuracy)."""


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


def _project(v: Tensor, Q: Tensor, inverse: np.ndarray) -> Tensor:
    """v minus its orthogonal projection onto the rows of Q, whose Gram matrix has the inverse ``inverse``."""
    coefficients = inverse @ (Q @ v).cpu().numpy()
    return v - Q.T @ torch.from_numpy(coefficients).to(v.device)


def _extend_inverse_factor(F: np.ndarray, g: np.ndarray, m: int) -> None:
    """Row m − 1 of F = L⁻¹ (G = L·Lᵀ, lower triangular) from G's new row ``g``, given rows 0 … m − 2."""
    head = F[: m - 1, : m - 1]
    ell = head @ g[: m - 1]  # L's new row: L_{m-1,:m-1} = (L⁻¹ g)ᵀ
    d = math.sqrt(float(g[m - 1]) - float(ell @ ell))
    F[m - 1, : m - 1] = -(ell @ head) / d
    F[m - 1, m - 1] = 1.0 / d


def _compress(B: Tensor, Y: Tensor, m: int, width: int = 2048) -> None:
    """B[:k] ← Yᵀ·B[:m] in place (k = Y's columns), a block of columns at a time: no basis-sized temporary."""
    for start in range(0, B.shape[1], width):
        block = B[:, start : start + width]
        block[: Y.shape[1]] = Y.T @ block[:m]


def _ritz(S: np.ndarray, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of S y = θ G y, ascending, with Yᵀ G Y = I: Rayleigh–Ritz in a basis whose Gram matrix is G.

    ``factor`` is L⁻¹ for G = L·Lᵀ.
    """
    B = factor @ S @ factor.T
    theta, Z = torch.linalg.eigh(torch.from_numpy((B + B.T) / 2))
    return theta.numpy(), factor.T @ Z.numpy()


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
    # T's new column and the Gram matrix's new row. On the host, in float64: T = Q·(HQ)ᵀ completed symmetrically
    # from the measured or predicted columns, G = Q·Qᵀ, F = L⁻¹ for G = L·Lᵀ, and K with H·Qᵀ = Qᵀ·K.
    rows = torch.empty(basis + 1, 2, n, dtype=work, device=device)
    HQ, Q = rows[:, 0], rows[:, 1]
    T = np.zeros((basis, basis))
    G = np.zeros((basis, basis))
    F = np.zeros((basis, basis))  # extended by a row per step
    K = np.zeros((basis + 1, basis))  # the recurrence H·Q[:m]ᵀ = Q[:m + 1]ᵀ·K[:m + 1, :m]
    torch.div(q, q.norm(), out=Q[0])
    m, hvps, restarts, exhausted, lost, noise = 0, 0, 0, False, 0.0, 0.0
    predictable = False  # whether the next column may be predicted from the recurrence (not measured)

    while True:
        HQ[m].copy_(matmat(Q[m][:, None].to(dtype))[:, 0])
        squared_image = float(torch.dot(HQ[m], HQ[m]))  # while it is in the cache
        hvps += 1
        m += 1
        Qm, HQm = Q[:m], HQ[:m]
        j = m - 1
        predicted = predictable
        if predicted:
            # q_j = (H q_{j-1} − Q·K[:, j-1]) / K[j, j-1], so Q·q_j follows from the measured column j − 1, and
            # Q·(H q_j) = (H Q)·q_j = Kᵀ·(Q·q_j) by symmetry: a symmetric completion of the products from the lower
            # triangle (H q_i)·q_j instead of the upper q_i·(H q_j). Only q_j·H q_j needs a product.
            G[:j, j] = G[j, :j] = (T[:j, j - 1] - G[:j, :j] @ K[:j, j - 1]) / K[j, j - 1]
            G[j, j] = 1.0
            T[:j, j] = T[j, :j] = K[: j + 1, :j].T @ G[: j + 1, j]
            T[j, j] = float(torch.dot(Q[j], HQ[j]))
            gram = G[j, : j + 1]
        else:  # one pass over the basis: Q·(H q) and Q·q
            column, gram = torch.mm(rows[j], Qm.T).cpu().numpy()
            T[:m, j] = T[j, :m] = column
            G[:m, j] = G[j, :m] = gram
        _extend_inverse_factor(F, gram, m)
        # the Gram matrix enters the projections and the Rayleigh–Ritz step always: treating a basis as orthonormal
        # that is not (to ~1e-13 after steps without a pass) would show as a noise floor of |G − I|·‖H‖
        factor = F[:m, :m]
        column = T[:m, j]
        coefficients = factor.T @ (factor @ column)
        # the part of H q outside the basis. H q's coefficients on all but the two newest vectors vanish in exact
        # arithmetic (three-term recurrence): w = H q − c₁q₁ − c₂q₂ touches only those two. Its overlap with the
        # older vectors, Q·w = G·(the coefficients left out), is known; while it stays ≤ `_OVERLAP`·‖w‖ the next
        # vector is that far from orthogonal and the exact Gram matrix (measured in a later pass) carries it into
        # the Rayleigh–Ritz step. Beyond, one pass projects the whole basis out; with G exact that pass does what
        # the second pass of classical Gram–Schmidt ("twice is enough") would.
        newest = max(j - 1, 0)
        local = coefficients[newest:m]
        K[:m, j] = 0.0
        K[newest:m, j] = local
        # ‖w‖² = ‖H q‖² − 2 c·(Q H q) + c·G c over the two newest vectors: w is written already divided by ‖w‖
        # (one pass) unless that difference is mostly cancellation
        square = (
            squared_image - 2 * float(local @ column[newest:m]) + float(local @ G[newest:m, newest:m] @ local)
        )
        if square > 0 and square >= 1e-2 * squared_image:
            length = math.sqrt(square)
            w = torch.addmv(
                HQ[j],
                Q[newest:m].T,
                torch.from_numpy(local).to(device),
                beta=1 / length,
                alpha=-1 / length,
                out=Q[m],
            )
            scaled = True
        else:
            w = torch.addmv(HQ[j], Q[newest:m].T, torch.from_numpy(local).to(device), alpha=-1, out=Q[m])
            length, scaled = float(w.norm()), False
        older = max(m - 2, 0)
        overlap = G[:m, :older] @ coefficients[:older]  # Q·w
        if not np.abs(overlap).max(initial=0.0) <= _OVERLAP * length or m >= basis:
            # before a restart always: the kept Ritz vectors' residuals then all lie along the next vector
            torch.addmv(HQ[j], Qm.T, torch.from_numpy(coefficients).to(device), alpha=-1, out=w)
            K[:m, j] = coefficients
            outside = length = float(w.norm())
            scaled = False
        else:  # ‖(I − QᵀG⁻¹Q) w‖: the part of w (and of the residuals) outside the basis
            outside = math.sqrt(max(length**2 - float(np.sum((F[:m, :m] @ overlap) ** 2)), 0.0))
        K[m, j] = length
        inside = max(float(column @ coefficients), 0.0)  # ‖H q‖² = ‖its projection‖² + ‖w‖²
        # the next column follows from this measured one while w is not mostly cancellation (rounding ~ ε‖Hq‖/‖w‖)
        predictable = not predicted and outside >= 1e-3 * math.sqrt(inside + outside**2)
        if m >= n:
            exhausted = True
        elif outside <= 1e-10 * max(math.sqrt(inside + outside**2), 1e-300):  # invariant: continue elsewhere
            lost += outside  # this small part of H q stays outside the basis: bound it in the residuals
            inverse = factor.T @ factor
            Q[m].copy_(_project(_project(random_vector(), Qm, inverse), Qm, inverse))
            length, scaled = float(Q[m].norm()), False
            predictable = False  # the next vector does not follow from the recurrence
        theta, Y = _ritz(T[:m, :m], factor)
        index = _wanted(m, which, min(k, m))
        scale = float(np.abs(theta).max())
        # H x − θ x = ‖w‖·y_m·(the next vector) + a part inside the basis that only the operator's asymmetry
        # makes nonzero: the first is the estimate (no pass over the basis), and both are in the exact
        # residuals, which certify
        Yw = Y[:, index]
        limit = max(tol * max(scale, 1e-300), noise)
        likely = len(index) >= wanted_count and bool((np.abs(outside * Yw[-1]) + lost <= limit).all())
        certify = likely or exhausted or hvps >= max_hvps or m >= basis
        if certify:  # (at a restart: measure the noise)
            Yd = torch.from_numpy(Yw).to(device)
            X = Qm.T @ Yd
            R = HQm.T @ Yd - X * torch.from_numpy(theta[index]).to(device)
            residuals = R.norm(dim=0).cpu()
            # the asymmetry (Qᵀ H Q − its symmetric completion)·y: the part of the residual inside the basis
            inner = (Qm @ R).cpu().numpy()
            skew = np.linalg.norm(factor @ inner, axis=0)
            noise = max(noise, 10 * float(skew.max()))
            limit = max(limit, noise)
            converged = residuals <= limit
            done = len(index) >= wanted_count and bool(converged.all())
            if done or exhausted or hvps >= max_hvps:
                break
        if not scaled:
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
            F[:size, :size] = np.linalg.inv(np.linalg.cholesky(G[:size, :size]))
            # H x = θ x + (‖w‖·y_m) q_next for each kept Ritz vector x (to the operator's asymmetry)
            K[: size + 1, :size] = 0.0
            K[np.arange(size), np.arange(size)] = theta[kept]
            K[size, :size] = length * Yk[-1]
            m = size
            predictable = False  # the next vector continues from all kept vectors at once
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
