r"""More σ_t kinds from torch.optim 2.13: NAdam, Adamax and Adadelta, with torch's formulas and state keys.

=========  ==============================================================  ==============================
transform  update (t from 1, λ-free; weight decay is a separate part)     state keys
=========  ==============================================================  ==============================
NAdam      μ_t = β₁(1 − ½·0.96^{tψ}), Π_t = Π_{k≤t} μ_k; m, v as Adam;    exp_avg, exp_avg_sq,
           d = [(1−μ_t)/(1−Π_t)·g + μ_{t+1}/(1−Π_tμ_{t+1})·m] / σ_t,       mu_product (0-d)
           σ_t = sqrt(v_t/(1−β₂^t)) + ε
Adamax     u_t = max(β₂u_{t−1}, |g| + ε); d = m_t/((1−β₁^t)·u_t)          exp_avg, exp_inf
Adadelta   v_t = ρv + (1−ρ)g²; d = sqrt(u_{t−1}+ε)/sqrt(v_t+ε)·g;           square_avg, acc_delta
           u_t = ρu + (1−ρ)d²  (η = lr, 1.0 by default)
=========  ==============================================================  ==============================

:meth:`~ravine.optim.Transform.denominator`: Adamax σ_t = (1−β₁^t)·u_t (so η/σ ⊙ m is the step); NAdam σ_t
as in the table (η/σ scales its Nesterov mix of g and m). Adadelta's scale needs u_{t−1}, which its state no
longer holds after the step, so it defines no effective learning rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ravine._validate import check_nonnegative, check_positive, check_unit_interval
from ravine.optim._scalars import Scalar, add_scaled_, addcdiv_scaled_, looped, scalar_dtype
from ravine.optim._transforms import Transform, TransformState

__all__ = ["Adadelta", "Adamax", "NAdam"]


def _zeros(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]


class NAdam(Transform):
    r"""NAdam (Dozat 2016), torch's form with the momentum-decay schedule μ_t (see the module table).

    Args:
        beta1: β₁ in [0, 1).
        beta2: β₂ in [0, 1).
        eps: ε > 0.
        momentum_decay: ψ ≥ 0 (torch's default 4e-3).
    """

    def __init__(
        self, beta1: float = 0.9, beta2: float = 0.999, *, eps: float = 1e-8, momentum_decay: float = 4e-3
    ) -> None:
        self.beta1 = check_unit_interval("nadam", "beta1", beta1)
        self.beta2 = check_unit_interval("nadam", "beta2", beta2)
        self.eps = check_positive("nadam", "eps", eps)
        self.momentum_decay = check_nonnegative("nadam", "momentum_decay", momentum_decay)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return {
            "exp_avg": _zeros(params),
            "exp_avg_sq": _zeros(params),
            "mu_product": [torch.ones((), dtype=scalar_dtype()) for _ in params],
        }

    def _mu(self, step: Scalar) -> Scalar:
        return self.beta1 * (1.0 - 0.5 * (0.96 ** (step * self.momentum_decay)))

    def _denom(self, state: TransformState, step: Scalar) -> list[torch.Tensor]:
        denom = list(torch._foreach_div(state["exp_avg_sq"], 1.0 - self.beta2**step))
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, self.eps)
        return denom

    def _advance(
        self, updates: list[torch.Tensor], state: TransformState, step: Scalar
    ) -> list[torch.Tensor]:
        products, mu = state["mu_product"], self._mu(step)
        if isinstance(mu, torch.Tensor) and products:  # round μ to Π's dtype first, as a Python scalar is
            mu = mu.to(products[0].dtype)
        torch._foreach_mul_(products, mu)
        torch._foreach_lerp_(state["exp_avg"], updates, 1.0 - self.beta1)
        exp_avg_sq = state["exp_avg_sq"]
        torch._foreach_mul_(exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(exp_avg_sq, updates, updates, value=1.0 - self.beta2)
        return self._denom(state, step)

    def _coefficients(self, state: TransformState, step: Scalar, lr: Scalar) -> list[tuple[Scalar, Scalar]]:
        """Per parameter, the factors on g/σ and on m/σ (torch reads each parameter's Π_t)."""
        mu, mu_next = self._mu(step), self._mu(step + 1)
        out: list[tuple[Scalar, Scalar]] = []
        for product in state["mu_product"]:
            value: Scalar = product.to(torch.float64) if isinstance(step, torch.Tensor) else product.item()
            out.append((-lr * (1.0 - mu) / (1.0 - value), -lr * mu_next / (1.0 - value * mu_next)))
        return out

    def _step(
        self,
        targets: list[torch.Tensor],
        updates: list[torch.Tensor],
        state: TransformState,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        denom = self._advance(updates, state, step)
        coefficients = self._coefficients(state, step, lr)
        if isinstance(step, torch.Tensor) or isinstance(lr, torch.Tensor):
            for i, (on_grad, on_avg) in enumerate(coefficients):
                addcdiv_scaled_(targets[i : i + 1], updates[i : i + 1], denom[i : i + 1], on_grad)
                addcdiv_scaled_(targets[i : i + 1], state["exp_avg"][i : i + 1], denom[i : i + 1], on_avg)
            return
        torch._foreach_addcdiv_(targets, updates, denom, [float(c[0]) for c in coefficients])
        torch._foreach_addcdiv_(targets, state["exp_avg"], denom, [float(c[1]) for c in coefficients])

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params
        direction = [torch.zeros_like(u) for u in updates]
        self._step(direction, updates, state, step, -1.0)
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
        if looped(params, step, lr):
            self._apply_looped(updates, state, params, step=float(step), lr=float(lr))
            return
        self._step(params, updates, state, step, lr)

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
        correction = 1.0 - beta2**step
        torch._foreach_mul_(state["mu_product"], self._mu(step))
        coefficients = self._coefficients(state, step, lr)
        rows = zip(params, updates, state["exp_avg"], state["exp_avg_sq"], coefficients, strict=True)
        for p, g, m, v, (on_grad, on_avg) in rows:
            m.lerp_(g, 1.0 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
            denom = v.div(correction).sqrt_().add_(eps)
            p.addcdiv_(g, denom, value=float(on_grad))
            p.addcdiv_(m, denom, value=float(on_avg))

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        return self._denom(state, step)

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        return state["exp_avg"]


class Adamax(Transform):
    r"""Adamax (Kingma & Ba 2015, §7.1), torch's form: u_t = max(β₂u_{t−1}, |g| + ε), d = m̂_t/u_t.

    Args:
        beta1: β₁ in [0, 1).
        beta2: β₂ in [0, 1).
        eps: ε > 0 (added to |g|, as torch).
    """

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, *, eps: float = 1e-8) -> None:
        self.beta1 = check_unit_interval("adamax", "beta1", beta1)
        self.beta2 = check_unit_interval("adamax", "beta2", beta2)
        self.eps = check_positive("adamax", "eps", eps)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return {"exp_avg": _zeros(params), "exp_inf": _zeros(params)}

    def _accumulate(self, updates: list[torch.Tensor], state: TransformState) -> None:
        torch._foreach_lerp_(state["exp_avg"], updates, 1.0 - self.beta1)
        exp_inf = state["exp_inf"]
        torch._foreach_mul_(exp_inf, self.beta2)
        norm = list(torch._foreach_abs(updates))
        torch._foreach_add_(norm, self.eps)
        torch._foreach_maximum_(exp_inf, norm)

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params
        self._accumulate(updates, state)
        direction = list(torch._foreach_div(state["exp_avg"], state["exp_inf"]))
        torch._foreach_div_(direction, 1.0 - self.beta1**step)
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
        value = -lr / (1.0 - self.beta1**step)
        if looped(params, step, lr):
            beta1, beta2, eps = self.beta1, self.beta2, self.eps
            for p, g, m, u in zip(params, updates, state["exp_avg"], state["exp_inf"], strict=True):
                m.lerp_(g, 1.0 - beta1)
                torch.maximum(u.mul_(beta2), g.abs().add_(eps), out=u)
                p.addcdiv_(m, u, value=float(value))
            return
        self._accumulate(updates, state)
        addcdiv_scaled_(params, state["exp_avg"], state["exp_inf"], value)

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        return list(torch._foreach_mul(state["exp_inf"], 1.0 - self.beta1**step))

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        return state["exp_avg"]


class Adadelta(Transform):
    r"""Adadelta (Zeiler 2012), torch's form (see the module table); no effective learning rate.

    Args:
        rho: ρ in [0, 1).
        eps: ε > 0 (inside both square roots, as torch).
    """

    defines_effective_lr = False

    def __init__(self, rho: float = 0.9, *, eps: float = 1e-6) -> None:
        self.rho = check_unit_interval("adadelta", "rho", rho)
        self.eps = check_positive("adadelta", "eps", eps)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return {"square_avg": _zeros(params), "acc_delta": _zeros(params)}

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params, step
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        torch._foreach_mul_(square_avg, self.rho)
        torch._foreach_addcmul_(square_avg, updates, updates, value=1.0 - self.rho)
        std = list(torch._foreach_add(square_avg, self.eps))
        torch._foreach_sqrt_(std)
        delta = list(torch._foreach_add(acc_delta, self.eps))
        torch._foreach_sqrt_(delta)
        torch._foreach_div_(delta, std)
        torch._foreach_mul_(delta, updates)
        torch._foreach_mul_(acc_delta, self.rho)
        torch._foreach_addcmul_(acc_delta, delta, delta, value=1.0 - self.rho)
        return delta

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
            rho, eps = self.rho, self.eps
            for p, g, square_avg, acc_delta in zip(
                params, updates, state["square_avg"], state["acc_delta"], strict=True
            ):
                square_avg.mul_(rho).addcmul_(g, g, value=1.0 - rho)
                delta = acc_delta.add(eps).sqrt_().div_(square_avg.add(eps).sqrt_()).mul_(g)
                acc_delta.mul_(rho).addcmul_(delta, delta, value=1.0 - rho)
                p.add_(delta, alpha=-float(lr))
            return
        add_scaled_(params, self.update(updates, state, params, step=step), -lr)
