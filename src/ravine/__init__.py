"""ravine: why did my training loss stop going down, and what do I do?

Parts, one idea one home (see the README):

- :mod:`ravine.optim` — θ ← θ − (η_t/σ_t)·m_t as composable parts behind a drop-in torch optimizer.
- :mod:`ravine.surfaces` — analytic 2-D error surfaces and many optimizer runs at once.
- :mod:`ravine.curvature` — Hessian-vector products, Lanczos, spectra, critical points, saddle escape.
- :mod:`ravine.diagnose` — a training-loop monitor that gives a verdict with evidence and remedies.
- :mod:`ravine.experiments` — the lectures' experiments on real data.
"""

from __future__ import annotations

from ravine.errors import (
    ConfigError,
    CurvatureError,
    DataError,
    MemoryBudgetError,
    NonFiniteError,
    RavineError,
    UnsupportedError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CurvatureError",
    "DataError",
    "MemoryBudgetError",
    "NonFiniteError",
    "RavineError",
    "UnsupportedError",
    "__version__",
]
