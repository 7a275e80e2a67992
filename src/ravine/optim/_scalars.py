r"""Step-dependent scalars that are Python floats in eager mode and 0-d tensors under ``torch.compile``.

The optimizer keeps each parameter's update count as a 0-d tensor (torch's ``state["step"]``). In eager mode
it reads the count once per step (``.item()``, as torch's own non-capturable paths do) and every bias
correction, schedule value and learning rate is a Python float, so the foreach kernels take them as
``alpha=`` / ``value=`` scalars and the results equal torch's bit for bit. Under ``torch.compile`` the count
stays a tensor: no graph break on ``.item()`` and no recompilation when it changes. The helpers below
accept either kind and pick the matching kernel (a 0-d tensor coefficient multiplies through
``torch._foreach_mul``, which inductor fuses with the rest of the update).
"""

from __future__ import annotations

import math
from typing import TypeAlias

import torch

__all__ = [
    "Scalar",
    "add_scaled_",
    "addcdiv_scaled_",
    "is_traced",
    "looped",
    "pick",
    "scalar_dtype",
    "sqrt",
]

Scalar: TypeAlias = float | torch.Tensor
"""A Python float (eager) or a 0-d float64 tensor (under ``torch.compile``)."""


def scalar_dtype() -> torch.dtype:
    """torch.optim's dtype for per-parameter scalars such as NAdam's μ product (float64 if that is the default)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def is_traced(value: object) -> bool:
    """Whether ``value`` is a tensor (the compile path) rather than a Python number."""
    return isinstance(value, torch.Tensor)


def looped(tensors: list[torch.Tensor], *scalars: Scalar) -> bool:
    """Whether a rule runs one tensor at a time with in-place ops rather than with foreach kernels.

    True in eager mode on CPU with Python-number coefficients. There torch's foreach kernels are a loop of
    the same per-tensor kernels, each streaming its whole list through memory; one tensor at a time, every
    op of the rule after the first finds that tensor (an optimizer chunk of at most ``chunk_bytes``) still
    in cache, and temporaries stay cache-sized. Accelerators and ``torch.compile`` keep the foreach path.
    """
    return (
        bool(tensors)
        and tensors[0].device.type == "cpu"
        and not any(isinstance(s, torch.Tensor) for s in scalars)
        and not torch.compiler.is_compiling()
    )


def sqrt(value: Scalar) -> Scalar:
    """√value for a float or a tensor."""
    if isinstance(value, torch.Tensor):
        return value.sqrt()
    return math.sqrt(value)


def pick(condition: bool | torch.Tensor, if_true: Scalar, if_false: Scalar) -> Scalar:
    """``if_true if condition else if_false``, as ``torch.where`` when the condition is a tensor."""
    if isinstance(condition, torch.Tensor):
        true = torch.as_tensor(if_true, dtype=torch.float64)
        return torch.where(condition, true, torch.as_tensor(if_false, dtype=torch.float64))
    return if_true if condition else if_false


def add_scaled_(targets: list[torch.Tensor], sources: list[torch.Tensor], coef: Scalar) -> None:
    """targets += coef · sources, in place."""
    if isinstance(coef, torch.Tensor):
        torch._foreach_add_(targets, torch._foreach_mul(sources, coef))
    else:
        torch._foreach_add_(targets, sources, alpha=coef)


def addcdiv_scaled_(
    targets: list[torch.Tensor],
    numerators: list[torch.Tensor],
    denominators: list[torch.Tensor],
    coef: Scalar,
) -> None:
    """targets += coef · numerators / denominators, in place (torch's ``addcdiv_`` in eager mode)."""
    if isinstance(coef, torch.Tensor):
        quotient = torch._foreach_div(numerators, denominators)
        torch._foreach_mul_(quotient, coef)
        torch._foreach_add_(targets, quotient)
    else:
        torch._foreach_addcdiv_(targets, numerators, denominators, value=coef)
