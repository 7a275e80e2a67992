"""Analytic 2-D error surfaces and many optimizer runs on them at once — the lecture's lab.

- :class:`Surface` — L(x, y) as a torch function of a (..., 2) tensor, with a closed-form gradient and
  known minima; :class:`CallableSurface` wraps your own function (gradient by autograd).
- Built-ins (:func:`get_surface`): ``ravine`` (u² + 100v², rotated 0.02 rad), ``logcosh`` (its log-cosh
  twin), ``crescent`` (Distill's banana), ``saddle`` ((1 − w₁w₂)²), ``momentum`` (a valley with a local
  dip), ``rosenbrock``.
- :func:`run_lab` — any :mod:`ravine.optim` chains and schedules advanced together, one vectorized loop;
  returns a :class:`LabRun` of tensors.
- :mod:`ravine.surfaces.stories` — the lecture's demonstrations as data with the numbers they show.

Example:
    >>> from ravine.optim import AdagradMean
    >>> from ravine.surfaces import LabConfig, run_lab
    >>> run = run_lab("ravine", [LabConfig("GD 1e-2", lr=1e-2)], steps=2000, record_every=2000)
    >>> round(float(run.final_loss[0]))  # bouncing between the walls: the loss stays at 100·v² ≈ 576
    576
"""

from __future__ import annotations

from ravine.surfaces._base import CallableSurface, Minimum, Surface, as_surface
from ravine.surfaces._library import (
    Crescent,
    DipValley,
    LogCoshRavine,
    Ravine,
    Rosenbrock,
    Saddle,
    get_surface,
    surface_names,
)
from ravine.surfaces._runner import LabConfig, LabRun, run_lab

__all__ = [
    "CallableSurface",
    "Crescent",
    "DipValley",
    "LabConfig",
    "LabRun",
    "LogCoshRavine",
    "Minimum",
    "Ravine",
    "Rosenbrock",
    "Saddle",
    "Surface",
    "as_surface",
    "get_surface",
    "run_lab",
    "surface_names",
]
