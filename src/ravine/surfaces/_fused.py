r"""Several element-wise rules as one update: the lab's groups of GD, heavy ball, Adagrad and RMSProp fused.

Each of these rules is the lecture's θ ← θ − η_t·m_t/σ_t with a per-configuration choice of coefficients:

=============================  ========  ==========================  ===========================  ======
rule                           μ (of m)  u_t = a·u_{t−1} + g_t²      σ_t = sqrt(u_t)·ρ_t + e      u_0
=============================  ========  ==========================  ===========================  ======
GD (``Identity``)              0         a = 0                       ρ = 0, e = 1 (σ = 1)         0
heavy ball (``Momentum(μ)``)   μ         a = 0                       ρ = 0, e = 1                 0
``AdagradMean(eps)``           0         a = 1                       ρ = 1/sqrt(t), e = ε         0
``AdagradSum(eps, s_0)``       0         a = 1                       ρ = 1, e = ε                 s_0
``RMSProp(α, eps)``            0         a = α                       ρ = sqrt(1 − α), e = ε       0
=============================  ========  ==========================  ===========================  ======

with m_t = μ·m_{t−1} + g_t (m_0 = 0, so heavy ball's b_1 = g_1 and the others' m_t = g_t). RMSProp's
v_t = α·v_{t−1} + (1 − α)·g_t² is kept as u_t = v_t/(1 − α), so that m and u advance together as one
(2, n, 2) array: u ← a·u + g² and m ← μ·m + g are one multiply and one add. A step of every configuration
of all these groups, whatever the mix, is then nine array operations (g², the two for m and u, three for σ,
the division, η·d and θ − η·d): a lab run's time grows with the number of configurations, not of rules.

The operations run in NumPy on the run's own buffers (views of the same memory as the torch tensors):
for (n, 2) arrays an operation's fixed cost, not its arithmetic, is the step's cost, and NumPy's is about
half of torch's. The numbers equal the rules' own :mod:`ravine.optim` transforms to float rounding (a few
ulps per step: torch fuses a multiply-add where these are two roundings, and σ of RMSProp is
sqrt(1 − α)·sqrt(u) instead of sqrt(v)); the test bounds the difference over hundreds of steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch

from ravine.optim import AdagradMean, AdagradSum, Identity, Momentum, RMSProp, Transform
from ravine.optim._scalars import Scalar
from ravine.optim._transforms import TransformState

__all__ = ["MixedRule", "fusable"]

Array = npt.NDArray[np.floating]


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


def _row(transform: Transform) -> tuple[float, float, float, float, float, float]:
    """(μ, a, ρ, e, mean, u_0) of one rule; ``mean`` = 1: ρ_t = ρ/sqrt(t) (the lecture's mean Adagrad)."""
    if isinstance(transform, Momentum):
        return transform.momentum, 0.0, 0.0, 1.0, 0.0, 0.0
    if isinstance(transform, RMSProp):
        return 0.0, transform.alpha, math.sqrt(1.0 - transform.alpha), transform.eps, 0.0, 0.0
    if type(transform) is AdagradMean:
        return 0.0, 1.0, 1.0, transform.eps, 1.0, 0.0
    if isinstance(transform, AdagradSum):
        return 0.0, 1.0, 1.0, transform.eps, 0.0, transform.initial_accumulator_value
    return 0.0, 0.0, 0.0, 1.0, 0.0, 0.0  # Identity


class MixedRule(Transform):
    """The rules ``parts`` (each with its number of rows) as one update of an (n, 2) parameter.

    State (torch tensors; :meth:`arrays` gives NumPy views of the same memory): ``"mu"`` the (2, n, 2)
    array [m; u], ``"coefficients"`` [a-of-[m; u] (2, n, 2), ρ (n, 2), e (n, 2), mean (n, 2)] and
    ``"scratch"`` [[g; g²] (2, n, 2), σ (n, 2)].

    Args:
        parts: (transform, rows) in row order; every transform must be :func:`fusable`.
    """

    def __init__(self, parts: Sequence[tuple[Transform, int]]) -> None:
        self.parts = tuple((transform, int(rows)) for transform, rows in parts)
        self._rows = [_row(transform) for transform, rows in self.parts for _ in range(rows)]
        self.averaged = any(row[4] for row in self._rows)
        """Whether some row's ρ_t changes with t (a mean Adagrad), so σ needs ρ per step."""

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        if not params:
            return {}
        (theta,) = params
        columns = torch.tensor(self._rows, dtype=theta.dtype).T.unsqueeze(-1).expand(-1, -1, 2)
        mu, a, rho, e, mean, u0 = (column.contiguous() for column in columns.unbind(0))
        mixed = torch.stack([torch.zeros_like(theta), u0])
        return {
            "mu": [mixed],
            "coefficients": [torch.stack([mu, a]), rho, e, mean],
            "scratch": [torch.empty_like(mixed), torch.empty_like(theta)],
        }

    @staticmethod
    def arrays(state: TransformState) -> tuple[Array, ...]:
        """NumPy views of the state: ([m; u], coefficients of [m; u], ρ, e, mean, [g; g²], σ)."""
        mixed, (coef, rho, e, mean), (g2, sigma) = state["mu"][0], state["coefficients"], state["scratch"]
        return tuple(t.numpy() for t in (mixed, coef, rho, e, mean, g2, sigma))

    def rho(self, state: TransformState, steps: Sequence[int]) -> Array:
        """ρ_t for the updates ``steps`` (from 1): a (len(steps), n, 2) array, or ρ itself when constant."""
        _, _, rho, _, mean, _, _ = self.arrays(state)
        if not self.averaged:
            return rho
        inverse_root = 1.0 / np.sqrt(np.asarray(steps, dtype=rho.dtype))
        averaged = rho * mean  # the rows whose ρ_t = ρ/sqrt(t); mean is 0 or 1
        table = np.multiply.outer(inverse_root, averaged)
        table += rho - averaged
        return table

    def stepper(
        self, state: TransformState, g2s: Sequence[Array], thetas: Sequence[Array]
    ) -> Callable[[int, Array, Array], None]:
        """The hot loop's step: ``step(k, ρ_t, η_t)`` writes θ_{t+1} = θ_t − η_t·m_t/σ_t into ``thetas[k + 1]``.

        ``g2s[k]`` is [g_t; scratch] of shape (2, n, 2) and ``thetas[k]`` is θ_t; every view is made here,
        once, so a step is nine NumPy calls on prebuilt arrays.
        """
        mixed, coef, _, e, _, _, sigma = self.arrays(state)
        m, u = mixed[0], mixed[1]
        gs, squares = [g2[0] for g2 in g2s], [g2[1] for g2 in g2s]
        mul, add, sqrt, div, sub = np.multiply, np.add, np.sqrt, np.divide, np.subtract

        def step(k: int, rho: Array, lr: Array) -> None:
            g = gs[k]
            mul(g, g, out=squares[k])
            mul(mixed, coef, out=mixed)
            add(mixed, g2s[k], out=mixed)
            sqrt(u, out=sigma)
            mul(sigma, rho, out=sigma)
            add(sigma, e, out=sigma)
            div(m, sigma, out=sigma)
            mul(sigma, lr, out=sigma)
            sub(thetas[k], sigma, out=thetas[k + 1])

        return step

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        """m_t/σ_t (the hot loop's step with θ = 0 and η = −1, which gives it exactly)."""
        del params
        (g,) = updates
        g2, sigma = self.arrays(state)[5:]
        np.copyto(g2[0], g.numpy())
        d = np.zeros_like(sigma)
        with np.errstate(all="ignore"):  # as torch: a diverging run gives Inf/NaN, not a warning
            self.stepper(state, [g2], [d, d])(
                0, self.rho(state, [int(step)]).reshape(sigma.shape), -np.ones_like(d)
            )
        return [torch.from_numpy(d)]

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        mixed, _, _, e, _, _, sigma = self.arrays(state)
        rho = self.rho(state, [int(step)]).reshape(sigma.shape)
        with np.errstate(all="ignore"):
            return [torch.from_numpy(np.sqrt(mixed[1]) * rho + e)]

    def __repr__(self) -> str:
        return f"MixedRule({', '.join(f'{t!r} × {rows}' for t, rows in self.parts)})"
