"""Curvature of a model's loss: Hessian-vector products, spectra, critical points and saddle escape.

The lecture's tools, at the scale of a real network:

- :class:`HessianOperator` — H v over a whole data set (``torch.func`` forward-over-reverse, or one backward
  through each batch's cached linearised gradient while the parameters are unchanged), ``dense()``, the
  gradient and the loss; :class:`GGNOperator` — the Gauss-Newton matrix Jᵀ H_out J for comparison.
- :func:`lanczos` — the largest / smallest eigenpairs, each certified by its residual ‖Hv − λv‖.
- :func:`spectral_density` (SLQ), :func:`hutchinson`, :func:`hutchpp` — density, sign shares, trace, with
  standard errors.
- :func:`classify` → :class:`CriticalPoint` (local minimum like / saddle / local maximum like / not a
  critical point / inconclusive) with the minimum ratio as positive / negative / flat shares.
- :func:`escape` — a step along the negative-curvature eigenvector that lowers the loss.
- :func:`block_spectra` — per block (module or name pattern) top eigenvalues, λ_min and density, and the
  heterogeneity across blocks.

Example:
    >>> import torch
    >>> from ravine.curvature import HessianOperator, lanczos
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    >>> x, y = torch.randn(32, 3), torch.randn(32, 1)
    >>> H = HessianOperator(model, torch.nn.functional.mse_loss, (x, y), dtype=torch.float64)
    >>> top = lanczos(H, 2, tol=1e-8)
    >>> top.all_converged, H.shape
    (True, (21, 21))
"""

from __future__ import annotations

from ravine.curvature._blocks import BlockSpectra, BlockSpectrum, block_spectra, module_blocks
from ravine.curvature._critical import CriticalKind, CriticalPoint, classify, classify_hessian
from ravine.curvature._escape import EscapeResult, escape, escape_hessian
from ravine.curvature._lanczos import EigenResult, lanczos
from ravine.curvature._operator import GGNOperator, HessianOperator
from ravine.curvature._spectrum import SpectralDensity, TraceEstimate, hutchinson, hutchpp, spectral_density
from ravine.errors import RavineWarning

__all__ = [
    "BlockSpectra",
    "BlockSpectrum",
    "CriticalKind",
    "CriticalPoint",
    "EigenResult",
    "EscapeResult",
    "GGNOperator",
    "HessianOperator",
    "RavineWarning",
    "SpectralDensity",
    "TraceEstimate",
    "block_spectra",
    "classify",
    "classify_hessian",
    "escape",
    "escape_hessian",
    "hutchinson",
    "hutchpp",
    "lanczos",
    "module_blocks",
    "spectral_density",
]
