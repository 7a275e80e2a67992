"""The loss of a batch: a ``loss_fn``, or the model's own (``outputs.loss``, as Hugging Face models return).

Nothing here imports ``transformers``: a model is recognised as a Hugging Face causal language model only
when ``transformers`` is already loaded (a model of it cannot exist otherwise).

- :func:`model_loss` takes the loss out of a model's output (an object with ``.loss`` or a dict).
- :func:`shifts_labels` says whether the model's loss predicts token t+1 from token t (the counted targets
  are then ``labels[..., 1:] ≠ -100``).
- :func:`declared_reduction` reads ``reduction`` off a loss module or a ``functools.partial``.
- :func:`check_loss_signature` refuses a ``loss_fn`` that cannot be called as ``loss_fn(outputs, targets)``, and
  :func:`call_loss_fn` names the ``loss_fn`` (and how ravine called it) when it raises a TypeError.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ravine.curvature._model import caller_stacklevel
from ravine.errors import ConfigError, CurvatureError, RavineWarning

__all__ = [
    "call_loss_fn",
    "check_loss_signature",
    "check_reduction",
    "declared_reduction",
    "model_loss",
    "shifts_labels",
    "warn_lower_precision",
]

_CALLED_AS = "ravine calls loss_fn(outputs, targets) with the model's output and the batch's targets"


def _name(loss_fn: Any) -> str:
    inner = loss_fn.func if isinstance(loss_fn, functools.partial) else loss_fn
    return str(getattr(inner, "__name__", None) or type(inner).__name__)


def check_loss_signature(loss_fn: Any) -> None:
    """Refuse, when the operator is built, a ``loss_fn`` that cannot take the two positional arguments."""
    target = loss_fn.forward if isinstance(loss_fn, nn.Module) else loss_fn
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: judged when it is called
        return
    try:
        signature.bind(None, None)
    except TypeError as error:
        raise ConfigError(
            f"curvature: loss_fn {_name(loss_fn)}{signature} cannot be called as loss_fn(outputs, targets) "
            f"({error}); {_CALLED_AS}: give it that signature, e.g. lambda outputs, targets: ..."
        ) from None


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"a {type(value).__name__} with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"


def call_loss_fn(loss_fn: Any, outputs: Any, targets: Any) -> Any:
    """``loss_fn(outputs, targets)``; a TypeError it raises becomes a CurvatureError naming the loss_fn."""
    try:
        return loss_fn(outputs, targets)
    except TypeError as error:
        raise CurvatureError(
            f"curvature: loss_fn {_name(loss_fn)} raised TypeError: {error}. {_CALLED_AS}; here outputs was "
            f"{_describe(outputs)} and targets {_describe(targets)}. Fix the loss_fn for these arguments (e.g. "
            "take outputs.logits for a model that returns an object, or index a tuple output), or pass no "
            "loss_fn to use the model's own outputs.loss"
        ) from error


def model_loss(outputs: Any) -> Tensor:
    """``outputs.loss`` (or ``outputs["loss"]``), checked to be a tensor."""
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else getattr(outputs, "loss", None)
    if not isinstance(loss, Tensor):
        raise CurvatureError(
            f"curvature: no loss_fn was given, so the loss must come from the model's output, but the "
            f"{type(outputs).__name__} it returned has no 'loss' tensor; pass labels in the batch "
            "(Hugging Face models compute the loss then) or pass loss_fn=..."
        )
    return loss


def shifts_labels(model: nn.Module) -> bool:
    """Whether ``model`` is a Hugging Face causal LM, whose loss compares logits[:, :-1] with labels[:, 1:]."""
    if "transformers" not in sys.modules:
        return False
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:  # pragma: no cover - a transformers without the auto mapping
        names: set[str] = set()
    else:
        names = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    name = type(model).__name__
    return name in names or name.endswith("ForCausalLM") or name.endswith("LMHeadModel")


def declared_reduction(loss_fn: Any) -> str | None:
    """The ``reduction`` a loss module or ``functools.partial(F.some_loss, reduction=...)`` declares."""
    if isinstance(loss_fn, functools.partial):
        value = loss_fn.keywords.get("reduction")
        return value if isinstance(value, str) else declared_reduction(loss_fn.func)
    value = getattr(loss_fn, "reduction", None)
    return value if isinstance(value, str) else None


def check_reduction(loss_fn: Any, reduction: str, weighting: str) -> None:
    """Refuse unknown options and a ``loss_fn`` whose declared ``reduction`` is not the operator's.

    Raises:
        ConfigError: With the option to pass (``reduction="sum"``) or the loss to use.
    """
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"curvature: reduction must be 'mean' or 'sum', got {reduction=}")
    if weighting not in ("auto", "samples", "targets"):
        raise ConfigError(f"curvature: weighting must be 'auto', 'samples' or 'targets', got {weighting=}")
    declared = declared_reduction(loss_fn)
    if declared is not None and declared != reduction:
        raise ConfigError(
            f"curvature: loss_fn declares reduction={declared!r} but the operator was built with "
            f"{reduction=}; "
            + (
                "pass reduction='sum' for the Hessian of the loss summed over all the data, or use a "
                "loss with reduction='mean' for the Hessian of the mean"
                if declared == "sum"
                else "the loss of a batch must be a scalar: use reduction='mean' (or 'sum' with "
                "reduction='sum' here)"
            )
        )


def warn_lower_precision(dtype: torch.dtype) -> None:
    """Warn that a float64 request is computed in ``dtype`` inside the loss (once per operator)."""
    warnings.warn(
        f"curvature: dtype=torch.float64 was asked for, but the loss is computed in {dtype} "
        "(the model's own loss upcasts logits to float32, as Hugging Face's losses do); products carry "
        "that precision (about 1e-6 relative): pass loss_fn= computing the loss from the logits in "
        "float64 for full precision",
        RavineWarning,
        stacklevel=caller_stacklevel(),
    )
