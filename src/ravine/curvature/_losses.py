"""The loss of a batch: a ``loss_fn``, or the model's own (``outputs.loss``, as Hugging Face models return).

Nothing here imports ``transformers``: a model is recognised as a Hugging Face causal language model only
when ``transformers`` is already loaded (a model of it cannot exist otherwise).

- :func:`model_loss` takes the loss out of a model's output (an object with ``.loss`` or a dict).
- :func:`shifts_labels` says whether the model's loss predicts token t+1 from token t (the counted targets
  are then ``labels[..., 1:] ≠ -100``).
- :func:`declared_reduction` reads ``reduction`` off a loss module or a ``functools.partial``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from ravine.errors import CurvatureError

__all__ = ["declared_reduction", "model_loss", "shifts_labels"]


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
