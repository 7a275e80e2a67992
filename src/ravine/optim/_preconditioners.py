r"""σ_t kinds: the transforms that divide the direction by a per-element denominator.

Each returns d = m_t / σ_t (for Adam-type rules m_t is the EMA momentum they keep themselves) and exposes
σ_t through :meth:`~ravine.optim.Transform.denominator`, defined so that **η_t/σ_t ⊙ (momentum buffer) is
the step** whenever the transform keeps the momentum itself (Adam, RAdam): the bias correction of m is
folded into σ. For Adagrad/RMSProp σ_t is the plain denominator.

=================  ===========================================================  ==================
transform          σ_t                                                          state keys
=================  ===========================================================  ==================
AdagradMean        sqrt(1/t · Σ_{k≤t} g_k²) + ε  (lecture: root *mean* square)   sum
AdagradSum         sqrt(a_0 + Σ_{k≤t} g_k²) + ε  (torch: root *sum* square)      sum
RMSProp            sqrt(v_t) + ε, v_t = α v_{t−1} + (1−α) g²; centered:         square_avg, grad_avg
                   sqrt(v_t − ḡ_t²) + ε
Adam               (sqrt(v_t/(1−β₂^t)) + ε)·(1−β₁^t)                            exp_avg, exp_avg_sq
                   (amsgrad: max of v over time)                                (max_exp_avg_sq)
RAdam              ρ_t > 5: (sqrt(v_t)+ε)·(1−β₁^t)/(sqrt(1−β₂^t)·r_t);          exp_avg, exp_avg_sq
                   else (1−β₁^t)  (plain bias-corrected momentum)
=================  ===========================================================  ==================

(t counts updates from 1; the lecture's t counts from 0, so its 1/(t+1) is 1/t here.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ravine._validate import check_nonnegative, check_positive, check_unit_interval
from ravine.optim._scalars import Scalar, add_scaled_, addcdiv_scaled_, looped, pick, sqrt
from ravine.optim._transforms import Transform, TransformState

__all__ = ["AdagradMean", "AdagradSum", "Adam", "RAdam", "RMSProp"]


def _zeros(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]


class AdagradSum(Transform):
    r"""torch's Adagrad: s_t = s_{t−1} + g_t², d = g_t / (sqrt(s_t) + ε), s_0 = initial_accumulator_value.

    Args:
        eps: ε > 0, added outside the square root.
        initial_accumulator_value: s_0 ≥ 0.
    """

    def __init__(self, *, eps: float = 1e-10, initial_accumulator_value: float = 0.0) -> None:
        self.eps = check_positive("adagrad", "eps", eps)
        self.initial_accumulator_value = check_nonnegative(
            "adagrad", "initial_accumulator_value", initial_accumulator_value
        )

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        value = self.initial_accumulator_value
        return {"sum": [torch.full_like(p, value, memory_format=torch.preserve_format) for p in params]}

    def _std(self, state: TransformState, step: Scalar) -> list[torch.Tensor]:
        del step
        std = list(torch._foreach_sqrt(state["sum"]))
        torch._foreach_add_(std, self.eps)
        return std

    def _accumulate(self, updates: list[torch.Tensor], state: TransformState) -> None:
        torch._foreach_addcmul_(state["sum"], updates, updates, value=1.0)

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params
        self._accumulate(updates, state)
        return list(torch._foreach_div(updates, self._std(state, step)))

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        if looped(params, step, lr):
            for p, g, total in zip(params, updates, state["sum"], strict=True):
                total.addcmul_(g, g, value=1.0)
                p.addcdiv_(g, self._std_one(total, step), value=-float(lr))
            return
        self._accumulate(updates, state)
        addcdiv_scaled_(params, updates, self._std(state, step), -lr)

    def _std_one(self, total: torch.Tensor, step: Scalar) -> torch.Tensor:
        """One parameter's σ_t (eager)."""
        del step
        return total.sqrt().add_(self.eps)

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        return self._std(state, step)


class AdagradMean(AdagradSum):
    r"""The lecture's Adagrad: σ_t = sqrt(1/t · Σ_{k=1..t} g_k²) + ε, the root *mean* square of the t
    gradients seen (the lecture writes 1/(t+1) with t from 0).

    Note: with η_t = η/sqrt(t) (t from 1; :class:`~ravine.optim.InverseSqrtDecay`) this equals torch's
    :class:`AdagradSum` up to ε (ε·sqrt(t) instead of ε); the lecture's sideways "explosions" need the mean.

    Args:
        eps: ε > 0, added outside the square root.

    Example:
        >>> import torch
        >>> from ravine.optim import AdagradMean
        >>> rule = AdagradMean(eps=1e-10)
        >>> p = [torch.zeros(1)]
        >>> state = rule.init(p)
        >>> _ = rule.update([torch.tensor([3.0])], state, p, step=1)
        >>> _ = rule.update([torch.tensor([4.0])], state, p, step=2)
        >>> round(rule.denominator(state, step=2)[0].item(), 4)  # sqrt((9 + 16) / 2)
        3.5355
    """

    def __init__(self, *, eps: float = 1e-10) -> None:
        super().__init__(eps=eps)

    def _std(self, state: TransformState, step: Scalar) -> list[torch.Tensor]:
        std = list(torch._foreach_sqrt(state["sum"]))
        torch._foreach_mul_(std, 1.0 / sqrt(step))
        torch._foreach_add_(std, self.eps)
        return std

    def _std_one(self, total: torch.Tensor, step: Scalar) -> torch.Tensor:
        return total.sqrt().mul_(1.0 / sqrt(step)).add_(self.eps)


class RMSProp(Transform):
    r"""RMSProp (torch style, no bias correction): v_t = α·v_{t−1} + (1 − α)·g_t², v_0 = 0,
    d = g/(sqrt(v_t) + ε).

    Centered: ḡ_t = α·ḡ_{t−1} + (1 − α)·g_t and σ_t = sqrt(max(v_t − ḡ_t², 0)) + ε. The clamp at 0 is
    ravine's: v_t − ḡ_t² can be slightly negative by round-off (e.g. α = 0), where torch's RMSprop
    produces NaN; elsewhere the two agree.

    Args:
        alpha: α in [0, 1).
        eps: ε > 0.
        centered: subtract the square of the mean gradient.
    """

    def __init__(self, alpha: float = 0.99, *, eps: float = 1e-8, centered: bool = False) -> None:
        self.alpha = check_unit_interval("rmsprop", "alpha", alpha)
        self.eps = check_positive("rmsprop", "eps", eps)
        self.centered = bool(centered)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        state = {"square_avg": _zeros(params)}
        if self.centered:
            state["grad_avg"] = _zeros(params)
        return state

    def _std(self, state: TransformState) -> list[torch.Tensor]:
        if self.centered:
            grad_avg = state["grad_avg"]
            std = list(torch._foreach_addcmul(state["square_avg"], grad_avg, grad_avg, value=-1.0))
            torch._foreach_clamp_min_(std, 0.0)  # v − ḡ² < 0 by round-off would give NaN (torch does)
            torch._foreach_sqrt_(std)
        else:
            std = list(torch._foreach_sqrt(state["square_avg"]))
        torch._foreach_add_(std, self.eps)
        return std

    def _accumulate(self, updates: list[torch.Tensor], state: TransformState) -> None:
        square_avg = state["square_avg"]
        torch._foreach_mul_(square_avg, self.alpha)
        torch._foreach_addcmul_(square_avg, updates, updates, value=1.0 - self.alpha)
        if self.centered:
            torch._foreach_lerp_(state["grad_avg"], updates, 1.0 - self.alpha)

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params, step
        self._accumulate(updates, state)
        return list(torch._foreach_div(updates, self._std(state)))

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        if looped(params, step, lr):
            alpha, eps = self.alpha, self.eps
            averages = state["grad_avg"] if self.centered else [None] * len(params)
            for p, g, square_avg, grad_avg in zip(
                params, updates, state["square_avg"], averages, strict=True
            ):
                square_avg.mul_(alpha).addcmul_(g, g, value=1.0 - alpha)
                if grad_avg is None:
                    std = square_avg.sqrt()
                else:
                    grad_avg.lerp_(g, 1.0 - alpha)
                    std = square_avg.addcmul(grad_avg, grad_avg, value=-1.0).clamp_min_(0.0).sqrt_()
                p.addcdiv_(g, std.add_(eps), value=-float(lr))
            return
        self._accumulate(updates, state)
        addcdiv_scaled_(params, updates, self._std(state), -lr)

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        del step
        return self._std(state)


class Adam(Transform):
    r"""Adam: m_t = β₁m + (1−β₁)g, v_t = β₂v + (1−β₂)g², d = m̂_t/(sqrt(v̂_t) + ε) with m̂ = m/(1−β₁^t),
    v̂ = v/(1−β₂^t) (torch's formula: ε added to sqrt(v̂)). amsgrad uses the running max of v.

    :meth:`denominator` is σ_t = (sqrt(v̂_t) + ε)·(1 − β₁^t), so that (η_t/σ_t)·m_t is the step.

    Args:
        beta1: β₁ in [0, 1).
        beta2: β₂ in [0, 1).
        eps: ε > 0.
        amsgrad: use max_{k≤t} v_k (state key ``"max_exp_avg_sq"``).
    """

    def __init__(
        self, beta1: float = 0.9, beta2: float = 0.999, *, eps: float = 1e-8, amsgrad: bool = False
    ) -> None:
        self.beta1 = check_unit_interval("adam", "beta1", beta1)
        self.beta2 = check_unit_interval("adam", "beta2", beta2)
        self.eps = check_positive("adam", "eps", eps)
        self.amsgrad = bool(amsgrad)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        state = {"exp_avg": _zeros(params), "exp_avg_sq": _zeros(params)}
        if self.amsgrad:
            state["max_exp_avg_sq"] = _zeros(params)
        return state

    def _accumulate(self, updates: list[torch.Tensor], state: TransformState) -> None:
        torch._foreach_lerp_(state["exp_avg"], updates, 1.0 - self.beta1)
        exp_avg_sq = state["exp_avg_sq"]
        torch._foreach_mul_(exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(exp_avg_sq, updates, updates, value=1.0 - self.beta2)
        if self.amsgrad:
            torch._foreach_maximum_(state["max_exp_avg_sq"], exp_avg_sq)

    def _root(self, state: TransformState, step: Scalar) -> list[torch.Tensor]:
        """sqrt(v̂_t) + ε (new tensors)."""
        second = state["max_exp_avg_sq"] if self.amsgrad else state["exp_avg_sq"]
        root = list(torch._foreach_sqrt(second))
        torch._foreach_div_(root, sqrt(1.0 - self.beta2**step))
        torch._foreach_add_(root, self.eps)
        return root

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params
        self._accumulate(updates, state)
        root = self._root(state, step)
        torch._foreach_mul_(root, 1.0 - self.beta1**step)
        return list(torch._foreach_div(state["exp_avg"], root))

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        if looped(params, step, lr):
            self._apply_looped(updates, state, params, step=float(step), lr=float(lr))
            return
        self._accumulate(updates, state)
        root = self._root(state, step)
        addcdiv_scaled_(params, state["exp_avg"], root, -lr / (1.0 - self.beta1**step))

    def _apply_looped(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: float,
        lr: float,
    ) -> None:
        """Eager CPU: one tensor at a time, torch's ops and rounding (the temporary stays in cache)."""
        beta1, beta2, eps = self.beta1, self.beta2, self.eps
        root_correction = math.sqrt(1.0 - beta2**step)
        value = -lr / (1.0 - beta1**step)
        maxima = state["max_exp_avg_sq"] if self.amsgrad else [None] * len(params)
        for p, g, m, v, v_max in zip(
            params, updates, state["exp_avg"], state["exp_avg_sq"], maxima, strict=True
        ):
            m.lerp_(g, 1.0 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
            second = v if v_max is None else torch.maximum(v_max, v, out=v_max)
            p.addcdiv_(m, second.sqrt().div_(root_correction).add_(eps), value=value)

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        root = self._root(state, step)
        torch._foreach_mul_(root, 1.0 - self.beta1**step)
        return root

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        return state["exp_avg"]


class RAdam(Transform):
    r"""RAdam (Liu et al. 2020), torch's formula: the EMA moments of Adam, ρ_∞ = 2/(1−β₂) − 1,
    ρ_t = ρ_∞ − 2tβ₂^t/(1−β₂^t). If ρ_t > 5: r_t = sqrt((ρ_t−4)(ρ_t−2)ρ_∞ / ((ρ_∞−4)(ρ_∞−2)ρ_t)) and
    d = m̂_t · r_t · sqrt(1−β₂^t)/(sqrt(v_t) + ε) (ε on the *uncorrected* sqrt(v)); else d = m̂_t.

    Args:
        beta1: β₁ in [0, 1).
        beta2: β₂ in [0, 1).
        eps: ε > 0.
    """

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, *, eps: float = 1e-8) -> None:
        self.beta1 = check_unit_interval("radam", "beta1", beta1)
        self.beta2 = check_unit_interval("radam", "beta2", beta2)
        self.eps = check_positive("radam", "eps", eps)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return {"exp_avg": _zeros(params), "exp_avg_sq": _zeros(params)}

    def rectification(self, step: Scalar) -> Scalar:
        """r_t, or 0.0 while ρ_t ≤ 5 (no adaptive step yet); a tensor for a tensor ``step``."""
        beta2 = self.beta2
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        rho_t = rho_inf - 2.0 * step * beta2**step / (1.0 - beta2**step)
        if isinstance(rho_t, torch.Tensor):
            ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            return torch.where(rho_t > 5.0, ratio.clamp_min(0.0).sqrt(), 0.0)
        if rho_t <= 5.0:
            return 0.0
        return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))

    def _accumulate(self, updates: list[torch.Tensor], state: TransformState) -> None:
        torch._foreach_lerp_(state["exp_avg"], updates, 1.0 - self.beta1)
        exp_avg_sq = state["exp_avg_sq"]
        torch._foreach_mul_(exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(exp_avg_sq, updates, updates, value=1.0 - self.beta2)

    def _root(self, state: TransformState) -> list[torch.Tensor]:
        root = list(torch._foreach_sqrt(state["exp_avg_sq"]))
        torch._foreach_add_(root, self.eps)
        return root

    def _scale(self, step: Scalar) -> tuple[Scalar, Scalar]:
        """(factor on m/(sqrt(v)+ε), or 0; factor on m when unrectified, or 0)."""
        bias_correction1 = 1.0 - self.beta1**step
        rect = self.rectification(step)
        if isinstance(rect, torch.Tensor):
            rectified = rect > 0
            adaptive = sqrt(1.0 - self.beta2**step) * rect / bias_correction1
            return adaptive, pick(rectified, 0.0, 1.0 / bias_correction1)
        if rect > 0:
            return math.sqrt(1.0 - self.beta2**step) * rect / bias_correction1, 0.0
        return 0.0, 1.0 / bias_correction1

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params
        self._accumulate(updates, state)
        adaptive, plain = self._scale(step)
        if isinstance(adaptive, torch.Tensor):  # compiled: both terms, one of them zero
            direction = list(torch._foreach_div(state["exp_avg"], self._root(state)))
            torch._foreach_mul_(direction, adaptive)
            add_scaled_(direction, state["exp_avg"], plain)
            return direction
        if adaptive == 0.0:
            return list(torch._foreach_mul(state["exp_avg"], plain))
        direction = list(torch._foreach_div(state["exp_avg"], self._root(state)))
        torch._foreach_mul_(direction, adaptive)
        return direction

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        self._accumulate(updates, state)
        adaptive, plain = self._scale(step)
        if isinstance(adaptive, torch.Tensor):  # compiled: both terms, one of them zero
            addcdiv_scaled_(params, state["exp_avg"], self._root(state), -lr * adaptive)
            add_scaled_(params, state["exp_avg"], -lr * plain)
        elif adaptive == 0.0:
            torch._foreach_add_(params, state["exp_avg"], alpha=float(-lr * plain))
        else:
            torch._foreach_addcdiv_(params, state["exp_avg"], self._root(state), value=float(-lr * adaptive))

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        adaptive, plain = self._scale(step)
        if adaptive == 0.0:
            return [torch.ones_like(m) / plain for m in state["exp_avg"]]
        root = self._root(state)
        torch._foreach_div_(root, adaptive)
        return root

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        return state["exp_avg"]
