"""Summaries of a :class:`~ravine.optim.ChainOptimizer`'s effective learning rates, per named parameter."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ravine.optim._optimizer import ChainOptimizer

__all__ = ["LayerLR", "lr_summary"]


@dataclasses.dataclass(frozen=True)
class LayerLR:
    """Effective learning rate η_t/σ_t of one named parameter, summarised (median is torch's lower median)."""

    name: str
    shape: tuple[int, ...]
    numel: int
    step: int
    lr_min: float
    lr_median: float
    lr_max: float
    momentum_norm: float | None
    """‖m_t‖₂ of the momentum buffer, or ``None`` when the rule keeps none."""


def lr_summary(
    optimizer: ChainOptimizer, named_parameters: Iterable[tuple[str, torch.Tensor]] | None = None
) -> list[LayerLR]:
    """Per-parameter min/median/max of η_t/σ_t (and ‖m_t‖) of ``optimizer``, for every parameter that stepped
    (parameters whose rule defines no η_t/σ_t, e.g. Lion, are left out)."""
    names = {id(p): n for n, p in named_parameters} if named_parameters is not None else {}
    rows = []
    for gi, group in enumerate(optimizer.param_groups):
        for pi, p in enumerate(group["params"]):
            entry = optimizer.state.get(p)
            if not entry or entry.get("step", 0) == 0 or not optimizer.defines_effective_lr(group):
                continue
            lr = optimizer.effective_lr(p).flatten().double()
            buffer = optimizer.momentum_buffer(p)
            rows.append(
                LayerLR(
                    name=names.get(id(p), f"group{gi}.param{pi}"),
                    shape=tuple(p.shape),
                    numel=p.numel(),
                    step=int(entry["step"]),
                    lr_min=float(lr.min()) if lr.numel() else math.nan,
                    lr_median=float(lr.median()) if lr.numel() else math.nan,
                    lr_max=float(lr.max()) if lr.numel() else math.nan,
                    momentum_norm=None if buffer is None else float(buffer.double().norm()),
                )
            )
    return rows
