r"""Several element-wise rules as one update: the lab's groups of GD, heavy ball, Adagrad and RMSProp fused.

Each of these rules is the lecture's d_t = m_t / σ_t with a per-configuration choice of coefficients:

=============================  ========  ===========================  =========================  ======
rule                           μ (of m)  v_t = a·v_{t−1} + c·g_t²      σ_t = sqrt(v_t)·r_t + e    v_0
=============================  ========  ===========================  =========================  ======
GD (``Identity``)              0         a = 0, c = 0                 r = 0, e = 1 (σ = 1)       0
heavy ball (``Momentum(μ)``)   μ         a = 0, c = 0                 r = 0, e = 1               0
``AdagradMean(eps)``           0         a = 1, c = 1                 r = 1/sqrt(t), e = ε       0
``AdagradSum(eps, s_0)``       0         a = 1, c = 1                 r = 1, e = ε               s_0
``RMSProp(α, eps)``            0         a = α, c = 1 − α             r = 1, e = ε               0
=============================  ========  ===========================  =========================  ======

with m_t = μ·m_{t−1} + g_t (m_0 = 0, so heavy ball's b_1 = g_1 and the others' m_t = g_t). So one set of
about ten tensor operations advances every configuration of all these groups, whatever the mix, and a lab
run's time grows with the number of configurations, not with the number of rules. Each operation is the
one the rule's own transform does (``mul_`` then ``add_`` for momentum, ``addcmul_`` of (c·g)·g for v,
sqrt · r + ε, a division), so the results are those of the per-group runs (the test compares them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ravine.optim import AdagradMean, AdagradSum, Identity, Momentum, RMSProp, Transform
from ravine.optim._scalars import Scalar
from ravine.optim._transforms import TransformState

__all__ = ["MixedRule", "fusable"]


def fusable(transform: Transform) -> bool:
    """Whether :class:`MixedRule` can run ``transform`` (the rules of the module table, as they are)."""
    kind = type(transform)
    if kind is Momentum:
        assert isinstance(transform, Momentum)
        return transform.dampening == 0 and not transform.nesterov
    if kind is RMSProp:
        assert isinstance(transform, RMSProp)
        return not transform.centered
    return kind in (Identity, AdagradMean, AdagradSum)


def _row(transform: Transform) -> tuple[float, float, float, float, float, float, float]:
    """(μ, a, c, e, mean, root, v_0) of one rule; ``mean``/``root`` select r = 1/sqrt(t) or r = 1."""
    if isinstance(transform, Momentum):
        return transform.momentum, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0
    if isinstance(transform, RMSProp):
        return 0.0, transform.alpha, 1.0 - transform.alpha, transform.eps, 0.0, 1.0, 0.0
    if type(transform) is AdagradMean:
        return 0.0, 1.0, 1.0, transform.eps, 1.0, 0.0, 0.0
    if isinstance(transform, AdagradSum):
        return 0.0, 1.0, 1.0, transform.eps, 0.0, 1.0, transform.initial_accumulator_value
    return 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0  # Identity


class MixedRule(Transform):
    """The rules ``parts`` (each with its number of rows) as one update of an (n, 2) parameter.

    Args:
        parts: (transform, rows) in row order; every transform must be :func:`fusable`.
    """

    def __init__(self, parts: Sequence[tuple[Transform, int]]) -> None:
        self.parts = tuple((transform, int(rows)) for transform, rows in parts)
        self._rows = [_row(transform) for transform, rows in self.parts for _ in range(rows)]

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        if not params:
            return {}
        (theta,) = params
        columns = torch.tensor(self._rows, dtype=theta.dtype).T.unsqueeze(-1)  # (7, n, 1)
        mu, a, c, e, mean, root, v0 = columns.unbind(0)
        scratch = [
            torch.empty_like(theta),
            torch.empty_like(theta),
            torch.empty_like(mu),
            torch.empty_like(theta),
        ]
        return {
            "m": [torch.zeros_like(theta)],
            "v": [v0.expand_as(theta).clone()],
            "coefficients": [mu, a, c, e, mean, root],
            "scratch": scratch,
        }

    def _sigma(self, state: TransformState, step: Scalar, out: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        _, _, _, e, mean, root = state["coefficients"]
        torch.add(root, mean, alpha=1.0 / math.sqrt(float(step)), out=r)
        torch.sqrt(state["v"][0], out=out)
        return out.mul_(r).add_(e)

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params
        (g,) = updates
        mu, a, c, _, _, _ = state["coefficients"]
        gc, sigma, r, d = state["scratch"]
        m, v = state["m"][0], state["v"][0]
        m.mul_(mu).add_(g)
        v.mul_(a).addcmul_(torch.mul(g, c, out=gc), g)
        return [torch.div(m, self._sigma(state, step, sigma, r), out=d)]

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        v = state["v"][0]
        return [self._sigma(state, step, torch.empty_like(v), torch.empty_like(state["coefficients"][0]))]

    def __repr__(self) -> str:
        return f"MixedRule({', '.join(f'{t!r} × {rows}' for t, rows in self.parts)})"
