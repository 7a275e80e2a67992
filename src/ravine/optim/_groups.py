r"""torch.optim's per-group keywords and the checks every param group passes (at construction and at load).

=================  ==========================================================================================
keyword            in ravine
=================  ==========================================================================================
``maximize``       honoured, per group: the rule sees −g (torch's ``grad = -grad``), so the loss is maximised
``foreach``        honoured, per group: ``None``/``True`` multi-tensor kernels, ``False`` one parameter at a time
``fused``          honoured, per group, on adam, adamw, sgd/momentum and adagrad (CPU, real floating
                   dtypes): ``True`` runs the step through torch's own fused CPU kernel
                   (:mod:`ravine.optim._fused`; bit-identical to ``torch.optim.X(fused=True)``, same
                   state); ``None``/``False`` the foreach step. Refused elsewhere (other presets, custom
                   chains, a group's own ``transform``, complex/non-CPU parameters, ``foreach=True`` with it,
                   a torch without the CPU kernel), saying what to use instead
``capturable``     ``False`` accepted; ``True`` refused: CUDA-graph capture is what
                   ``torch.compile(mode="reduce-overhead")`` does with ravine's tensor step counts
``differentiable`` ``False`` accepted; ``True`` refused: ravine's step runs under ``no_grad`` (use
                   ``torch.func`` on a functional update for meta-learning)
=================  ==========================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ravine.errors import ConfigError, UnsupportedError

__all__ = ["TORCH_KEYWORDS", "check_eps_dtype", "check_torch_keywords", "torch_keywords"]

TORCH_KEYWORDS = ("maximize", "foreach", "fused", "capturable", "differentiable")
"""torch.optim's keywords that every preset (and :class:`~ravine.optim.ChainOptimizer`) takes."""

_INSTEAD = {
    "capturable": "CUDA-graph capture is torch.compile(train_step, mode='reduce-overhead'); ravine keeps its "
    "step counts as tensors, so the compiled step needs no host sync",
    "differentiable": "ravine's step runs under torch.no_grad(); differentiate through a functional update "
    "(torch.func) for meta-learning",
}


def torch_keywords(
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> dict[str, Any]:
    """The group defaults for torch's keywords, checked (see the module table)."""
    keywords = {
        "maximize": maximize,
        "foreach": foreach,
        "fused": fused,
        "capturable": capturable,
        "differentiable": differentiable,
    }
    check_torch_keywords("optimizer", keywords)
    return keywords


def check_torch_keywords(owner: str, group: Mapping[str, Any]) -> None:
    """Refuse a value of torch's keywords that ravine cannot honour, saying what to use instead."""
    for key in ("maximize",):
        if key in group and not isinstance(group[key], bool):
            raise ConfigError(f"{owner}: {key} must be True or False, got {key}={group[key]!r}")
    for key in ("foreach", "fused"):
        if not any(group.get(key) is allowed for allowed in (None, True, False)):
            raise ConfigError(f"{owner}: {key} must be None, True or False, got {key}={group[key]!r}")
    if group.get("fused") is True and group.get("foreach") is True:
        raise ConfigError(
            f"{owner}: fused=True and foreach=True cannot be combined (as in torch); pass fused=True alone"
        )
    for key, instead in _INSTEAD.items():
        value = group.get(key)
        if value is None or value is False:
            continue
        if value is True:
            raise UnsupportedError(f"{owner}: {key}=True is not supported; {instead}")
        raise ConfigError(f"{owner}: {key} must be None or False, got {key}={value!r}")


def check_eps_dtype(owner: str, eps_values: Iterable[float], params: Iterable[torch.Tensor]) -> None:
    """Refuse an ε that rounds to 0 in a parameter's dtype (e.g. Adam's 1e-8 in float16).

    With ε = 0 the rule divides by sqrt(v) alone, which underflows to 0 for small gradients: the update
    becomes 0/0 = NaN. The fix is a larger ε, not a lower learning rate.
    """
    dtypes = {p.dtype for p in params if p.is_floating_point() or p.is_complex()}
    for dtype in dtypes:
        real = torch.empty((), dtype=dtype).real.dtype if dtype.is_complex else dtype
        for eps in eps_values:
            if eps > 0 and float(torch.tensor(eps, dtype=real)) == 0.0:
                tiny = torch.finfo(real).smallest_normal
                raise ConfigError(
                    f"{owner}: eps={eps!r} rounds to 0 in {real} (the parameters' dtype), so sqrt(v) + eps "
                    f"underflows to 0 and the update turns into 0/0 = NaN; pass eps >= {tiny:.1e} (1e-4 is a "
                    "common choice for float16), or keep float32 master weights (torch.autocast + GradScaler)"
                )
