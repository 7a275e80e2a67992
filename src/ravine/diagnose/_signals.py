"""The cheap per-step signals: gradient norms every step, the update Δθ sampled, η/σ from optimizer state.

Cost model (CPU, 1M parameters): every pass over θ or g costs about as much as a tiny fraction of a step, so
the per-step path reads the gradients once (``torch._foreach_norm``) and nothing else. The update
Δθ = θ_t − θ_{t−1} needs a copy of θ_{t−1}; it is measured on pairs of consecutive steps every
``update_every`` steps (every step for small models), from two flat buffers used in turn: copy θ into one,
subtract θ from it one step later (−Δθ, in place), and take the norms and the dot product with the previous
update from there. Values stay on the device until the monitor flushes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ravine.diagnose._terms import effective_lrs

__all__ = ["UpdateSample", "UpdateTracker", "effective_lr_stats", "layer_grad_norms"]


class _FlatSet:
    """Flat buffers, one per (device, dtype) group, and views shaped like the parameters (in order)."""

    def __init__(self, groups: Sequence[Sequence[torch.Tensor]]) -> None:
        self.flats: list[torch.Tensor] = []
        self.views: list[torch.Tensor] = []
        for params in groups:
            flat = torch.zeros(sum(p.numel() for p in params), dtype=params[0].dtype, device=params[0].device)
            offset = 0
            for p in params:
                self.views.append(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
            self.flats.append(flat)


def _stack_norms(norms: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    try:
        return torch.stack(list(norms))
    except RuntimeError:  # mixed dtypes or devices
        return torch.stack([n.float().to(device) for n in norms])


def layer_grad_norms(params: Sequence[torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Per-parameter ‖g‖ (0 where there is no gradient) and the number of parameters without one."""
    device = params[0].device
    grads = [p.grad for p in params]
    present = [g for g in grads if g is not None]
    if not present:
        return torch.zeros(len(params), device=device), len(params)
    if any(g.is_sparse for g in present):
        norms = [g.coalesce().values().norm() for g in present]
    else:
        norms = list(torch._foreach_norm(present))
    if len(present) == len(grads):
        return _stack_norms(norms, device), 0
    it = iter(norms)
    zero = torch.zeros((), dtype=norms[0].dtype, device=norms[0].device)
    return _stack_norms([zero if g is None else next(it) for g in grads], device), len(grads) - len(present)


@dataclass
class UpdateSample:
    """One measured update (tensors on the device).

    Attributes:
        layer_norms: Per-parameter ‖Δθ‖.
        dot_prev: Δθ_t · Δθ_{t−1} when the previous step's update was measured too, else None.
        weight_layer_norms: Per-parameter ‖θ‖ when due, else None.
        distance: ‖θ_t − θ_0‖ when due, else None.
    """

    layer_norms: torch.Tensor
    dot_prev: torch.Tensor | None = None
    weight_layer_norms: torch.Tensor | None = None
    distance: torch.Tensor | None = None


class UpdateTracker:
    """Measures Δθ on sampled pairs of consecutive steps (see the module docstring)."""

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        *,
        every: int,
        weight_every: int,
        distance_every: int,
        extra: int = 0,
    ) -> None:
        """``params`` must be ordered by (device, dtype) group; ``extra`` forces a measurement at its
        multiples too (the probes need the latest update)."""
        self.params = list(params)
        self.every = every
        self.weight_every = weight_every
        self.distance_every = distance_every
        self.extra = extra
        groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for p in self.params:
            groups.setdefault((p.device, p.dtype), []).append(p)
        self._groups = list(groups.values())
        self._buffers: list[_FlatSet] | None = None
        self._start: _FlatSet | None = None
        self._snap: _FlatSet | None = None
        self._snap_step = -1
        self.last_update: _FlatSet | None = None
        """Holds −Δθ of step ``last_update_step`` (negated to save a pass)."""
        self.last_update_step = -1
        self._last_weight = -(10**9)
        self._last_distance = -(10**9)

    def measures(self, count: int) -> bool:
        """Whether the update is measured at this call."""
        k = self.every
        return k <= 2 or count % k in (0, k - 1) or (self.extra > 0 and count % self.extra == 0)

    def record(self, count: int) -> UpdateSample | None:
        """Call once per optimizer step with the step index; returns the sample measured now, if any."""
        due_now = self.measures(count) and self._snap is not None and self._snap_step == count - 1
        due_next = self.measures(count + 1)
        if self._buffers is not None and not due_now and not due_next:
            self._snap = None  # most steps on a large model: nothing to read
            return None
        with torch.no_grad():
            if self._buffers is None:
                self._buffers = [_FlatSet(self._groups), _FlatSet(self._groups)]
                self._start = _FlatSet(self._groups)
                torch._foreach_copy_(self._start.views, self.params)
            sample = None
            if due_now and self._snap is not None:
                sample = self._measure(count, self._snap)
            self._snap = None
            if due_next:
                free = self._buffers[0] if self.last_update is not self._buffers[0] else self._buffers[1]
                torch._foreach_copy_(free.views, self.params)
                self._snap, self._snap_step = free, count
            return sample

    def _measure(self, count: int, buffer: _FlatSet) -> UpdateSample:
        torch._foreach_sub_(buffer.views, self.params)  # θ_{t−1} − θ_t = −Δθ
        device = self.params[0].device
        sample = UpdateSample(_stack_norms(torch._foreach_norm(buffer.views), device))
        previous = self.last_update
        if previous is not None and self.last_update_step == count - 1:
            dots = [
                torch.dot(a, b).float().to(device) for a, b in zip(buffer.flats, previous.flats, strict=True)
            ]
            sample.dot_prev = dots[0] if len(dots) == 1 else torch.stack(dots).sum()
        self.last_update, self.last_update_step = buffer, count
        if count - self._last_weight >= self.weight_every:
            self._last_weight = count
            sample.weight_layer_norms = _stack_norms(torch._foreach_norm(self.params), device)
        if count - self._last_distance >= self.distance_every and self._start is not None:
            self._last_distance = count
            # The other buffer is free now (the previous update is no longer needed after the dot
            # product), so θ_t − θ_0 goes there instead of into freshly allocated tensors.
            assert self._buffers is not None
            scratch = self._buffers[1] if buffer is self._buffers[0] else self._buffers[0]
            torch._foreach_copy_(scratch.views, self.params)
            torch._foreach_sub_(scratch.views, self._start.views)
            sample.distance = torch.linalg.vector_norm(
                _stack_norms(torch._foreach_norm(scratch.views), device).float()
            )
        return sample

    def update_direction(self, count: int) -> list[torch.Tensor] | None:
        """Δθ of step ``count`` (parameter-shaped), if it was measured."""
        if self.last_update is None or self.last_update_step != count:
            return None
        return [-v for v in self.last_update.views]


def effective_lr_stats(
    optimizer: torch.optim.Optimizer | None, params: Sequence[torch.Tensor]
) -> tuple[float, float]:
    """Largest and median per-element η/σ, from ravine's optimizer or from torch's adaptive optimizers' state."""
    pieces = [e.reshape(-1).float() for e in effective_lrs(optimizer, params) if e is not None]
    if not pieces:
        return math.nan, math.nan
    flat = torch.cat(pieces)
    return float(flat.max()), float(flat.median())
