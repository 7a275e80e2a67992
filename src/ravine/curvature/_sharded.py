"""Gradients of a model whose parameters are FSDP2-sharded (``torch.distributed.fsdp.fully_shard``: DTensors).

torch.func cannot differentiate through FSDP's all-gather and reduce-scatter hooks, and a double backward
through them is not possible (the gradient's graph does not reach the sharded parameters), so the only
curvature such a model offers is a finite difference of gradients. These gradients are the model's own:
each rank perturbs its local shards in place, runs its batches through the model's forward and backward
(FSDP gathers and reduce-scatters as in training), and reads the full gradient back; the parameters, the
user's ``.grad`` and the modules' modes are restored afterwards.

- :func:`is_sharded` says whether a parameter is a DTensor.
- :func:`sharded_gradient` is the data set's mean gradient (weighted like the operator's) at θ + h·u.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from ravine.errors import ConfigError

__all__ = ["is_sharded", "sharded_gradient"]


def is_sharded(p: Tensor) -> bool:
    """Whether ``p`` is a DTensor (a parameter sharded by FSDP2 or tensor parallelism)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - a torch built without distributed
        return False
    return isinstance(p, DTensor)


def _local_part(full: Tensor, p: Any) -> Tensor:
    """The shard of ``full`` (a tensor shaped like the whole parameter, equal on every rank) this rank holds."""
    from torch.distributed.tensor import distribute_tensor

    local: Tensor = distribute_tensor(full, p.device_mesh, p.placements, src_data_rank=None).to_local()
    return local


@contextmanager
def _shifted(params: Sequence[Any], shifts: Sequence[Tensor]) -> Iterator[None]:
    """Add each full-shaped shift to its parameter's local shard in place; restore the exact values after."""
    saved = [p.to_local().detach().clone() for p in params]
    grads = [p.grad for p in params]
    try:
        with torch.no_grad():
            for p, shift in zip(params, shifts, strict=True):
                p.to_local().add_(_local_part(shift.to(p.dtype), p))
        yield
    finally:
        with torch.no_grad():
            for p, value, g in zip(params, saved, grads, strict=True):
                p.to_local().copy_(value)
                p.grad = g


def sharded_gradient(
    params: Sequence[Any],
    shifts: Sequence[Tensor],
    batches: Sequence[Any],
    *,
    loss_of: Callable[[Any], Tensor],
    weights: Sequence[float],
    group: Any = None,
) -> Tensor:
    """The flat gradient of Σ_b w_b·loss_b / Σ_b w_b over all ranks' batches at the shifted parameters.

    ``batches`` are this rank's (at least one), ``loss_of(batch)`` runs the model's own forward and loss, and
    ``weights`` are theirs in the mean (1 each and a total of 1 for a summed loss: pass ``[1.0, ...]`` and it
    is the sum). Every rank runs as many backward passes as the rank with the most batches (FSDP's
    reduce-scatter is a collective), the extra ones on its first batch with weight 0; FSDP averages the
    ranks' gradients, so each loss is scaled by the world size over the total weight. The result is the
    same on every rank.
    """
    import torch.distributed as dist

    if not batches:
        raise ConfigError("curvature: sharded_gradient needs at least one batch on every rank, got none")
    counts = torch.tensor([float(len(batches)), float(sum(weights))], dtype=torch.float64)
    most = counts[:1].clone()
    dist.all_reduce(counts, group=group)
    dist.all_reduce(most, op=dist.ReduceOp.MAX, group=group)
    total = float(counts[1])
    scale = dist.get_world_size(group) / total
    with _shifted(params, shifts):
        for p in params:
            p.grad = None
        for index in range(int(most.item())):
            mine = index < len(batches)
            loss = loss_of(batches[index if mine else 0])
            (loss * ((weights[index] if mine else 0.0) * scale)).backward()
        parts = []
        for p in params:
            g = p.grad
            parts.append(torch.zeros(p.numel(), dtype=p.dtype) if g is None else g.full_tensor().reshape(-1))
        return torch.cat(parts)
