r"""Adafactor (Shazeer & Stern 2018), torch 2.13's form: a factored σ_t and a relative step size η_t.

In the lecture's terms, with no momentum (m_t = g_t, as torch's Adafactor):

* σ_t = sqrt(max(v̂_t, ε₁²)), where for a matrix (…, R, C) v̂_t = r_t c_tᵀ / max(mean(r_t), ε₁) is built from
  a row mean r_t ← lerp(r, mean_C(g²), t^{β₂-decay}) and a column mean c_t (R + C numbers instead of R·C;
  the column mean is a sum of squares down the rows, where torch takes a slower strided norm: equal to
  rounding);
  for a vector v̂_t = v_t ← lerp(v, g², t^{β₂-decay}) (a per-element Adagrad/RMSprop-like σ).
* η_t = α_t / max(1, RMS(u_t)/d), α_t = max(ε₂, RMS(θ_{t−1}))·ρ_t, ρ_t = min(lr, 1/√t), u_t = g/σ_t: the
  step is relative to the parameter's size, and the update is clipped to RMS ≤ d.
* weight decay: θ ← (1 − lr·λ)θ after α_t is measured, before the update (torch's order).

State keys (torch's): ``row_var`` (…, R, 1) and ``col_var`` (…, 1, C) for tensors of 2+ dimensions,
``variance`` for the others, so a torch Adafactor state loads exactly. ε₁ = None means the dtype's machine
epsilon (per parameter). The effective learning rate is not defined: α_t needs θ_{t−1} and the clip needs
u_t, which the state no longer holds after the step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ravine._validate import check_nonnegative
from ravine.errors import ConfigError, UnsupportedError
from ravine.optim._scalars import Scalar
from ravine.optim._transforms import Transform, TransformState

__all__ = ["Adafactor"]


def _rms_of(tensor: torch.Tensor, traced: bool, scale: float = 1.0) -> Scalar:
    """‖x‖₂/(√n·scale) as a Python float (eager, torch's ``.item()`` arithmetic) or a 0-d float64 tensor."""
    norm = tensor.norm(2)
    root = float(tensor.numel() ** 0.5) * scale
    if traced:
        traced_rms: torch.Tensor = norm.to(torch.float64) / root
        return traced_rms
    return float(norm.item()) / root


def _column_mean_square(g: torch.Tensor) -> torch.Tensor:
    """mean over the rows (axis −2) of g², shape (…, 1, C).

    torch's Adafactor takes ``torch.norm(g, dim=-2).square() / R``; on CPU that strided norm runs 8× slower
    than a sum of squares down the rows (12.8 vs 1.5 ms for an 8000 × 256 embedding, 39 vs 6.8 ms for
    GPT-2's 50257 × 128); in float32 its column means are also further from float64's (relative 4e-6–1e-5,
    against 1e-7 here). The two agree to rounding: after 100 steps on a 20000 × 128 matrix, θ in float64
    differs from torch's by 4e-16 relative, and in float32 both sit 3e-6 from the float64 run.
    """
    squares: torch.Tensor = torch.linalg.vecdot(g, g, dim=-2)
    return squares.unsqueeze_(-2).div_(g.size(-2))


def _max(a: Scalar, b: float) -> Scalar:
    if isinstance(a, torch.Tensor):
        return torch.clamp_min(a, b)
    return float(max(a, b))


class Adafactor(Transform):
    r"""Adafactor's factored σ_t with its relative, clipped step size (see the module docstring).

    Keep it last in a chain (the optimizer then calls :meth:`apply`, which uses torch's ρ_t = min(lr, 1/√t));
    :meth:`update` returns the unit-free direction max(ε₂, RMS(θ))·u/max(1, RMS(u)/d) + λθ: the caller's η
    then plays ρ_t's part.

    Args:
        beta2_decay: the exponent of the second-moment weight t^{β₂-decay} (≤ 0; torch's −0.8).
        eps1: ε₁ ≥ 0 floor of v̂ (squared) and of the row mean; ``None``: the dtype's machine epsilon.
        eps2: ε₂ ≥ 0 floor of RMS(θ) in α_t (torch's 1e-3).
        d: the update clipping threshold d ≥ 1.
        weight_decay: λ ≥ 0 (decoupled, by lr·λ).
    """

    reads_params = True
    scope = "tensor"
    defines_effective_lr = False
    no_effective_lr = (
        "its step size α_t = max(ε₂, RMS(θ_{t−1}))·min(lr, 1/√t) / max(1, RMS(u_t)/d) needs the parameter "
        "before the step and the update's RMS, which its state (torch's keys) does not hold; its σ_t is "
        "sqrt(row_var @ col_var / mean(row_var))"
    )

    def __init__(
        self,
        beta2_decay: float = -0.8,
        *,
        eps1: float | None = None,
        eps2: float = 1e-3,
        d: float = 1.0,
        weight_decay: float = 0.0,
    ) -> None:
        if isinstance(beta2_decay, bool) or not isinstance(beta2_decay, int | float) or beta2_decay > 0:
            raise ConfigError(f"adafactor: beta2_decay must be a number <= 0, got {beta2_decay=!r}")
        self.beta2_decay = float(beta2_decay)
        self.eps1 = None if eps1 is None else check_nonnegative("adafactor", "eps1", eps1)
        self.eps2 = check_nonnegative("adafactor", "eps2", eps2)
        if isinstance(d, bool) or not isinstance(d, int | float) or not d >= 1.0:
            raise ConfigError(f"adafactor: the clipping threshold d must be >= 1, got {d=!r}")
        self.d = float(d)
        self.weight_decay = check_nonnegative("adafactor", "weight_decay", weight_decay)

    def check_params(self, owner: str, params: Sequence[torch.Tensor]) -> None:
        for p in params:
            if p.is_complex():
                raise UnsupportedError(
                    f"{owner}: Adafactor does not support complex parameters (as torch's), got dtype={p.dtype}; "
                    "use ravine.optim.adamw, which updates complex parameters as pairs of reals"
                )

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        rows: list[torch.Tensor | None] = []
        cols: list[torch.Tensor | None] = []
        variances: list[torch.Tensor | None] = []
        for p in params:
            if p.dim() > 1:
                rows.append(p.new_zeros((*p.shape[:-1], 1)))
                cols.append(p.new_zeros((*p.shape[:-2], 1, p.shape[-1])))
                variances.append(None)
            else:
                rows.append(None)
                cols.append(None)
                variances.append(torch.zeros_like(p, memory_format=torch.preserve_format))
        return {"row_var": rows, "col_var": cols, "variance": variances}  # type: ignore[dict-item]

    def _sigma_inverse(
        self, g: torch.Tensor, state: TransformState, i: int, weight: Scalar, eps1: float
    ) -> torch.Tensor:
        """Advance the second moments of parameter ``i`` by ``g``; returns 1/σ_t (a new tensor)."""
        if isinstance(weight, torch.Tensor):
            weight = weight.to(g.dtype)
        if g.dim() > 1:
            row_var, col_var = state["row_var"][i], state["col_var"][i]
            row_var.lerp_(torch.norm(g, dim=-1, keepdim=True).square_().div_(g.size(-1)), weight)
            col_var.lerp_(_column_mean_square(g), weight)
            estimate = row_var @ col_var
            estimate.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))
        else:
            variance = state["variance"][i]
            variance.lerp_(g * g, weight)
            estimate = variance.clone()
        return estimate.clamp_(min=eps1 * eps1).rsqrt_()

    def _clipped(
        self, g: torch.Tensor, state: TransformState, i: int, step: Scalar
    ) -> tuple[torch.Tensor, Scalar]:
        """u_t = g/σ_t and its clip divisor max(1, RMS(u_t)/d)."""
        traced = isinstance(step, torch.Tensor)
        eps1 = self.eps1 if self.eps1 is not None else torch.finfo(g.dtype).eps
        update = self._sigma_inverse(g, state, i, step**self.beta2_decay, eps1)
        update.mul_(g)
        return update, _max(_rms_of(update, traced, self.d), 1.0)

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        traced = isinstance(step, torch.Tensor)
        out = []
        for i, (g, p) in enumerate(zip(updates, params, strict=True)):
            scale = _max(_rms_of(p, traced), self.eps2)
            update, clip = self._clipped(g, state, i, step)
            update.mul_(scale / clip)
            if self.weight_decay != 0:
                update.add_(p, alpha=self.weight_decay)
            out.append(update)
        return out

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        traced = isinstance(step, torch.Tensor) or isinstance(lr, torch.Tensor)
        if traced:
            step = torch.as_tensor(step, dtype=torch.float64)
            rho: Scalar = torch.clamp_max(torch.as_tensor(lr, dtype=torch.float64), 1.0 / step.sqrt())
        else:
            rho = min(float(lr), 1 / (float(step) ** 0.5))
        for i, (g, p) in enumerate(zip(updates, params, strict=True)):
            alpha = _max(_rms_of(p, traced), self.eps2) * rho
            if self.weight_decay != 0:
                p.mul_(1 - lr * self.weight_decay)
            update, clip = self._clipped(g, state, i, step)
            if isinstance(alpha, torch.Tensor) or isinstance(clip, torch.Tensor):
                p.add_(update.mul_(-alpha / clip))
            else:
                p.add_(update, alpha=-alpha / clip)
