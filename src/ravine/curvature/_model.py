"""What the curvature operators need from a model: which parameters, which mode, and what to warn about.

- :func:`select_parameters` turns ``params=`` (names, parameters or None) into checked parameter names.
- :func:`evaluation_mode` switches the model to eval (or train) mode for a pass and restores every module's
  own flag afterwards; in train mode BatchNorm uses batch statistics without touching its running ones.
- :func:`warn_about_layers` says what happens to BatchNorm and Dropout.
"""

from __future__ import annotations

import fnmatch
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from ravine.errors import ConfigError, RavineWarning, UnsupportedError

__all__ = [
    "check_embeddings",
    "evaluation_mode",
    "frozen_entries",
    "human_bytes",
    "select_parameters",
    "warn_about_layers",
]

_STOCHASTIC = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
_PACKAGE = str(Path(__file__).resolve().parents[1])


def human_bytes(num_bytes: float) -> str:
    """``1536`` → ``'1.5 KiB'``.

    Example:
        >>> human_bytes(1536), human_bytes(100)
        ('1.5 KiB', '100 B')
    """
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


def caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside the ravine package."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def select_parameters(model: nn.Module, params: Sequence[str] | Sequence[nn.Parameter] | None) -> list[str]:
    """Names of the parameters to differentiate, checked: present, requiring grad, each listed once.

    Args:
        model: The network.
        params: Parameter names, name patterns (``fnmatch``: ``"transformer.h.*.attn.*"`` — ``*`` also
            matches dots), the model's parameters themselves, or None for all that require grad.

    Raises:
        ConfigError: No parameter requires grad, a name is unknown, a pattern matches nothing, a tensor is
            not one of the model's parameters, a selected parameter is frozen, or a parameter is listed twice.
    """
    named = dict(model.named_parameters())
    if params is None:
        names = [name for name, p in named.items() if p.requires_grad]
        if not names:
            raise ConfigError(
                f"curvature: none of the model's {len(named)} parameters requires grad (all frozen); "
                "unfreeze some with p.requires_grad_(True) or pass params=[...]"
            )
        return names
    if isinstance(params, str | nn.Parameter | Tensor):
        params = [params]
    if len(params) == 0:
        raise ConfigError("curvature: params is empty; pass None for all parameters or some names")
    by_id = {id(p): name for name, p in named.items()}
    selected: list[str] = []
    for item in params:
        if isinstance(item, str) and item not in named and any(ch in item for ch in "*?["):
            matched = [name for name in named if fnmatch.fnmatchcase(name, item)]
            if not matched:
                raise ConfigError(
                    f"curvature: the pattern {item!r} matches no parameter name; the model has "
                    f"{sorted(named)[:12]}"
                )
            selected += [name for name in matched if named[name].requires_grad and name not in selected]
        elif isinstance(item, str):
            if item not in named:
                raise ConfigError(
                    f"curvature: no parameter named {item!r}; the model has {sorted(named)[:12]}"
                )
            selected.append(item)
        elif isinstance(item, Tensor) and id(item) in by_id:
            selected.append(by_id[id(item)])
        else:
            raise ConfigError(
                f"curvature: params must hold parameter names or the model's parameters, got {item!r}"
            )
    frozen = [name for name in selected if not named[name].requires_grad]
    if frozen:
        raise ConfigError(
            f"curvature: selected parameters do not require grad: {frozen}; "
            "call requires_grad_(True) on them or leave them out of params"
        )
    if len(set(selected)) != len(selected):
        raise ConfigError(f"curvature: params lists a parameter twice: {selected}")
    return selected


def warn_about_layers(model: nn.Module, train_mode: bool) -> None:
    """Warn (:class:`RavineWarning`) what happens to the model's BatchNorm and Dropout layers (p > 0), if any."""
    found = [
        name or type(m).__name__
        for name, m in model.named_modules()
        if isinstance(m, _STOCHASTIC) and not (isinstance(m, nn.modules.dropout._DropoutNd) and m.p == 0)
    ]
    if not found:
        return
    if train_mode:
        message = (
            f"curvature: model has BatchNorm/Dropout layers ({', '.join(found[:4])}); train_mode=True "
            "uses batch statistics and a dropout mask fixed per batch (seeded), so H is one fixed "
            "matrix; running statistics are left untouched"
        )
    else:
        message = (
            f"curvature: model has BatchNorm/Dropout layers ({', '.join(found[:4])}); the Hessian is "
            "evaluated in eval mode (running statistics, no dropout) and the model's mode is restored "
            "afterwards; pass train_mode=True to keep train-mode behaviour"
        )
    warnings.warn(message, RavineWarning, stacklevel=caller_stacklevel())


@contextmanager
def evaluation_mode(model: nn.Module, train_mode: bool) -> Iterator[None]:
    """Put the model in train or eval mode for a pass; restore each module's flags afterwards.

    In train mode BatchNorm layers normalise with the batch's statistics but do not update their running
    statistics (``track_running_stats`` is switched off for the pass): an in-place update inside a
    ``torch.func`` transform is an error, and a Hessian should not change the model.
    """
    saved = [(module, module.training) for module in model.modules()]
    tracking = [
        (module, module.track_running_stats)
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
    ]
    model.train(train_mode)
    if train_mode:
        for batchnorm, _ in tracking:
            batchnorm.track_running_stats = False
    try:
        yield
    finally:
        for module, training in saved:
            module.training = training
        for batchnorm, track in tracking:
            batchnorm.track_running_stats = track


def _embeddings(
    model: nn.Module, names: Sequence[str]
) -> Iterator[tuple[str, nn.Embedding | nn.EmbeddingBag]]:
    """The embedding layers whose weight is among the selected parameters, with that weight's name."""
    chosen = set(names)
    by_id = {id(p): name for name, p in model.named_parameters()}
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.EmbeddingBag):
            name = by_id.get(id(module.weight))
            if name in chosen:
                yield name, module


def check_embeddings(model: nn.Module, names: Sequence[str]) -> None:
    """Refuse sparse embeddings: their gradients are sparse tensors, which torch.func cannot differentiate.

    Raises:
        UnsupportedError: A selected embedding has ``sparse=True``.
    """
    sparse = [name for name, module in _embeddings(model, names) if module.sparse]
    if sparse:
        raise UnsupportedError(
            f"curvature: the embedding(s) {sparse} were built with sparse=True, whose sparse gradients have no "
            "second derivative in torch.func; build them with sparse=False (the Hessian is the same), or "
            "leave them out of params"
        )


def frozen_entries(model: nn.Module, names: Sequence[str], device: torch.device) -> Tensor | None:
    """A flat 0/1 mask that is 0 on the padding rows of selected embeddings (``padding_idx``), or None.

    autograd zeroes the gradient of a padding row, so the second derivative seen through the gradient is not
    symmetric there; ravine treats those rows as frozen parameters (products are P H P, P the projection
    off them), which is symmetric and the same on every path.
    """
    padded = {name: module.padding_idx for name, module in _embeddings(model, names)}
    padded = {name: index for name, index in padded.items() if index is not None}
    if not padded:
        return None
    named = dict(model.named_parameters())
    pieces = []
    for name in names:
        keep = torch.ones(named[name].shape, dtype=torch.bool, device=device)
        if name in padded:
            keep[padded[name]] = False
        pieces.append(keep.reshape(-1))
    return torch.cat(pieces)
