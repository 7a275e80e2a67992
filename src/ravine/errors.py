"""Errors raised by ravine.

Every error ravine raises on purpose is a :class:`RavineError`, so a caller can catch them all at once. The
subclasses also inherit from the matching built-in exception (``ValueError``, ``TypeError``, ...), so code
written against the built-ins keeps working. Messages name what was received and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CurvatureError",
    "DataError",
    "MemoryBudgetError",
    "MonitorWarning",
    "NonFiniteError",
    "RavineError",
    "RavineWarning",
    "UnsupportedError",
]


class RavineError(Exception):
    """Base class of every error ravine raises on purpose."""


class ConfigError(RavineError, ValueError):
    """A hyper-parameter, option or argument is out of its valid range."""


class UnsupportedError(RavineError, TypeError):
    """An input of a kind ravine does not handle (sparse gradients, integer parameters, ...)."""


class NonFiniteError(RavineError, FloatingPointError):
    """A loss, gradient or curvature value became NaN or infinite."""


class DataError(RavineError, ValueError):
    """The data given is empty, of the wrong shape, or otherwise unusable."""


class CurvatureError(RavineError, RuntimeError):
    """A curvature computation cannot be carried out (e.g. the loss is not twice differentiable)."""


class MemoryBudgetError(RavineError, MemoryError):
    """A requested object would not fit in memory; the message says how large it would be."""


class RavineWarning(UserWarning):
    """Something ravine did on your behalf that changes the result (e.g. evaluating in eval mode)."""


class MonitorWarning(RavineWarning):
    """The monitor's own failure (warned about once; the details are in ``monitor.errors``)."""
