"""Data for curvature: one (inputs, targets) batch, a list of batches or a DataLoader; sizes; casting."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any, TypeAlias

import torch
from torch import Tensor

from ravine.errors import DataError

__all__ = ["Batch", "DataLike", "batch_size", "iter_batches", "move_batch"]

Batch: TypeAlias = tuple[Any, Any]
"""One batch: ``(inputs, targets)``; inputs a tensor or a tuple of tensors passed as ``model(*inputs)``."""

DataLike: TypeAlias = Batch | Sequence[Batch] | Iterable[Batch]
"""A single batch, a list of batches, or any re-iterable of batches such as a ``torch.utils.data.DataLoader``."""


def _is_single_batch(data: object) -> bool:
    return (
        isinstance(data, tuple)
        and len(data) == 2
        and isinstance(data[1], Tensor)
        and isinstance(data[0], Tensor | tuple | list)
    )


def check_data(data: object, *, allow_empty: bool = False) -> None:
    """Raise :class:`DataError` for data that is visibly empty or not batches at all.

    ``allow_empty`` accepts an empty list of batches (a rank's shard under torch.distributed may be empty;
    the passes still raise when no rank has any sample).
    """
    if data is None:
        raise DataError("curvature: data is None; pass (inputs, targets), a list of batches or a DataLoader")
    if _is_single_batch(data):
        assert isinstance(data, tuple)
        if batch_size(data) == 0:
            raise DataError("curvature: data is empty (the targets tensor has 0 rows)")
        return
    if isinstance(data, Tensor):
        raise DataError(
            "curvature: data must be (inputs, targets), a list of such batches or a DataLoader, got a "
            f"single tensor of shape {tuple(data.shape)}"
        )
    if not isinstance(data, Iterable):
        raise DataError(f"curvature: data must be batches, got {type(data).__name__}")
    if isinstance(data, Iterator):
        raise DataError(
            f"curvature: data is a one-shot iterator ({type(data).__name__}), but every product passes over "
            "the data again; pass a list of batches or a DataLoader instead"
        )
    if isinstance(data, Sized) and len(data) == 0 and not allow_empty:
        raise DataError("curvature: data is empty (no batches); pass at least one (inputs, targets) batch")


def iter_batches(data: object) -> Iterator[Batch]:
    """Yield the ``(inputs, targets)`` batches of ``data``, checking each one's form."""
    if _is_single_batch(data):
        assert isinstance(data, tuple)
        yield data
        return
    assert isinstance(data, Iterable)
    for index, batch in enumerate(data):
        if not (isinstance(batch, tuple | list) and len(batch) == 2):
            raise DataError(
                f"curvature: batch {index} must be a pair (inputs, targets), got {type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, tuple | list) else "")
            )
        yield (batch[0], batch[1])


def batch_size(batch: Batch) -> int:
    """Number of samples in a batch: the length of its targets."""
    targets = batch[1]
    if not isinstance(targets, Tensor):
        raise DataError(f"curvature: targets must be a tensor, got {type(targets).__name__}")
    return int(targets.shape[0]) if targets.dim() > 0 else 1


def _move(value: Any, dtype: torch.dtype, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        if value.is_floating_point():
            return value.to(device=device, dtype=dtype)
        return value.to(device=device)
    if isinstance(value, tuple | list):
        return tuple(_move(item, dtype, device) for item in value)
    return value


def move_batch(batch: Batch, dtype: torch.dtype, device: torch.device) -> tuple[tuple[Any, ...], Any]:
    """Inputs as a tuple of positional arguments and targets, floating tensors cast to ``dtype``."""
    inputs, targets = batch
    args = _move(inputs, dtype, device)
    if not isinstance(args, tuple):
        args = (args,)
    return args, _move(targets, dtype, device)
