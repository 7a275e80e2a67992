r"""Sign-based rules: every coordinate moves by a step size times a sign, so σ_t does not apply.

=========  =========================================================================  =====================
transform  update                                                                     state keys
=========  =========================================================================  =====================
Lion       c = β₁m + (1−β₁)g; d = sign(c); m ← β₂m + (1−β₂)g  (Chen et al. 2023)      exp_avg
Rprop      s ← clamp(s·η±, s_min, s_max) by the sign of g·g_prev (η₊ if > 0, η₋ if    prev, step_size
           < 0, 1 if 0); where the sign flipped, g ← 0; θ ← θ − sign(g)·s (torch's
           Rprop; s starts at lr, which is then unused)
=========  =========================================================================  =====================

Lion is the lecture's m_t with η_t/σ_t replaced by η_t·sign: |Δθ| = η for every coordinate, which is why
it wants a 3–10× smaller learning rate than AdamW. Neither rule defines an effective learning rate
(``ChainOptimizer.effective_lr`` says so); Rprop's per-element step is its ``step_size`` state.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ravine._validate import check_nonnegative, check_positive, check_unit_interval
from ravine.errors import ConfigError
from ravine.optim._scalars import Scalar
from ravine.optim._transforms import Transform, TransformState

__all__ = ["Lion", "Rprop"]


class Lion(Transform):
    r"""Lion (EvoLved Sign Momentum, Chen et al. 2023): d = sign(β₁m + (1−β₁)g), then m ← β₂m + (1−β₂)g.

    Decoupled weight decay goes after it in the chain (``chain(Lion(), DecoupledWeightDecay(λ))``), the
    paper's θ ← θ − η(sign(c) + λθ).

    Args:
        beta1: β₁ in [0, 1), the interpolation that is signed (paper: 0.9).
        beta2: β₂ in [0, 1), the momentum's decay (paper: 0.99).
    """

    defines_effective_lr = False

    def __init__(self, beta1: float = 0.9, beta2: float = 0.99) -> None:
        self.beta1 = check_unit_interval("lion", "beta1", beta1)
        self.beta2 = check_unit_interval("lion", "beta2", beta2)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return {"exp_avg": [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]}

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params, step
        exp_avg = state["exp_avg"]
        direction = list(torch._foreach_lerp(exp_avg, updates, 1.0 - self.beta1))
        torch._foreach_sign_(direction)
        torch._foreach_lerp_(exp_avg, updates, 1.0 - self.beta2)
        return direction

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        return state["exp_avg"]


class Rprop(Transform):
    r"""Resilient backpropagation, torch's variant (see the module table).

    Keep it last in a chain: the optimizer then calls :meth:`apply`, which ignores η after the first step
    (as torch's Rprop does with ``lr``).

    Args:
        etas: (η₋, η₊) with 0 < η₋ < 1 < η₊.
        step_sizes: (s_min, s_max), 0 ≤ s_min ≤ s_max.
    """

    defines_effective_lr = False

    def __init__(
        self, etas: tuple[float, float] = (0.5, 1.2), step_sizes: tuple[float, float] = (1e-6, 50.0)
    ) -> None:
        eta_minus, eta_plus = (float(v) for v in etas)
        if not 0.0 < eta_minus < 1.0 < eta_plus:
            raise ConfigError(f"rprop: etas must satisfy 0 < etaminus < 1 < etaplus, got {etas=!r}")
        low = check_nonnegative("rprop", "step_size_min", step_sizes[0])
        high = check_positive("rprop", "step_size_max", step_sizes[1])
        if low > high:
            raise ConfigError(f"rprop: step_sizes must be (min, max) with min <= max, got {step_sizes=!r}")
        self.etas = (eta_minus, eta_plus)
        self.step_sizes = (low, high)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        zeros = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        return {
            "prev": zeros,
            "step_size": [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params],
        }

    def _advance(self, updates: list[torch.Tensor], state: TransformState, step: Scalar, lr: Scalar) -> None:
        """Advance the state by g: s ← clamp(s·η±, …), and ``prev`` ← g with its flipped coordinates zeroed.

        The step is then sign(prev)·s. Every op is exact but the product s·η±, so the result equals torch's
        bit for bit; the masks are computed once and the factor is written into the sign tensor in place.
        """
        eta_minus, eta_plus = self.etas
        prev, step_size = state["prev"], state["step_size"]
        first = step == 1
        for s in step_size:  # s starts at lr (torch fills it when it creates the state)
            if isinstance(first, torch.Tensor):
                s.copy_(torch.where(first, torch.as_tensor(lr, dtype=s.dtype), s))
            elif first:
                s.fill_(float(lr))
        for g, p_g, s in zip(updates, prev, step_size, strict=True):
            factor = torch.mul(g, p_g).sign_()
            grew, flipped = factor > 0, factor < 0
            factor.fill_(1.0).masked_fill_(grew, eta_plus).masked_fill_(flipped, eta_minus)
            s.mul_(factor).clamp_(*self.step_sizes)
            p_g.copy_(g).masked_fill_(flipped, 0.0)

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        """sign(g)·s with unit-free step sizes that start at 1 (the caller's η scales them); as the last part
        of a chain (:meth:`apply`) s starts at η and is the step itself, as torch's."""
        del params
        self._advance(updates, state, step, 1.0)
        return [p_g.sign().mul_(s) for p_g, s in zip(state["prev"], state["step_size"], strict=True)]

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        self._advance(updates, state, step, lr)
        for p, p_g, s in zip(params, state["prev"], state["step_size"], strict=True):
            p.addcmul_(p_g.sign(), s, value=-1.0)  # θ − sign·s: the product is exact, one rounding as torch
