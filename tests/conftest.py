"""Shared test settings: deterministic torch, a hypothesis profile sized for 2 CPU cores."""

from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, settings

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)

settings.register_profile(
    "ravine", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ravine")
