"""Weight-decay masks by name or predicate: param groups with and without decay, for any optimizer."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from ravine._validate import check_nonnegative
from ravine.errors import ConfigError

__all__ = ["weight_decay_groups"]


def weight_decay_groups(
    named_parameters: Iterable[tuple[str, torch.Tensor]],
    weight_decay: float,
    *,
    exclude: Sequence[str] = ("*bias", "*norm*", "*ln_*"),
    predicate: Callable[[str, torch.Tensor], bool] | None = None,
) -> list[dict[str, Any]]:
    """Two param groups: the parameters to decay (``weight_decay``) and the rest (``weight_decay=0``).

    A parameter is left undecayed when its name matches one of ``exclude`` (shell patterns, matched against
    the full name and, case-insensitively, its lower case) or ``predicate(name, param)`` is false. Frozen
    parameters (``requires_grad=False``) are left out. The groups work with every ravine preset and every
    torch optimizer; inside one group, ``WeightDecay(λ, mask="matrices")`` does the common case by shape.

    Args:
        named_parameters: e.g. ``model.named_parameters()``.
        weight_decay: λ ≥ 0 for the decayed group.
        exclude: name patterns never decayed (default: biases and norm layers, GPT-2's ``ln_*`` included).
        predicate: optional ``(name, param) -> decay?``, applied after ``exclude``.

    Example:
        >>> import torch
        >>> from ravine.optim import adamw, weight_decay_groups
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
        >>> groups = weight_decay_groups(model.named_parameters(), 0.1, exclude=("*bias", "1.*"))
        >>> [len(g["params"]) for g in groups], [g["weight_decay"] for g in groups]
        ([1, 3], [0.1, 0.0])
        >>> opt = adamw(groups, lr=1e-3)
    """
    decay = check_nonnegative("weight_decay_groups", "weight_decay", weight_decay)
    if isinstance(exclude, str):
        raise ConfigError(
            f"weight_decay_groups: exclude must be a sequence of patterns, got the string {exclude!r}"
        )
    decayed: list[torch.Tensor] = []
    plain: list[torch.Tensor] = []
    decayed_names: list[str] = []
    plain_names: list[str] = []
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        excluded = any(
            fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatch(name.lower(), pat) for pat in exclude
        )
        keep = not excluded and (predicate is None or bool(predicate(name, param)))
        (decayed if keep else plain).append(param)
        (decayed_names if keep else plain_names).append(name)
    groups = [
        {"params": decayed, "weight_decay": decay, "param_names": decayed_names},
        {"params": plain, "weight_decay": 0.0, "param_names": plain_names},
    ]
    return [g for g in groups if g["params"]]
