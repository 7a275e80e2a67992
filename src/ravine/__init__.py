"""ravine: why did my training loss stop going down, and what do I do?

Parts, one idea one home (see the README):

- :mod:`ravine.optim` — θ ← θ − (η_t/σ_t)·m_t as composable parts behind a drop-in torch optimizer.
- :mod:`ravine.surfaces` — analytic 2-D error surfaces and many optimizer runs at once.
- :mod:`ravine.curvature` — Hessian-vector products, Lanczos, spectra, critical points, saddle escape.
- :mod:`ravine.diagnose` — a training-loop monitor that gives a verdict with evidence and remedies.
- :mod:`ravine.experiments` — the lectures' experiments on real data.

The most used names are also here, imported on first use so that ``import ravine`` stays light:
``ravine.Monitor``, ``ravine.HessianOperator``, ``ravine.classify``, ``ravine.escape``.

Example:
    >>> import ravine
    >>> ravine.Monitor.__module__.startswith("ravine.diagnose")
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ravine.errors import (
    ConfigError,
    CurvatureError,
    DataError,
    MemoryBudgetError,
    NonFiniteError,
    RavineError,
    UnsupportedError,
)

if TYPE_CHECKING:
    from ravine.curvature import HessianOperator, classify, escape
    from ravine.diagnose import Monitor

__version__ = "0.1.0"

_LAZY = {
    "Monitor": "ravine.diagnose",
    "HessianOperator": "ravine.curvature",
    "classify": "ravine.curvature",
    "escape": "ravine.curvature",
}


def __getattr__(name: str) -> Any:
    """Import the lazily exported names of :data:`_LAZY` on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ravine' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "CurvatureError",
    "DataError",
    "HessianOperator",
    "MemoryBudgetError",
    "Monitor",
    "NonFiniteError",
    "RavineError",
    "UnsupportedError",
    "__version__",
    "classify",
    "escape",
]
