"""ravine's one home for validators: a bad value raises :class:`~ravine.errors.ConfigError` naming it and the fix."""

from __future__ import annotations

import math

from ravine.errors import ConfigError


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_nonnegative(owner: str, name: str, value: float) -> float:
    """``value`` must be a finite number ≥ 0."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{owner}: {name} must be a finite number >= 0, got {name}={value!r}")
    return float(value)


def check_positive(owner: str, name: str, value: float) -> float:
    """``value`` must be a finite number > 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{owner}: {name} must be a finite number > 0, got {name}={value!r}")
    return float(value)


def check_unit_interval(owner: str, name: str, value: float) -> float:
    """``value`` must lie in [0, 1)."""
    if not _is_number(value) or not 0 <= value < 1:
        raise ConfigError(f"{owner}: {name} must be in [0, 1), got {name}={value!r}")
    return float(value)


def check_closed_unit_interval(owner: str, name: str, value: float) -> float:
    """``value`` must lie in [0, 1]."""
    if not _is_number(value) or not 0 <= value <= 1:
        raise ConfigError(f"{owner}: {name} must be in [0, 1], got {name}={value!r}")
    return float(value)


def check_positive_int(owner: str, name: str, value: int) -> int:
    """``value`` must be an integer ≥ 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{owner}: {name} must be an integer >= 1, got {name}={value!r}")
    return value


def check_all_positive(owner: str, **values: float) -> None:
    """Every keyword's value must be a finite number > 0; the first that is not is named."""
    for name, value in values.items():
        check_positive(owner, name, value)
