"""Running a probe on the live model without touching the training run's random numbers or buffers.

A probe runs the user's forward pass (dropout, noise layers, a module's own ``torch.Generator``) in train
mode. Its random numbers come from the probe's private generators (:mod:`ravine._rng`: a thread-local
dispatch mode; no generator the training uses is read, advanced, reseeded or restored, so another thread's
draws are never rewound). A seeded operation that cannot be given a generator (fused RNN or attention kernels
with dropout) raises :class:`ProbeIsolationError` instead of drawing: the probe is skipped, the run is
untouched.

Module buffers (BatchNorm running statistics) are copied before the probe and written back after it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch import nn

from ravine._rng import PrivateGenerators, PrivateRandomnessError, private_randomness

__all__ = ["ProbeGenerators", "ProbeIsolationError", "isolated"]

ProbeGenerators = PrivateGenerators
"""The probe's private generators, one per device, seeded from one seed (never the training's)."""

ProbeIsolationError = PrivateRandomnessError
"""A probe met a random operation it cannot redirect to its private generator (it is skipped)."""

_active = threading.local()


@contextlib.contextmanager
def isolated(model: nn.Module, generators: ProbeGenerators | None = None) -> Iterator[None]:
    """Run a probe without side effects on the model's buffers or on any generator the training uses.

    Args:
        model: The live model (its buffers are restored afterwards).
        generators: The probe's private generators. None: those of the enclosing ``isolated`` block in this
            thread if there is one, else a fresh set seeded with 0.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
        >>> before = torch.random.get_rng_state()
        >>> with isolated(model):
        ...     _ = model(torch.ones(2, 4))
        >>> torch.equal(before, torch.random.get_rng_state())
        True
    """
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    outer = getattr(_active, "generators", None)
    try:
        if outer is not None and generators is None:  # nested inside an isolated probe: its mode is on
            yield
        else:
            _active.generators = generators or ProbeGenerators(0)
            try:
                with private_randomness(_active.generators, "probe skipped"):
                    yield
            finally:
                _active.generators = outer
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
