"""Thread settings for ravine's own small-model work (the lab, the scenarios, the experiments, the tour)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch

__all__ = ["single_threaded"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def single_threaded(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``function`` with torch's intra-op threads set to 1, restoring the previous count afterwards.

    The experiments' nets are tiny: their kernels take microseconds, and a second thread only adds
    synchronisation — on a busy 2-core machine one training step took 78 ms with 2 threads and 0.7 ms with 1.
    """

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(previous)

    return wrapper
