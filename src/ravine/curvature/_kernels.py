"""Twice-differentiable kernels inside ravine's own passes, and errors that name the real cause.

torch picks fast kernels that have no second derivative: the fused scaled-dot-product attention kernels
(flash / memory-efficient; the CPU flash kernel has neither forward AD nor double backward), oneDNN
(mkldnn) RNN layers (no forward AD), and the "fast path" of ``nn.MultiheadAttention`` /
``nn.TransformerEncoderLayer`` (a fused inference kernel taken outside autograd). :func:`twice_differentiable`
selects the plain kernels for the duration of a pass — the math SDPA backend, mkldnn off when the model has
RNN layers, the MHA fast path off — and restores the user's settings afterwards, whatever happens.

:func:`explain` turns torch's messages into a cause and a fix.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["explain", "needs_reverse_over_reverse", "twice_differentiable"]


def _math_attention() -> contextlib.AbstractContextManager[object]:
    """The math SDPA backend (twice differentiable); torch ≥ 2.3 has ``torch.nn.attention.sdpa_kernel``."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - torch < 2.3 (unsupported, but fail soft)
        legacy = getattr(torch.backends.cuda, "sdp_kernel", None)
        if legacy is None:
            return contextlib.nullcontext()
        return legacy(enable_flash=False, enable_math=True, enable_mem_efficient=False)  # type: ignore[no-any-return]
    return sdpa_kernel([SDPBackend.MATH])


@contextlib.contextmanager
def _mha_fast_path_off() -> Iterator[None]:
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):  # pragma: no cover - older torch
        yield
        return
    saved = bool(mha.get_fastpath_enabled())
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(saved)


@contextlib.contextmanager
def _mkldnn_off() -> Iterator[None]:
    """mkldnn off (its RNN layers have no forward AD); ``torch.backends.mkldnn.flags`` warns on CPU builds."""
    saved = bool(torch.backends.mkldnn.enabled)
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = saved  # type: ignore[assignment]


def has_rnn(model: nn.Module) -> bool:
    """Whether the model has an ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layer."""
    return any(isinstance(module, nn.RNNBase) for module in model.modules())


@contextlib.contextmanager
def twice_differentiable(model: nn.Module) -> Iterator[None]:
    """Select kernels with second derivatives for the block; restore the user's settings afterwards.

    Example:
        >>> import torch
        >>> before = torch.backends.mha.get_fastpath_enabled()
        >>> with twice_differentiable(torch.nn.LSTM(2, 2)):
        ...     torch.backends.mkldnn.enabled, torch.backends.mha.get_fastpath_enabled()
        (False, False)
        >>> torch.backends.mha.get_fastpath_enabled() == before
        True
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(_math_attention())
        stack.enter_context(_mha_fast_path_off())
        if has_rnn(model):
            stack.enter_context(_mkldnn_off())
        yield


def needs_reverse_over_reverse(error: BaseException) -> bool:
    """Whether torch refused forward-mode AD or vmap for an operation (reverse-over-reverse may still work)."""
    text = str(error)
    return isinstance(error, NotImplementedError | RuntimeError) and (
        "forward AD" in text or "forward mode AD" in text or "jvp function" in text or "vmap support" in text
    )


def _operation(message: str) -> str | None:
    for pattern in (
        r"forward AD with (\S+) that does not support it",
        r"derivative for (?:aten::)?(\S+?) is not implemented",
    ):
        found = re.search(pattern, message)
        if found:
            return found.group(1).rstrip(".")
    return None


def explain(what: str, index: int, error: BaseException) -> str:
    """A message for a failed pass: what torch said, the real cause and the fix."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    head = f"curvature: torch could not compute the {what} on batch {index} ({type(error).__name__}: {first})"
    operation = _operation(text) or ""
    if isinstance(error, TypeError) and "unexpected keyword argument 'labels'" in text:
        cause = (
            "no loss_fn was given, so the targets went to the model as labels= for its own outputs.loss (the "
            "Hugging Face convention), but this model takes no labels; pass loss_fn=loss(outputs, targets)"
        )
    elif (
        "scaled_dot_product" in operation
        or "flash_attention" in operation
        or "efficient_attention" in operation
    ):
        cause = (
            f"the attention kernel {operation} has no second derivative. ravine selects the math backend of "
            "scaled_dot_product_attention inside its passes, so this model calls a fused kernel directly "
            '(e.g. a Hugging Face model built with attn_implementation="flash_attention_2"); build it with '
            'attn_implementation="eager" or "sdpa", or pass hvp="finite-difference"'
        )
    elif "mkldnn" in operation or "miopen" in operation or "cudnn" in operation:
        cause = (
            f"the fused RNN kernel {operation} has no second derivative here. ravine turns mkldnn off for "
            "nn.RNN/LSTM/GRU inside its passes; for a custom RNN module run the operator under "
            'torch.backends.cudnn.flags(enabled=False) (GPU), or pass hvp="finite-difference"'
        )
    elif operation and "forward AD" in text:
        cause = (
            f"the operation {operation} has no forward-mode derivative, and the reverse-over-reverse fallback "
            'failed too; pass hvp="finite-difference" (central differences of gradients, error stated in '
            "the docs) or replace the operation"
        )
    elif operation:
        cause = (
            f"the operation {operation} has no second derivative (no double backward); pass "
            'hvp="finite-difference" (central differences of gradients) or replace the operation'
        )
    elif "inplace" in text.lower() or "in-place" in text.lower() or "modified by an inplace" in text:
        cause = (
            "an in-place update inside the model (of a buffer or an activation) breaks the function transform; "
            "make the update out of place or keep the buffer out of the forward pass"
        )
    elif "autograd.Function" in text or "setup_context" in text:
        cause = (
            "a custom torch.autograd.Function in the model or loss is not usable with torch.func, which every "
            "ravine pass uses (finite differences too): give it a setup_context staticmethod, with forward "
            "taking no ctx (torch's 'Extending torch.func with autograd.Function'); a jvp is not needed"
        )
    else:
        cause = (
            "if the model and loss run on this batch outside ravine, an operation is not twice differentiable "
            "with torch.func (e.g. data-dependent Python control flow on tensors fails under vmap); "
            'hvp="finite-difference" needs only first derivatives'
        )
    return f"{head}. Cause: {cause}"
