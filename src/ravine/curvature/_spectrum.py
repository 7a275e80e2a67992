"""Spectral density by stochastic Lanczos quadrature (SLQ); trace by Hutchinson and Hutch++.

SLQ: for a random unit probe z, m Lanczos steps give nodes θ_j and weights τ_j² (first components of T's
eigenvectors) with zᵀ f(H) z ≈ Σ_j τ_j² f(θ_j); averaging over probes estimates (1/n) tr f(H), i.e. the
spectral density, the trace, and the shares of positive / negative / flat eigenvalues, with a standard
error across probes.

A share is the quadrature of a step function, which Gauss quadrature gets only approximately when m < n:
a cluster of eigenvalues at the threshold (e.g. many exact zeros) is smeared onto the nearest nodes. The
Chebyshev-Markov-Stieltjes inequalities bound that error per probe by the weights of the two nodes next to
the threshold; ravine reports the bound next to the standard error (zero when every probe's Krylov space
became invariant, where the quadrature is exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from ravine.curvature._lanczos import as_matmat
from ravine.errors import ConfigError

__all__ = ["SpectralDensity", "TraceEstimate", "hutchinson", "hutchpp", "spectral_density"]


@dataclass(frozen=True)
class SpectralDensity:
    """A Gaussian-smoothed spectral density and sign shares estimated by SLQ.

    Attributes:
        grid: Points t where the density is evaluated.
        density: φ(t) = (1/n) Σ_i N(t; λ_i, σ²) estimated; integrates to ≈ 1 over the grid.
        nodes: Ritz values per probe, shape (probes, steps).
        weights: Quadrature weights τ² per probe (each row sums to 1).
        sigma: Width of the Gaussian kernel.
        positive_share, negative_share, flat_share: Estimated shares of eigenvalues > thr, < −thr and
            within ±thr, where thr = eps · max |λ|.
        positive_stderr, negative_stderr, flat_stderr: Standard errors of the shares across probes (the
            random part of the error).
        positive_bound, negative_bound, flat_bound: Bounds on the quadrature part of the error (mean over
            probes of the Chebyshev-Markov-Stieltjes bound); |share − truth| ≲ 3·stderr + bound.
        minimum_ratio: positive / (positive + negative), flat eigenvalues left out.
        minimum_ratio_stderr: Its jackknife standard error across probes.
        minimum_ratio_bound: The quadrature part of its error, from the share bounds.
        trace: Estimated trace n · mean_p Σ_j τ²θ, with ``trace_stderr``.
        eps: The relative flat threshold; ``threshold`` = eps · ``lambda_abs_max``.
        num_probes, num_steps, num_hvps: Work done.
    """

    grid: Tensor
    density: Tensor
    nodes: Tensor
    weights: Tensor
    sigma: float
    positive_share: float
    negative_share: float
    flat_share: float
    positive_stderr: float
    negative_stderr: float
    flat_stderr: float
    positive_bound: float
    negative_bound: float
    flat_bound: float
    minimum_ratio: float
    minimum_ratio_stderr: float
    minimum_ratio_bound: float
    trace: float
    trace_stderr: float
    eps: float
    threshold: float
    lambda_abs_max: float
    num_probes: int
    num_steps: int
    num_hvps: int


@dataclass(frozen=True)
class TraceEstimate:
    """A stochastic trace estimate with its standard error (over probes)."""

    estimate: float
    stderr: float
    num_hvps: int
    method: str


def _rademacher(n: int, k: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return (torch.randint(0, 2, (n, k), generator=generator, dtype=torch.float64) * 2 - 1).to(device)


def _stderr(values: Tensor) -> float:
    return float(values.std(unbiased=True) / math.sqrt(values.shape[0])) if values.shape[0] > 1 else math.inf


def _below(nodes: Tensor, weights: Tensor, used: Tensor, t: float, *, strict: bool) -> tuple[Tensor, Tensor]:
    """Per probe: the quadrature of μ(−∞, t] (or μ(−∞, t) if strict) and its Chebyshev-Markov-Stieltjes bound.

    With nodes x_1 < … < x_m and weights w_j of the Gauss rule of a measure μ, Σ_{j<k} w_j ≤ μ(−∞, x_k) ≤
    μ(−∞, x_k] ≤ Σ_{j≤k} w_j; so μ(−∞, t] lies within the weight of the nodes adjacent to t of the plain
    quadrature sum: below by the weight of the largest node on the left, above by that of the smallest on
    the right. The bound returned is the larger of the two.
    """
    left = used & ((nodes < t) if strict else (nodes <= t))
    right = used & ~left
    estimate = (weights * left).sum(1)
    inf = torch.full_like(nodes, math.inf)
    w_left = weights.gather(1, torch.where(left, nodes, -inf).argmax(1, keepdim=True))[:, 0] * left.any(1)
    w_right = weights.gather(1, torch.where(right, nodes, inf).argmin(1, keepdim=True))[:, 0] * right.any(1)
    return estimate, torch.maximum(w_left, w_right)


def spectral_density(
    A: Any,
    *,
    num_probes: int = 10,
    num_steps: int = 40,
    eps: float = 1e-6,
    grid_size: int = 512,
    sigma: float | None = None,
    seed: int = 0,
) -> SpectralDensity:
    r"""Spectral density, trace and sign shares of a symmetric operator by stochastic Lanczos quadrature.

    All probes run at once (one ``matmat`` of ``num_probes`` columns per step), each with full
    reorthogonalisation. Cost: ``num_probes · num_steps`` products.

    Args:
        A: A :class:`HessianOperator`, an object with ``shape`` and ``matmat``/``matvec``, or a square tensor.
        num_probes: Rademacher probes (more → smaller standard errors, ∝ 1/√probes).
        num_steps: Lanczos steps per probe (more → finer quadrature); capped at n.
        eps: Eigenvalues with |λ| ≤ eps·max|λ| count as flat.
        grid_size: Points of the density grid.
        sigma: Kernel width (default 1% of the spectrum's width).
        seed: Seed of the probes.

    Example:
        >>> import torch
        >>> result = spectral_density(torch.diag(torch.tensor([-1.0, 1.0, 2.0, 3.0], dtype=torch.float64)))
        >>> round(result.negative_share, 6), round(result.trace, 6)
        (0.25, 5.0)
    """
    if num_probes < 1 or num_steps < 1:
        raise ConfigError(
            f"spectral_density: need num_probes ≥ 1 and num_steps ≥ 1, got {num_probes=}, {num_steps=}"
        )
    if grid_size < 2:
        raise ConfigError(f"spectral_density: grid_size must be at least 2, got {grid_size=}")
    n, matmat, dtype, device = as_matmat(A)
    m = min(num_steps, n)
    P = num_probes
    generator = torch.Generator(device="cpu").manual_seed(seed)
    V = _rademacher(n, P, generator, device)
    V = V / V.norm(dim=0)
    basis = torch.zeros(P, m, n, dtype=torch.float64, device=device)  # probe-major: one bmm per projection
    alpha = torch.zeros(P, m, dtype=torch.float64)
    beta = torch.zeros(P, m, dtype=torch.float64)
    length = torch.full((P,), m, dtype=torch.long)
    invariant = torch.zeros(P, dtype=torch.bool)
    alive = torch.ones(P, dtype=torch.bool, device=device)
    hvps = 0
    for j in range(m):
        basis[:, j] = V.T
        W = matmat(V.to(dtype)).to(torch.float64)
        hvps += P
        alpha[:, j] = (W * V).sum(0).cpu()
        rows, Qj = W.T.contiguous(), basis[:, : j + 1]
        for _ in range(2):  # full reorthogonalisation against this probe's basis
            coefficients = torch.bmm(Qj, rows[:, :, None])
            rows = rows - torch.bmm(coefficients.transpose(1, 2), Qj)[:, 0]
        W = rows.T
        b = W.norm(dim=0)
        scale = alpha[:, : j + 1].abs().max(dim=1).values.to(device).clamp_min(1e-300)
        stopped = alive & (b <= 1e-10 * scale)
        for p in torch.nonzero(stopped).flatten().tolist():
            length[p], invariant[p] = j + 1, True
        alive = alive & ~stopped
        if j + 1 < m:
            beta[:, j] = torch.where(alive, b, torch.zeros_like(b)).cpu()
            V = torch.where(alive, W / b.clamp_min(1e-300), torch.zeros_like(W))
        if not bool(alive.any()):
            break
    nodes = torch.full((P, m), float("nan"), dtype=torch.float64)
    weights = torch.zeros(P, m, dtype=torch.float64)
    for p in range(P):
        L = int(length[p])
        T = torch.diag(alpha[p, :L]) + torch.diag(beta[p, : L - 1], 1) + torch.diag(beta[p, : L - 1], -1)
        theta, U = torch.linalg.eigh(T)
        nodes[p, :L], weights[p, :L] = theta, U[0] ** 2
    finite = torch.isfinite(nodes)
    safe_nodes = torch.where(finite, nodes, torch.zeros_like(nodes))
    lambda_abs_max = float(safe_nodes.abs().max())
    threshold = eps * lambda_abs_max
    not_positive, positive_bound = _below(safe_nodes, weights, finite, threshold, strict=False)
    negative, negative_bound = _below(safe_nodes, weights, finite, -threshold, strict=True)
    positive = 1.0 - not_positive
    flat = 1.0 - positive - negative
    # quadrature is exact where a probe's Krylov space became invariant (or is the whole space)
    exact = invariant | (length >= n)
    positive_bound = torch.where(exact, torch.zeros_like(positive_bound), positive_bound)
    negative_bound = torch.where(exact, torch.zeros_like(negative_bound), negative_bound)
    traces = n * (weights * safe_nodes).sum(1)
    low, high = float(safe_nodes[finite].min()), float(safe_nodes[finite].max())
    width = max(high - low, 1e-12 * max(lambda_abs_max, 1e-300), 1e-300)
    kernel = sigma if sigma is not None else 0.01 * width
    if not kernel > 0:
        raise ConfigError(f"spectral_density: sigma must be positive, got {sigma=}")
    grid = torch.linspace(low - 4 * kernel, high + 4 * kernel, grid_size, dtype=torch.float64)
    gauss = torch.exp(-0.5 * ((grid[None, None, :] - safe_nodes[:, :, None]) / kernel) ** 2)
    density = (weights[:, :, None] * gauss).sum(1).mean(0) / (kernel * math.sqrt(2 * math.pi))
    mean_positive, mean_negative = float(positive.mean()), float(negative.mean())
    ratio = mean_positive / max(mean_positive + mean_negative, 1e-300)
    if P > 1:
        total_p, total_n = positive.sum(), negative.sum()
        loo = (total_p - positive) / (total_p - positive + total_n - negative).clamp_min(1e-300)
        ratio_stderr = float(math.sqrt((P - 1) / P * float(((loo - loo.mean()) ** 2).sum())))
    else:
        ratio_stderr = math.inf
    pos_bound, neg_bound = float(positive_bound.mean()), float(negative_bound.mean())
    low_p, high_p = max(mean_positive - pos_bound, 0.0), min(mean_positive + pos_bound, 1.0)
    low_n, high_n = max(mean_negative - neg_bound, 0.0), min(mean_negative + neg_bound, 1.0)
    ratio_low = low_p / (low_p + high_n) if low_p + high_n > 0 else 0.0
    ratio_high = high_p / (high_p + low_n) if high_p + low_n > 0 else 1.0
    ratio_bound = max(ratio - ratio_low, ratio_high - ratio, 0.0)
    return SpectralDensity(
        grid=grid,
        density=density,
        nodes=nodes,
        weights=weights,
        sigma=kernel,
        positive_share=mean_positive,
        negative_share=mean_negative,
        flat_share=float(flat.mean()),
        positive_stderr=_stderr(positive),
        negative_stderr=_stderr(negative),
        flat_stderr=_stderr(flat),
        positive_bound=pos_bound,
        negative_bound=neg_bound,
        flat_bound=pos_bound + neg_bound,
        minimum_ratio=ratio,
        minimum_ratio_stderr=ratio_stderr,
        minimum_ratio_bound=ratio_bound,
        trace=float(traces.mean()),
        trace_stderr=_stderr(traces),
        eps=eps,
        threshold=threshold,
        lambda_abs_max=lambda_abs_max,
        num_probes=P,
        num_steps=m,
        num_hvps=hvps,
    )


def hutchinson(
    A: Any,
    *,
    num_hvps: int = 100,
    seed: int = 0,
    distribution: Literal["rademacher", "gaussian"] = "rademacher",
) -> TraceEstimate:
    """Hutchinson's trace estimate tr(H) ≈ mean zᵀHz over random probes, with its standard error.

    Example:
        >>> import torch
        >>> estimate = hutchinson(torch.eye(50, dtype=torch.float64), num_hvps=10)
        >>> round(estimate.estimate, 9), estimate.stderr
        (50.0, 0.0)
    """
    if num_hvps < 2:
        raise ConfigError(f"hutchinson: num_hvps must be at least 2 (for a standard error), got {num_hvps=}")
    n, matmat, dtype, device = as_matmat(A)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    if distribution == "rademacher":
        Z = _rademacher(n, num_hvps, generator, device)
    elif distribution == "gaussian":
        Z = torch.randn(n, num_hvps, generator=generator, dtype=torch.float64).to(device)
    else:
        raise ConfigError(f"hutchinson: distribution must be 'rademacher' or 'gaussian', got {distribution=}")
    values = (Z * matmat(Z.to(dtype)).to(torch.float64)).sum(0).cpu()
    return TraceEstimate(float(values.mean()), _stderr(values), num_hvps, "hutchinson")


def hutchpp(A: Any, *, num_hvps: int = 99, seed: int = 0) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco, Woodruff 2021): exact trace on a sketched top subspace + Hutchinson on the rest.

    A third of the budget sketches range(H S), a third takes tr(QᵀHQ) exactly, a third runs Hutchinson on
    (I − QQᵀ)H(I − QQᵀ); the standard error is that of the last part. Much better than Hutchinson when a
    few large eigenvalues dominate the trace.
    """
    if num_hvps < 6:
        raise ConfigError(f"hutchpp: num_hvps must be at least 6, got {num_hvps=}")
    n, matmat, dtype, device = as_matmat(A)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    s = min(num_hvps // 3, n)
    rest = num_hvps - 2 * s
    S = _rademacher(n, s, generator, device)
    Q, _ = torch.linalg.qr(matmat(S.to(dtype)).to(torch.float64))
    head = float(torch.trace(Q.T @ matmat(Q.to(dtype)).to(torch.float64)))
    G = _rademacher(n, rest, generator, device)
    G = G - Q @ (Q.T @ G)
    values = (G * matmat(G.to(dtype)).to(torch.float64)).sum(0).cpu()
    tail = float(values.mean())
    return TraceEstimate(head + tail, _stderr(values), 2 * s + rest, "hutch++")
