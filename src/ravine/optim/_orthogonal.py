r"""Muon (Jordan et al. 2024), torch 2.13's form: the momentum m_t orthogonalised by Newton–Schulz.

In the lecture's terms Muon keeps m_t and replaces the per-element 1/σ_t by a matrix operation:

==================  =====================================================================  ===============
part                update                                                                 state key
==================  =====================================================================  ===============
MuonMomentum        m_t = lerp(m, g, 1−μ); m̃ = lerp(g, m_t, μ) with Nesterov, else m_t    momentum_buffer
NewtonSchulz        O = NS_k^{(a,b,c)}(m̃): X ← X/max(‖X‖_F, ε), k times A = XXᵀ,            —
                    X ← aX + (bA + cA²)X, in bfloat16 (as torch), on the wide orientation;
                    θ ← θ − η·r·O with r = sqrt(max(1, R/C)) ("original") or 0.2·sqrt(max(R, C))
                    ("match_rms_adamw")
==================  =====================================================================  ===============

``ro.muon`` is ``chain(MuonMomentum(μ, nesterov), NewtonSchulz(...), DecoupledWeightDecay(λ))`` (torch's
decay θ ← (1 − ηλ)θ by the unadjusted η). O has all singular values near 1 (in [0.5, 1.5]), so there is no
per-element η_t/σ_t: ``effective_lr`` says so. Muon updates 2-D matrices only; other parameters (biases,
norms, embeddings) belong to another optimizer, e.g. ``ro.adamw``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ravine._validate import check_nonnegative, check_positive
from ravine.errors import ConfigError, UnsupportedError
from ravine.optim._scalars import Scalar, add_scaled_
from ravine.optim._transforms import Transform, TransformState

__all__ = ["MuonMomentum", "NewtonSchulz", "check_matrices"]

ADJUST_LR = (None, "original", "match_rms_adamw")


def check_matrices(owner: str, params: Sequence[torch.Tensor]) -> None:
    """Refuse non-2-D or complex parameters (Muon orthogonalises real matrices only)."""
    for i, p in enumerate(params):
        if p.ndim != 2:
            raise UnsupportedError(
                f"{owner}: Muon updates 2-D weight matrices only; parameter {i} has shape {tuple(p.shape)}. "
                "Give Muon the matrices ([p for p in model.parameters() if p.ndim == 2]) and the biases, "
                "norms and embeddings to another optimizer, e.g. ravine.optim.adamw (as torch.optim.Muon asks)"
            )
        if p.is_complex():
            raise UnsupportedError(f"{owner}: Muon does not support complex parameters, got dtype={p.dtype}")


class MuonMomentum(Transform):
    r"""Muon's momentum: m_t = lerp(m, g, 1−μ), direction lerp(g, m_t, μ) (Nesterov) or m_t.

    Args:
        momentum: μ ≥ 0 (torch's 0.95).
        nesterov: look ahead (torch's default True).
    """

    def __init__(self, momentum: float = 0.95, *, nesterov: bool = True) -> None:
        self.momentum = check_nonnegative("muon", "momentum", momentum)
        self.nesterov = bool(nesterov)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return {"momentum_buffer": [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]}

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params, step
        buffers = state["momentum_buffer"]
        torch._foreach_lerp_(buffers, updates, 1.0 - self.momentum)
        if self.nesterov:
            return list(torch._foreach_lerp(updates, buffers, self.momentum))
        return buffers

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        return state["momentum_buffer"]


class NewtonSchulz(Transform):
    r"""Orthogonalise each matrix update by k quintic Newton–Schulz steps, scaled by the shape ratio r.

    Args:
        ns_coefficients: (a, b, c) of the quintic (torch's (3.4445, −4.7750, 2.0315)).
        ns_steps: k, 0 ≤ k < 100.
        eps: ε > 0 floor of the Frobenius norm.
        adjust_lr_fn: ``None``/``"original"``: r = sqrt(max(1, R/C)); ``"match_rms_adamw"``: 0.2·sqrt(max(R, C)).
    """

    scope = "tensor"
    defines_effective_lr = False
    no_effective_lr = (
        "Muon orthogonalises the whole momentum matrix (Newton–Schulz: a matrix operation, not a per-element "
        "scale), so η_t/σ_t is not defined; every singular value of its step is about lr·r (r the shape ratio "
        "of adjust_lr_fn)"
    )

    def __init__(
        self,
        ns_coefficients: tuple[float, float, float] = (3.4445, -4.7750, 2.0315),
        *,
        ns_steps: int = 5,
        eps: float = 1e-7,
        adjust_lr_fn: str | None = None,
    ) -> None:
        coefficients = tuple(ns_coefficients)
        if len(coefficients) != 3 or not all(isinstance(v, int | float) for v in coefficients):
            raise ConfigError(
                f"muon: ns_coefficients must be three numbers (a, b, c), got {ns_coefficients!r}"
            )
        self.ns_coefficients = tuple(float(v) for v in coefficients)
        if isinstance(ns_steps, bool) or not isinstance(ns_steps, int) or not 0 <= ns_steps < 100:
            raise ConfigError(f"muon: ns_steps must be an integer in [0, 100), got {ns_steps=!r}")
        self.ns_steps = ns_steps
        self.eps = check_positive("muon", "eps", eps)
        if adjust_lr_fn not in ADJUST_LR:
            raise ConfigError(
                f"muon: adjust_lr_fn must be None, 'original' or 'match_rms_adamw', got {adjust_lr_fn=!r}"
            )
        self.adjust_lr_fn = adjust_lr_fn

    def check_params(self, owner: str, params: Sequence[torch.Tensor]) -> None:
        check_matrices(owner, params)

    def ratio(self, shape: Sequence[int]) -> float:
        """r for a matrix of ``shape`` (R, C)."""
        rows, cols = shape[0], shape[1]
        if self.adjust_lr_fn == "match_rms_adamw":
            return 0.2 * math.sqrt(max(rows, cols))
        return math.sqrt(max(1, rows / cols))

    def orthogonalize(self, update: torch.Tensor) -> torch.Tensor:
        """NS_k(update) in bfloat16 (a new tensor), torch's order of operations."""
        if update.ndim != 2:
            check_matrices("muon", [update])
        a, b, c = self.ns_coefficients
        x = update.bfloat16()
        tall = update.size(0) > update.size(1)
        if tall:
            x = x.T
        x.div_(x.norm().clamp(min=self.eps))
        for _ in range(self.ns_steps):
            gram = x @ x.T
            x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
        return x.T if tall else x

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del state, params, step
        return [self.orthogonalize(u).to(u.dtype).mul_(self.ratio(u.shape)) for u in updates]

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        del state, step
        for u, p in zip(updates, params, strict=True):
            adjusted = lr * self.ratio(p.shape)
            ortho = self.orthogonalize(u)
            if isinstance(adjusted, torch.Tensor):
                add_scaled_([p], [ortho.to(p.dtype)], -adjusted)
            else:
                p.add_(ortho, alpha=-adjusted)
