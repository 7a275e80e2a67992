"""The cheap per-step signals: per-parameter gradient norms every step, and η/σ from optimizer state.

The per-step path reads the gradients once (``torch._foreach_norm``) and nothing else; the update Δθ is
measured by :mod:`ravine.diagnose._updates`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ravine.diagnose._terms import effective_lrs

__all__ = ["effective_lr_stats", "layer_grad_norms"]


def _stack_norms(norms: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    try:
        return torch.stack(list(norms))
    except RuntimeError:  # mixed dtypes or devices
        return torch.stack([n.float().to(device) for n in norms])


def layer_grad_norms(params: Sequence[torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Per-parameter ‖g‖ (0 where there is no gradient) and the number of parameters without one."""
    device = params[0].device
    grads = [p.grad for p in params]
    present = [g for g in grads if g is not None]
    if not present:
        return torch.zeros(len(params), device=device), len(params)
    if any(g.is_sparse for g in present):
        norms = [g.coalesce().values().norm() for g in present]
    else:
        norms = list(torch._foreach_norm(present))
    if len(present) == len(grads):
        return _stack_norms(norms, device), 0
    it = iter(norms)
    zero = torch.zeros((), dtype=norms[0].dtype, device=norms[0].device)
    return _stack_norms([zero if g is None else next(it) for g in grads], device), len(grads) - len(present)


def effective_lr_stats(
    optimizer: torch.optim.Optimizer | None, params: Sequence[torch.Tensor]
) -> tuple[float, float]:
    """Largest and median per-element η/σ, from ravine's optimizer or from torch's adaptive optimizers' state."""
    pieces = [e.reshape(-1).float() for e in effective_lrs(optimizer, params) if e is not None]
    if not pieces:
        return math.nan, math.nan
    flat = torch.cat(pieces)
    return float(flat.max()), float(flat.median())
