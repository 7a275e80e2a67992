"""One of torch's warnings that ravine keeps from its users: the first forward-AD pass scripts its decompositions."""

from __future__ import annotations

import contextlib
import functools
import warnings

__all__ = ["load_forward_ad"]


@functools.cache
def load_forward_ad() -> None:
    """Import torch's forward-AD decompositions once, without the DeprecationWarning torch itself raises.

    torch loads them on the first ``jvp`` and scripts them with ``torch.jit.script``, which warns; under
    ``-W error`` (as in many test suites) that warning would break the first Hessian-vector product.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is", category=DeprecationWarning)
        with contextlib.suppress(ImportError):  # other torch versions may not have the module
            import torch._decomp.decompositions_for_jvp  # noqa: F401
