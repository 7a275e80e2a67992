"""Warnings issued by ravine's curvature engine."""

from __future__ import annotations

__all__ = ["RavineWarning"]


class RavineWarning(UserWarning):
    """Something ravine did on your behalf that changes the result (e.g. evaluating in eval mode)."""
