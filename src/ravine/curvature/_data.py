"""Data for curvature: batches of every form people train on, their weights, and casting.

A batch is one of

- ``(inputs, targets)`` — inputs a tensor, a tuple of tensors (``model(*inputs)``) or a dict
  (``model(**inputs)``, as a Hugging Face tokenizer returns); targets a tensor;
- a dict (``model(**batch)``), the Hugging Face form, its ``"labels"`` the targets.

``data`` is one batch, a list of batches or a re-iterable such as a ``DataLoader``. Every batch is brought to
a :class:`Prepared` batch: positional and keyword arguments, targets, and its weight in the data set's mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import torch
from torch import Tensor

from ravine.errors import DataError

__all__ = ["IGNORE_INDEX", "Batch", "DataLike", "Prepared", "Weighting", "check_data", "iter_batches"]

Batch: TypeAlias = tuple[Any, Any] | Mapping[str, Any]
"""One batch: ``(inputs, targets)`` or a dict of keyword arguments (its ``"labels"`` the targets)."""

DataLike: TypeAlias = Batch | Sequence[Batch] | Iterable[Batch]
"""A single batch, a list of batches, or any re-iterable of batches such as a ``torch.utils.data.DataLoader``."""

Weighting: TypeAlias = Literal["auto", "samples", "targets"]
"""How batches are weighted in the mean: by rows, by counted targets (labels ≠ -100), or ``"auto"``."""

IGNORE_INDEX = -100
"""The label that cross-entropy (torch's and Hugging Face's) leaves out of the mean."""


@dataclass(frozen=True)
class Prepared:
    """One batch as a pass uses it.

    Attributes:
        args: Positional arguments of the model.
        kwargs: Keyword arguments of the model (a dict batch; with the labels when the model computes the loss).
        targets: The loss function's targets (``None`` when the model computes its own loss).
        weight: The batch's weight in the data set's mean: its rows or its counted targets.
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    targets: Any
    weight: int


def _is_single_batch(data: object) -> bool:
    if isinstance(data, Mapping):
        return True
    return (
        isinstance(data, tuple)
        and len(data) == 2
        and isinstance(data[1], Tensor)
        and isinstance(data[0], Tensor | tuple | list | Mapping)
    )


def check_data(data: object, *, allow_empty: bool = False) -> None:
    """Raise :class:`DataError` for data that is visibly empty or not batches at all.

    ``allow_empty`` accepts an empty list of batches (a rank's shard under torch.distributed may be empty;
    the passes still raise when no rank has any sample).
    """
    if data is None:
        raise DataError("curvature: data is None; pass (inputs, targets), a list of batches or a DataLoader")
    if _is_single_batch(data):
        if (
            isinstance(data, tuple)
            and isinstance(data[1], Tensor)
            and data[1].dim() > 0
            and len(data[1]) == 0
        ):
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
    """Yield the batches of ``data`` (pairs or dicts), checking each one's form."""
    if _is_single_batch(data):
        yield data  # type: ignore[misc]
        return
    assert isinstance(data, Iterable)
    for index, batch in enumerate(data):
        if isinstance(batch, Mapping):
            yield batch
            continue
        if not (isinstance(batch, tuple | list) and len(batch) == 2):
            raise DataError(
                f"curvature: batch {index} must be a pair (inputs, targets) or a dict of model inputs "
                f"(model(**batch)), got {type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, tuple | list) else "")
            )
        if not isinstance(batch[1], Tensor):
            raise DataError(
                f"curvature: the targets of batch {index} must be a tensor, got {type(batch[1]).__name__}"
            )
        yield (batch[0], batch[1])


def _move(value: Any, dtype: torch.dtype, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        if value.is_floating_point():
            return value.to(device=device, dtype=dtype)
        return value.to(device=device)
    if isinstance(value, tuple | list):
        return tuple(_move(item, dtype, device) for item in value)
    if isinstance(value, Mapping):
        return {key: _move(item, dtype, device) for key, item in value.items()}
    return value


def count_targets(labels: Tensor, *, shift: bool) -> int:
    """Targets a token-mean loss averages over: labels ≠ -100 (after the causal shift, if any).

    Example:
        >>> count_targets(torch.tensor([[5, 6, -100], [1, 2, 3]]), shift=True)
        3
    """
    if labels.is_floating_point() or labels.dim() == 0:
        return int(labels.shape[0]) if labels.dim() > 0 else 1
    counted = labels[..., 1:] if shift else labels
    return int((counted != IGNORE_INDEX).sum())


def _rows(targets: Tensor) -> int:
    return int(targets.shape[0]) if targets.dim() > 0 else 1


def prepare(
    batch: Batch,
    index: int,
    *,
    dtype: torch.dtype,
    device: torch.device,
    model_loss: bool,
    weighting: Weighting,
    shift: bool,
) -> Prepared:
    """Bring a batch to its arguments, targets and weight (floating tensors cast to ``dtype``).

    Args:
        batch: ``(inputs, targets)`` or a dict.
        index: The batch's position (for messages).
        dtype, device: Where floating tensors go.
        model_loss: Whether the model computes the loss itself (no ``loss_fn``): the labels are then passed to
            the model as ``labels=``.
        weighting: ``"samples"``, ``"targets"`` or ``"auto"`` (targets when the model computes the loss).
        shift: Whether the model's loss shifts labels by one (causal language models).

    Raises:
        DataError: A dict batch without ``"labels"`` where they are needed, or targets that are not a tensor.
    """
    kwargs: dict[str, Any] = {}
    if isinstance(batch, Mapping):
        kwargs = dict(_move(batch, dtype, device))
        args: tuple[Any, ...] = ()
        targets = kwargs.get("labels") if model_loss else kwargs.pop("labels", None)
        if not isinstance(targets, Tensor):
            raise DataError(
                f"curvature: dict batch {index} has no 'labels' tensor (keys: {sorted(batch)}); the loss needs "
                "targets: add batch['labels'] (e.g. input_ids for a language model, -100 where not counted)"
            )
    else:
        inputs, raw = batch
        moved = _move(inputs, dtype, device)
        if isinstance(moved, dict):
            kwargs, args = moved, ()
        else:
            args = moved if isinstance(moved, tuple) else (moved,)
        targets = _move(raw, dtype, device)
        if model_loss:
            kwargs["labels"] = targets
    by_targets = weighting == "targets" or (weighting == "auto" and model_loss)
    weight = count_targets(targets, shift=shift) if by_targets else _rows(targets)
    return Prepared(args, kwargs, None if model_loss else targets, weight)
