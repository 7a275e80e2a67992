"""Copies of a model and its optimizer to experiment on, and a guard that leaves the user's run untouched.

:func:`copy_run` deep-copies the model and then the optimizer *through the same memo*, so the copy's
param groups and state refer to the copied parameters (and its state tensors are new); attributes a
subclass keeps outside torch's ``__getstate__`` (e.g. ravine's ``ChainOptimizer``) are copied too, and
optimizer hooks (a monitor's) are not. :func:`sandboxed` saves and restores every random generator a
trial could draw from: torch's global CPU and CUDA generators, Python's ``random`` and NumPy's global state
(generators owned by modules are deep-copied with the model, so the user's are never advanced).
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["copy_run", "sandboxed"]

_HOOKS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


def copy_run(model: nn.Module, optimizer: Any) -> tuple[nn.Module, Any]:
    """Independent copies of ``model`` and ``optimizer`` (the optimizer's state follows the copied params).

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> model2, opt2 = copy_run(model, opt)
        >>> opt2.param_groups[0]["params"][0] is model2.weight, model2.weight is model.weight
        (True, False)
    """
    memo: dict[int, Any] = {}
    clone = copy.deepcopy(model, memo)
    if optimizer is None:
        return clone, None
    for name in _HOOKS:
        hooks = getattr(optimizer, name, None)
        if hooks is not None:
            memo[id(hooks)] = type(hooks)()
    twin = copy.deepcopy(optimizer, memo)
    for key, value in optimizer.__dict__.items():
        if key not in twin.__dict__:
            twin.__dict__[key] = copy.deepcopy(value, memo)
    return clone, twin


@contextlib.contextmanager
def sandboxed() -> Iterator[None]:
    """Restore torch's (CPU and CUDA), Python's and NumPy's global random states on exit."""
    python_state = random.getstate()
    numpy_state: Any = None
    try:
        import numpy

        numpy_state = numpy.random.get_state()
    except ImportError:  # numpy is optional
        numpy = None  # type: ignore[assignment]
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        if numpy is not None and numpy_state is not None:
            numpy.random.set_state(numpy_state)
