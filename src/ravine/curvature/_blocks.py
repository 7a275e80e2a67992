"""Per-block Hessian spectra: each layer's (or module group's) diagonal block of H, and how much they differ.

The diagonal block H_bb of a parameter block b is the Hessian of the loss in those parameters alone (the
others held fixed), i.e. a :class:`HessianOperator` with ``params`` = the block. Per block: the top
eigenvalues, λ_min (Lanczos, with residuals) and an SLQ spectral density. Across blocks, after Zhang et al.
2024 ("Why Transformers Need Adam: A Hessian Perspective"), the heterogeneity is the mean pairwise
Jensen-Shannon distance between the blocks' spectral distributions (0: all alike; 1: disjoint). The
distributions are those of log10 |λ| (the SLQ quadrature smoothed by a 0.25-decade Gaussian, over the six
decades below the largest |λ| of all blocks, smaller |λ| at the bottom): on a linear axis the block with the
widest spectrum squeezes every other block into a spike at 0, and the blocks' different *scales* are what a
single learning rate cannot fit. The spread of the scales alone is the standard deviation of log10 λ_max.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ravine.curvature._base import LossFn
from ravine.curvature._data import DataLike
from ravine.curvature._lanczos import lanczos
from ravine.curvature._model import select_parameters
from ravine.curvature._operator import HessianOperator
from ravine.curvature._spectrum import spectral_density
from ravine.errors import ConfigError

__all__ = ["BlockSpectra", "BlockSpectrum", "block_spectra", "js_distance", "module_blocks"]


@dataclass(frozen=True)
class BlockSpectrum:
    """One block's spectrum.

    Attributes:
        name: The block's name (a module path or the key given).
        parameters: The parameter names in the block.
        size: Its number of parameters.
        top: Its largest eigenvalues (descending, Ritz values).
        top_residuals: Their residuals ‖Hx − θx‖ (an eigenvalue lies within each of its θ).
        lambda_min: Its smallest eigenvalue (Ritz value; an upper bound on the true one).
        lambda_min_residual: Its residual.
        nodes, weights: The SLQ quadrature of its density (probes × steps).
        num_hvps: Products used on this block.
    """

    name: str
    parameters: list[str]
    size: int
    top: list[float]
    top_residuals: list[float]
    lambda_min: float
    lambda_min_residual: float
    nodes: Tensor
    weights: Tensor
    num_hvps: int

    @property
    def lambda_max(self) -> float:
        """The block's largest eigenvalue."""
        return self.top[0]


@dataclass(frozen=True)
class BlockSpectra:
    """The spectra of every block, their densities on a common grid and the heterogeneity across them.

    Attributes:
        blocks: One :class:`BlockSpectrum` per block, in model order.
        grid: The common grid of ``densities``.
        densities: ``(blocks, grid)`` Gaussian-smoothed densities (each integrates to ≈ 1).
        sigma: The kernel width (1% of the common grid's span).
        distances: ``(blocks, blocks)`` pairwise Jensen-Shannon distances of the log10 |λ| distributions.
        heterogeneity: Their mean over pairs (0: identical blocks, 1: disjoint spectra).
        scale_spread: Standard deviation of log10 λ_max over the blocks (λ_max ≤ 0 left out).
        num_hvps: Products used in all.
    """

    blocks: list[BlockSpectrum]
    grid: Tensor
    densities: Tensor
    sigma: float
    distances: Tensor
    heterogeneity: float
    scale_spread: float
    num_hvps: int
    notes: list[str] = field(default_factory=list)

    def table(self) -> list[list[object]]:
        """One row per block: name, size, λ_max, λ_min, λ_max/λ_max of the largest block."""
        rows: list[list[object]] = [["block", "parameters", "λ_max", "λ_min", "top eigenvalues"]]
        for block in self.blocks:
            top = ", ".join(f"{value:.3g}" for value in block.top)
            rows.append([block.name, block.size, f"{block.lambda_max:.4g}", f"{block.lambda_min:.4g}", top])
        return rows


def module_blocks(model: nn.Module, params: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Parameters grouped by the module that owns them (``"transformer.h.0.attn.c_attn"`` → weight, bias).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
        >>> module_blocks(net)
        {'0': ['0.weight', '0.bias'], '2': ['2.weight', '2.bias']}
    """
    names = select_parameters(model, params)
    blocks: dict[str, list[str]] = {}
    for name in names:
        owner = name.rsplit(".", 1)[0] if "." in name else "(root)"
        blocks.setdefault(owner, []).append(name)
    return blocks


def js_distance(p: Tensor, q: Tensor) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two non-negative vectors, each normalised to sum 1.

    Example:
        >>> js_distance(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
        1.0
    """
    p = p.to(torch.float64) / p.sum()
    q = q.to(torch.float64) / q.sum()
    m = (p + q) / 2

    def kl(a: Tensor) -> Tensor:
        inside = a > 0
        return (a[inside] * torch.log2(a[inside] / m[inside])).sum()

    divergence = float((kl(p) + kl(q)) / 2)
    return math.sqrt(min(max(divergence, 0.0), 1.0))


def _resolve(model: nn.Module, blocks: Mapping[str, Sequence[str] | str] | None) -> dict[str, list[str]]:
    if blocks is None:
        return module_blocks(model)
    if not isinstance(blocks, Mapping) or not blocks:
        raise ConfigError(
            "block_spectra: blocks must be None (one block per module) or a non-empty dict "
            f"{{name: parameter names or patterns}}, got {blocks!r}"
        )
    resolved = {}
    for name, members in blocks.items():
        resolved[name] = select_parameters(model, [members] if isinstance(members, str) else list(members))
    return resolved


def block_spectra(
    model: nn.Module,
    loss_fn: LossFn | None = None,
    data: DataLike | None = None,
    *,
    blocks: Mapping[str, Sequence[str] | str] | None = None,
    k: int = 3,
    num_probes: int = 4,
    num_steps: int = 30,
    tol: float = 1e-3,
    max_hvps: int = 300,
    grid_size: int = 400,
    seed: int = 0,
    progress: Callable[[float, float, str], None] | None = None,
    **operator_options: Any,
) -> BlockSpectra:
    """Top eigenvalues, λ_min and an SLQ density of each diagonal Hessian block, and their heterogeneity.

    Args:
        model, loss_fn, data: As for :class:`HessianOperator` (``loss_fn=None``: the model's ``outputs.loss``).
        blocks: ``{name: parameter names or patterns}`` (e.g. ``{"attention": "transformer.h.*.attn.*"}``);
            default one block per module that owns parameters.
        k: Top eigenvalues per block.
        num_probes, num_steps: SLQ probes and Lanczos steps per block.
        tol, max_hvps: Lanczos tolerance (relative) and budget per block (both ends at once).
        grid_size: Points of the common density grid.
        seed: Seed of the random vectors.
        progress: ``progress(blocks done, blocks, block name)`` after each block (ravine's protocol).
        **operator_options: Passed to each :class:`HessianOperator` (``dtype``, ``train_mode``, ``cache``...).

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        >>> x, y = torch.randn(16, 3), torch.randn(16, 2)
        >>> spectra = block_spectra(net, torch.nn.functional.mse_loss, (x, y), k=2, dtype=torch.float64)
        >>> [block.name for block in spectra.blocks], 0 <= spectra.heterogeneity <= 1
        (['0', '2'], True)
    """
    groups = _resolve(model, blocks)
    results: list[BlockSpectrum] = []
    total_hvps = 0
    for index, (name, names) in enumerate(groups.items()):
        H = HessianOperator(model, loss_fn, data, params=names, seed=seed, **operator_options)
        n = H.shape[0]
        ends = lanczos(H, min(k, n), which="both", tol=tol, max_hvps=max_hvps, seed=seed)  # ascending
        density = spectral_density(H, num_probes=num_probes, num_steps=min(num_steps, n), seed=seed + 2)
        results.append(
            BlockSpectrum(
                name=name,
                parameters=list(names),
                size=n,
                top=[float(v) for v in ends.eigenvalues.flip(0)[: min(k, n)]],
                top_residuals=[float(r) for r in ends.residuals.flip(0)[: min(k, n)]],
                lambda_min=float(ends.eigenvalues[0]),
                lambda_min_residual=float(ends.residuals[0]),
                nodes=density.nodes,
                weights=density.weights,
                num_hvps=H.num_hvps,
            )
        )
        total_hvps += H.num_hvps
        if progress is not None:
            progress(index + 1, len(groups), name)
    return _compare(results, grid_size, total_hvps)


def _log_histograms(results: list[BlockSpectrum], points: int = 200, decades: float = 6.0) -> Tensor:
    """Per block, the SLQ weights of log10 |θ| smoothed (Gaussian, 0.25 decade) over ``decades`` below the top."""
    magnitudes = [b.nodes[torch.isfinite(b.nodes)].abs() for b in results]
    top = max(*(float(m.max()) for m in magnitudes), 1e-300)
    high = math.log10(top)
    grid = torch.linspace(high - decades, high, points, dtype=torch.float64)
    out = torch.zeros(len(results), points, dtype=torch.float64)
    for row, block in enumerate(results):
        finite = torch.isfinite(block.nodes)
        logs = torch.log10(block.nodes[finite].abs().clamp_min(top * 10 ** (-decades)))
        weights = block.weights[finite].to(torch.float64)
        out[row] = (weights[:, None] * torch.exp(-0.5 * ((grid[None, :] - logs[:, None]) / 0.25) ** 2)).sum(0)
    return out


def _compare(results: list[BlockSpectrum], grid_size: int, num_hvps: int) -> BlockSpectra:
    finite = [b.nodes[torch.isfinite(b.nodes)] for b in results]
    low = min(*(float(f.min()) for f in finite), *(b.lambda_min for b in results))
    high = max(*(float(f.max()) for f in finite), *(b.lambda_max for b in results))
    width = max(high - low, 1e-12)
    sigma = 0.01 * width
    grid = torch.linspace(low - 4 * sigma, high + 4 * sigma, grid_size, dtype=torch.float64)
    rows = []
    for block in results:
        nodes = torch.where(torch.isfinite(block.nodes), block.nodes, torch.zeros_like(block.nodes))
        gauss = torch.exp(-0.5 * ((grid[None, None, :] - nodes[:, :, None]) / sigma) ** 2)
        rows.append((block.weights[:, :, None] * gauss).sum(1).mean(0) / (sigma * math.sqrt(2 * math.pi)))
    densities = torch.stack(rows)
    histograms = _log_histograms(results)
    count = len(results)
    distances = torch.zeros(count, count, dtype=torch.float64)
    for i in range(count):
        for j in range(i + 1, count):
            distances[i, j] = distances[j, i] = js_distance(histograms[i], histograms[j])
    pairs = count * (count - 1) // 2
    heterogeneity = float(distances.triu(1).sum() / pairs) if pairs else 0.0
    scales = torch.tensor(
        [math.log10(b.lambda_max) for b in results if b.lambda_max > 0], dtype=torch.float64
    )
    spread = float(scales.std(unbiased=False)) if scales.numel() > 1 else 0.0
    notes = [] if pairs else ["a single block: heterogeneity is 0 by definition"]
    return BlockSpectra(results, grid, densities, sigma, distances, heterogeneity, spread, num_hvps, notes)
