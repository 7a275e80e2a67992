"""ML2021 Spring HW2-2 revisited: its per-layer Gauss-Newton "minimum ratio" next to the exact Hessian.

The homework trains Linear(1→128)-ReLU-Linear(128→1) on y = sin(5πx)/(5πx), drives it to a critical point
by minimising ‖∇L‖², and calls the point "local minimum like" when the share of positive eigenvalues of
its "Hessian" exceeds 0.5. That matrix is, per layer, a Gauss-Newton matrix Σ_i J_iᵀ H_out J_i — a sum of
outer products, positive semi-definite — so its ratio is set by round-off on its zero eigenvalues and it
cannot see a saddle. The exact Hessian adds Σ_i r_i ∇²f_i, which for a ReLU net is non-zero only in the
blocks coupling the two layers, and has genuinely negative eigenvalues there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ravine.curvature import (
    CriticalPoint,
    GGNOperator,
    HessianOperator,
    SpectralDensity,
    classify_hessian,
    spectral_density,
)
from ravine.curvature._forward_ad import load_forward_ad

__all__ = ["HW22Comparison", "hw2_2_comparison", "hw2_2_data", "hw2_2_model"]


@dataclass(frozen=True)
class HW22Comparison:
    """Exact classification vs HW2-2's per-layer Gauss-Newton ratio at one near-critical point.

    Attributes:
        gradient_norm, loss: At the point reached by minimising ‖∇L‖².
        exact: ravine's exact classification (dense float64 Hessian).
        homework_ratio: Share of eigenvalues > 0 over the per-layer GN blocks, computed in float32 as a
            homework notebook would; ``homework_ratio_float64`` the same in float64.
        homework_verdict: "local minimum like" if homework_ratio > 0.5 else "saddle".
        gn_block_names, gn_block_sizes: The layers (weight and bias of one Linear together).
        gn_block_min_eigenvalues: λ_min of each GN block (≥ −round-off: PSD).
        gn_block_max_eigenvalues: λ_max of each GN block.
        hessian_block_min_eigenvalues: λ_min of the exact Hessian's diagonal (per-layer) blocks.
        coupling_norm: ‖H − GN‖ (Frobenius) over the blocks coupling the layers; ``diagonal_residual_norm``
            over the per-layer blocks (≈ 0 for a ReLU net).
        negative_eigenvalues: The exact Hessian's eigenvalues below −eps·|λ|max, ascending.
        eigenvalues: Every eigenvalue of the exact Hessian, ascending (dense float64).
        density: The Hessian's eigenvalue density by stochastic Lanczos quadrature (as for a model too large
            for a dense Hessian), to be compared with ``eigenvalues``.
        negative_mass_in_coupling: For the most negative eigenvector u, uᵀ(H − GN)u / λ_min (≈ how much of the
            negative curvature the coupling term supplies; > 1 means GN's part is positive).
        seconds: Wall time of the whole run.
    """

    gradient_norm: float
    loss: float
    exact: CriticalPoint
    homework_ratio: float
    homework_ratio_float64: float
    homework_verdict: str
    gn_block_names: tuple[str, ...]
    gn_block_sizes: tuple[int, ...]
    gn_block_min_eigenvalues: tuple[float, ...]
    gn_block_max_eigenvalues: tuple[float, ...]
    hessian_block_min_eigenvalues: tuple[float, ...]
    coupling_norm: float
    diagonal_residual_norm: float
    negative_eigenvalues: Tensor
    eigenvalues: Tensor
    density: SpectralDensity
    negative_mass_in_coupling: float
    seconds: float


def hw2_2_data(num_points: int = 128, *, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """x evenly spaced in [−1, 1] (shape (n, 1)) and y = sin(5πx)/(5πx)."""
    x = torch.linspace(-1.0, 1.0, num_points, dtype=dtype)[:, None]
    return x, torch.sinc(5 * x)


def hw2_2_model(seed: int = 0, *, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """Linear(1→128)-ReLU-Linear(128→1), seeded."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 128), nn.ReLU(), nn.Linear(128, 1)).to(dtype)


def _train(
    model: nn.Module, x: Tensor, y: Tensor, *, train_steps: int, grad_steps: int, grad_tol: float
) -> None:
    """Adam on the loss, then Levenberg-Marquardt on ‖∇L‖² (the homework's trick, second order for speed).

    Minimising ‖g(θ)‖² by Gauss-Newton on the residual g, whose Jacobian is H: Δ = −(H² + μI)⁻¹ H g. It
    converges to the nearest critical point, saddle or not — just like gradient descent on ‖g‖². It stops
    early when ‖g‖ stalls (an accepted step lowers it by less than 1e-5 relative): a ReLU net's g jumps
    where a kink crosses a data point, and ‖g‖ can then not be lowered by small steps.
    """
    loss_fn = nn.functional.mse_loss
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(train_steps):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def loss_of(flat: Tensor) -> Tensor:
        pieces = torch.split(flat, sizes)
        values = {n: piece.reshape(shape) for n, piece, shape in zip(names, pieces, shapes, strict=False)}
        return loss_fn(torch.func.functional_call(model, values, (x,)), y)

    load_forward_ad()
    gradient_of = torch.func.grad(loss_of)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).to(torch.float64)
    g = gradient_of(theta)
    mu = 1e-6
    for _ in range(grad_steps):
        if float(g.norm()) < grad_tol:
            break
        H = torch.func.hessian(loss_of)(theta)
        eye = torch.eye(H.shape[0], dtype=H.dtype)
        improvement = 0.0
        for _ in range(20):
            step = torch.linalg.solve(H @ H + mu * eye, H @ g)
            g_new = gradient_of(theta - step)
            if float(g_new.norm()) < float(g.norm()):
                improvement = 1.0 - float(g_new.norm()) / float(g.norm())
                theta, g, mu = theta - step, g_new, max(mu / 10, 1e-12)
                break
            mu *= 10
        if improvement < 1e-5:
            break
    with torch.no_grad():
        for p, piece in zip(model.parameters(), torch.split(theta, sizes), strict=False):
            p.copy_(piece.reshape(p.shape).to(p.dtype))


def hw2_2_comparison(
    *, seed: int = 0, num_points: int = 128, train_steps: int = 1000, grad_steps: int = 50, grad_tol: float = 1e-8,
    eps: float = 1e-6,
) -> HW22Comparison:  # fmt: skip
    """Train the HW2-2 net, drive it to a critical point, and compare the two "minimum ratios".

    Default run: about ten seconds on one CPU core (most of it in the ‖∇L‖² phase's dense Hessians).

    Args:
        seed: Seed of the initialisation.
        num_points: Training points on [−1, 1].
        train_steps: Adam steps (lr 1e-2) on the loss.
        grad_steps: Levenberg-Marquardt steps on ‖∇L‖², stopping early below ``grad_tol`` or when ‖∇L‖
            stalls (see ``gradient_norm`` in the result: a ReLU net may stall above the homework's 1e-3).
        grad_tol: Target ‖∇L‖ of the second phase.
        eps: Flat threshold for the exact shares.
    """
    start = time.perf_counter()
    x, y = hw2_2_data(num_points)
    model = hw2_2_model(seed)
    _train(model, x, y, train_steps=train_steps, grad_steps=grad_steps, grad_tol=grad_tol)
    loss_fn = nn.functional.mse_loss
    H = HessianOperator(model, loss_fn, (x, y), dtype=torch.float64)
    exact = classify_hessian(H, eps=eps)
    hessian = H.dense()
    gn64 = GGNOperator(model, loss_fn, (x, y), dtype=torch.float64).dense()
    gn32 = GGNOperator(model, loss_fn, (x, y), dtype=torch.float32).dense()
    layers = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    names = H.parameter_names
    sizes = [dict(model.named_parameters())[name].numel() for name in names]
    slices, offset = [], 0
    for layer in layers:
        width = sum(size for name, size in zip(names, sizes, strict=False) if name.rsplit(".", 1)[0] == layer)
        slices.append(slice(offset, offset + width))
        offset += width
    block32 = [torch.linalg.eigvalsh(gn32[s, s]) for s in slices]
    block64 = [torch.linalg.eigvalsh(gn64[s, s]) for s in slices]
    hess_blocks = [torch.linalg.eigvalsh(hessian[s, s]) for s in slices]
    residual = hessian - gn64
    mask = torch.zeros_like(residual, dtype=torch.bool)
    for s in slices:
        mask[s, s] = True
    values, vectors = torch.linalg.eigh(hessian)
    u = vectors[:, 0]
    ratio32 = float(sum(int((b > 0).sum()) for b in block32) / offset)
    ratio64 = float(sum(int((b > 0).sum()) for b in block64) / offset)
    return HW22Comparison(
        gradient_norm=exact.gradient_norm,
        loss=exact.loss,
        exact=exact,
        homework_ratio=ratio32,
        homework_ratio_float64=ratio64,
        homework_verdict="local minimum like" if ratio32 > 0.5 else "saddle",
        gn_block_names=tuple(layers),
        gn_block_sizes=tuple(s.stop - s.start for s in slices),
        gn_block_min_eigenvalues=tuple(float(b[0]) for b in block64),
        gn_block_max_eigenvalues=tuple(float(b[-1]) for b in block64),
        hessian_block_min_eigenvalues=tuple(float(b[0]) for b in hess_blocks),
        coupling_norm=float(residual[~mask].norm()),
        diagonal_residual_norm=float(residual[mask].norm()),
        negative_eigenvalues=values[values < -exact.flat_threshold],
        eigenvalues=values,
        density=spectral_density(H, num_probes=16, num_steps=48, eps=eps, seed=seed),
        negative_mass_in_coupling=float(u @ residual @ u) / float(values[0]),
        seconds=time.perf_counter() - start,
    )
