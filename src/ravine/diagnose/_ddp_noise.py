"""The gradient noise scale under data parallelism, from the per-rank and all-reduced gradients at no extra pass.

McCandlish et al. (2018, App. A.1): with ``‖g_small‖²`` the squared norm of a gradient over B_small samples and
``‖g_big‖²`` over B_big samples, unbiased estimates of the true gradient's squared norm and the per-sample
covariance's trace are

    ‖G‖² ≈ (B_big·‖g_big‖² − B_small·‖g_small‖²) / (B_big − B_small)
    tr Σ ≈ (‖g_small‖² − ‖g_big‖²) / (1/B_small − 1/B_big)

Under ``DistributedDataParallel`` each rank holds its own gradient (B_small = the rank's batch) before the
all-reduce and the mean over ranks (B_big = world × B_small) after it: :class:`NoiseScaleHook` is a DDP
communication hook that reads both norms while doing DDP's own averaging all-reduce — no extra backward or
communication of tensors. Each step's estimates are noisy (‖G‖² can come out negative); B_simple = tr Σ/‖G‖²
is the ratio of their exponential moving averages, never of one step's values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["NoiseScaleEstimate", "NoiseScaleHook", "two_batch_estimates"]


def two_batch_estimates(small_sq: float, big_sq: float, b_small: float, b_big: float) -> tuple[float, float]:
    """(‖G‖², tr Σ) from the squared gradient norms at two batch sizes (unbiased; see the module docstring).

    Example:
        >>> two_batch_estimates(small_sq=3.0, big_sq=1.5, b_small=8, b_big=32)
        (1.0, 16.0)
    """
    if not 0 < b_small < b_big:
        raise ValueError(f"two_batch_estimates: need 0 < b_small < b_big, got {b_small=}, {b_big=}")
    signal = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
    trace = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
    return signal, trace


@dataclass(frozen=True)
class NoiseScaleEstimate:
    """The smoothed estimates after some steps.

    Attributes:
        signal: EMA of ‖G‖².
        trace: EMA of tr Σ.
        noise_scale: B_simple = trace / signal (inf when the smoothed signal is ≤ 0).
        batch_size: The global batch B_big.
        steps: Steps folded in.
    """

    signal: float
    trace: float
    noise_scale: float
    batch_size: int
    steps: int


class NoiseScaleHook:
    """A DDP communication hook: DDP's averaging all-reduce, plus ‖g_rank‖² before and ‖g_mean‖² after it.

    Register it with :meth:`register` (``hook.register(ddp_model)``); after each ``loss.backward()`` call
    :meth:`step` with the rank's batch size to fold that step in (with equal batches on every rank).

    Args:
        process_group: The group DDP reduces over (None: the default group).
        decay: EMA decay of the estimates across steps.
    """

    def __init__(self, process_group: Any = None, *, decay: float = 0.9) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"NoiseScaleHook: decay must be in [0, 1), got {decay=}")
        self.process_group = process_group
        self.decay = decay
        self.local_sq = 0.0
        self.global_sq = 0.0
        self._signal = self._trace = 0.0
        self._weight = 0.0
        self.steps = 0
        self.world = 0
        self.batch_size = 0

    def register(self, ddp_model: Any) -> None:
        """Install this hook on a ``DistributedDataParallel`` model (in place of its default all-reduce)."""
        # DDP checks the hook's annotations against dist.GradBucket; a lambda carries none.
        ddp_model.register_comm_hook(None, lambda state, bucket: self(state, bucket))  # noqa: PLW0108

    def __call__(self, state: Any, bucket: Any) -> torch.futures.Future[torch.Tensor]:
        import torch.distributed as dist

        group = self.process_group if self.process_group is not None else dist.group.WORLD
        world = dist.get_world_size(group)
        self.world = world
        buffer = bucket.buffer()
        self.local_sq += float(buffer.double().square().sum())
        buffer.div_(world)
        future = dist.all_reduce(buffer, group=group, async_op=True).get_future()

        def done(fut: torch.futures.Future[list[torch.Tensor]]) -> torch.Tensor:
            reduced = fut.value()[0]
            self.global_sq += float(reduced.double().square().sum())
            return reduced

        chained: torch.futures.Future[torch.Tensor] = future.then(done)
        return chained

    def step(self, batch_size: int) -> NoiseScaleEstimate:
        """Fold in the step whose backward just ran (``batch_size`` samples on this rank) and return the
        smoothed estimate; resets the per-step sums."""
        if self.world > 1 and batch_size > 0:
            big = batch_size * self.world
            signal, trace = two_batch_estimates(self.local_sq, self.global_sq, batch_size, big)
            self._signal = self.decay * self._signal + (1 - self.decay) * signal
            self._trace = self.decay * self._trace + (1 - self.decay) * trace
            self._weight = self.decay * self._weight + (1 - self.decay)
            self.steps += 1
            self.batch_size = big
        self.local_sq = self.global_sq = 0.0
        return self.estimate()

    def estimate(self) -> NoiseScaleEstimate:
        """The bias-corrected EMAs and B_simple (NaN before the first step)."""
        if self._weight == 0:
            return NoiseScaleEstimate(math.nan, math.nan, math.nan, self.batch_size, 0)
        signal, trace = self._signal / self._weight, self._trace / self._weight
        scale = trace / signal if signal > 0 else math.inf
        return NoiseScaleEstimate(signal, trace, scale, self.batch_size, self.steps)
