r"""Gradient clipping as chain parts, and accumulation over micro-batches (optax's MultiSteps).

==================  ===========================================================  ======================
transform           d                                                            state keys
==================  ===========================================================  ======================
ClipByGlobalNorm    g · min(1, c/(‖g‖₂ + 1e-6)), ‖g‖ over the group's gradients    pre_clip_norm (0-d)
                    (torch.nn.utils.clip_grad_norm_'s formula)
ClipByValue         clamp(g, −c, c)  (torch.nn.utils.clip_grad_value_)
AdaptiveClip        per unit i (row of a matrix, whole vector): g_i ·                pre_clip_norm (0-d)
                    min(1, λ·max(‖θ_i‖, ε)/‖g_i‖)  (Brock et al. 2021, AGC)
==================  ===========================================================  ======================

The **pre-clip norm** is kept in the state (``pre_clip_norm``: a 0-d tensor per parameter, the group's
global norm for :class:`ClipByGlobalNorm`, the parameter's own norm for :class:`AdaptiveClip`), so it
costs no extra pass, survives checkpoints, and a compiled step needs no host sync to record it;
``ChainOptimizer.pre_clip_norm()`` reads it (the Tuning Playbook's "log the unclipped gradient norm").
Put clipping first in the chain: ``chain(ClipByGlobalNorm(1.0), WeightDecay(λ), Adam())``.

A global norm needs all of a group's gradients at once: ``scope = "group"`` tells the optimizer not to
cut the group into cache-sized chunks (AdaptiveClip's per-row norms: ``scope = "tensor"``, no flat slices).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ravine._validate import check_nonnegative, check_positive
from ravine.optim._scalars import Scalar
from ravine.optim._transforms import Transform, TransformState

__all__ = ["AdaptiveClip", "ClipByGlobalNorm", "ClipByValue"]


def _norm_state(params: Sequence[torch.Tensor]) -> TransformState:
    return {"pre_clip_norm": [torch.zeros((), dtype=p.real.dtype, device=p.device) for p in params]}


class ClipByGlobalNorm(Transform):
    r"""Scale the group's gradients so that their global 2-norm is at most ``max_norm`` (as torch's
    ``clip_grad_norm_``: coefficient min(1, max_norm/(‖g‖ + 1e-6)), no host sync).

    Args:
        max_norm: c > 0.
    """

    scope = "group"

    def __init__(self, max_norm: float) -> None:
        self.max_norm = check_positive("ClipByGlobalNorm", "max_norm", max_norm)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return _norm_state(params)

    @staticmethod
    def total_norm(updates: list[torch.Tensor]) -> torch.Tensor:
        """‖g‖₂ over all of ``updates`` (0-d, no host sync); it is finite iff every element is finite, unless
        the squares overflow. The optimizer reads it as the NaN/Inf check of a group this clip leads."""
        norms = torch._foreach_norm(updates, 2.0)
        total: torch.Tensor = torch.linalg.vector_norm(
            torch.stack([n.to(norms[0].device) for n in norms]), 2.0
        )
        return total

    def coefficient(self, total: torch.Tensor, state: TransformState) -> torch.Tensor:
        """min(1, c/(‖g‖ + 1e-6)) for the global norm ``total``, which is recorded as the pre-clip norm."""
        for slot in state["pre_clip_norm"]:
            slot.copy_(total)
        return torch.clamp(self.max_norm / (total + 1e-6), max=1.0)

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params, step
        if not updates:
            return updates
        return list(torch._foreach_mul(updates, self.coefficient(self.total_norm(updates), state)))


class ClipByValue(Transform):
    """Clamp every gradient element to [−c, c] (torch's ``clip_grad_value_``).

    Args:
        clip_value: c ≥ 0.
    """

    def __init__(self, clip_value: float) -> None:
        self.clip_value = check_nonnegative("ClipByValue", "clip_value", clip_value)

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del state, params, step
        clipped = list(torch._foreach_clamp_min(updates, -self.clip_value))
        torch._foreach_clamp_max_(clipped, self.clip_value)
        return clipped


def _unit_norms(tensor: torch.Tensor) -> torch.Tensor:
    """‖·‖₂ per output unit: over all dims but the first for ≥ 2-D tensors, the whole tensor otherwise."""
    norms: torch.Tensor
    if tensor.ndim <= 1:
        norms = torch.linalg.vector_norm(tensor)
    else:
        norms = torch.linalg.vector_norm(tensor, dim=tuple(range(1, tensor.ndim)), keepdim=True)
    return norms


class AdaptiveClip(Transform):
    r"""Adaptive gradient clipping (Brock et al. 2021, NFNets): per unit, clip ‖g_i‖ to λ·max(‖θ_i‖, ε).

    Args:
        clipping: λ > 0 (the paper: 0.01–0.16 depending on batch size).
        eps: ε > 0, so that zero-initialised units still move (paper: 1e-3).
    """

    reads_params = True
    scope = "tensor"

    def __init__(self, clipping: float = 0.01, *, eps: float = 1e-3) -> None:
        self.clipping = check_positive("AdaptiveClip", "clipping", clipping)
        self.eps = check_positive("AdaptiveClip", "eps", eps)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return _norm_state(params)

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del step
        out = []
        for g, p, slot in zip(updates, params, state["pre_clip_norm"], strict=True):
            slot.copy_(torch.linalg.vector_norm(g))
            limit = _unit_norms(p).clamp_min(self.eps) * self.clipping
            g_norm = _unit_norms(g)
            scale = torch.where(g_norm > limit, limit / g_norm.clamp_min(1e-6), torch.ones_like(g_norm))
            out.append(g * scale)
        return out
