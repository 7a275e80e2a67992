"""Amortised probes: curvature along the update, gradient noise, and a small-gradient classification.

The Hessian's extreme eigenvalues (plateau classification) come from :mod:`ravine.curvature`, not from here.
Every probe runs on the live model by double backward (``torch.autograd.grad`` with ``create_graph=True``), so
it never touches ``p.grad``. To leave the training trajectory bit-identical the monitor runs it under
:func:`~ravine.diagnose._isolation.isolated` (private generators for dropout, module buffers restored).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["CurvatureNoise", "probe_curvature_noise"]

Tensors = list[torch.Tensor]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(
        (torch.sum(x.double() * y.double()) for x, y in zip(a, b, strict=True)),
        torch.zeros((), dtype=torch.float64),
    )


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor], *, create_graph: bool) -> Tensors:
    grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


@dataclass(frozen=True)
class CurvatureNoise:
    """Result of :func:`probe_curvature_noise` (NaN where not measured)."""

    curvature: float
    overshoot: float
    snr: float
    noise_scale: float
    grad_norm: float
    trace_sigma: float = math.nan
    signal: float = math.nan
    objective_grad_norm: float = math.nan


def probe_curvature_noise(
    params: Sequence[torch.Tensor],
    direction: Sequence[torch.Tensor] | None,
    halves: Sequence[Callable[[], torch.Tensor]],
    *,
    train_batch_size: int,
    half_sizes: Sequence[int],
    coupled_decay: float = 0.0,
) -> CurvatureNoise:
    """Curvature along ``direction`` and the gradient noise from two half-batch losses.

    With g_A, g_B the half-batch gradients (b_A, b_B samples) and g their mean, tr Σ ≈ ‖g_A − g_B‖² / (1/b_A +
    1/b_B); the signal ‖E g‖² ≈ ‖g‖² − tr Σ/(b_A + b_B). For the last update d, dᵀHd comes from one
    Hessian-vector product; the gradient that made d is estimated as g_prev ≈ g − Hd (exact on a quadratic), so
    ``overshoot = dᵀHd / (−g_prevᵀd)`` is the step's length over the 1-D optimum along d. With coupled weight
    decay λ the objective is L + λ‖θ‖²/2: its gradient g + λθ and Hessian H + λI are used throughout. A step
    that was not a descent direction for the estimated gradient (g_prevᵀd ≥ 0, common with momentum, adaptive
    denominators and noisy batches) has no 1-D optimum ahead: its overshoot is NaN, not infinite. A negative
    signal estimate is kept as measured (``signal``) but the SNR is then 0 and the noise scale infinite.
    """
    want_hvp = direction is not None
    losses = [closure() for closure in halves]
    grads_per_half = [_grads(loss, params, create_graph=want_hvp) for loss in losses]
    if len(grads_per_half) == 1:
        g = grads_per_half[0]
        snr = noise_scale = trace_sigma = signal = math.nan
    else:
        ga, gb = grads_per_half
        na, nb = half_sizes
        total = na + nb
        g = [(a * na + b * nb) / total for a, b in zip(ga, gb, strict=True)]
        with torch.no_grad():
            diff = float(
                _dot(
                    [a - b for a, b in zip(ga, gb, strict=True)], [a - b for a, b in zip(ga, gb, strict=True)]
                )
            )
            trace_sigma = diff / (1.0 / na + 1.0 / nb)
            signal = float(_dot(g, g)) - trace_sigma / total
            noise_train = trace_sigma / max(train_batch_size, 1)
            snr = max(signal, 0.0) / noise_train if noise_train > 0 else math.inf
            noise_scale = trace_sigma / signal if signal > 0 else math.inf
    detached = [x.detach() for x in g]
    grad_norm = math.sqrt(max(float(_dot(detached, detached)), 0.0))
    objective = detached
    if coupled_decay > 0:
        objective = [x + coupled_decay * p.detach() for x, p in zip(detached, params, strict=True)]
    objective_grad_norm = math.sqrt(max(float(_dot(objective, objective)), 0.0))
    curvature = overshoot = math.nan
    if direction is not None:
        d_norm2 = float(_dot(direction, direction))
        if d_norm2 > 0:
            gd = _dot(g, [d.to(x.dtype) for d, x in zip(direction, g, strict=True)])
            hd = torch.autograd.grad(gd.to(g[0].dtype) if g else gd, params, allow_unused=True)
            hd_list = [torch.zeros_like(p) if h is None else h for h, p in zip(hd, params, strict=True)]
            dhd = float(_dot(direction, hd_list)) + coupled_decay * d_norm2
            curvature = dhd / d_norm2
            g_prev_d = float(_dot(objective, direction)) - dhd
            overshoot = dhd / -g_prev_d if g_prev_d < 0 else math.nan
    return CurvatureNoise(
        curvature,
        overshoot,
        snr,
        noise_scale,
        grad_norm,
        trace_sigma,
        signal,
        objective_grad_norm,
    )
