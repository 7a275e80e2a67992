"""ravine's one home for validators: a bad value raises :class:`~ravine.errors.ConfigError` naming it and the fix."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

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


def check_output_dir(owner: str, path: object) -> Path:
    """``path`` must be a folder ravine can write into (created, with its parents, if missing).

    Called before any work, so that a bad ``--out`` fails at once rather than after minutes of computing.

    Example:
        >>> import tempfile
        >>> folder = check_output_dir("tour", Path(tempfile.mkdtemp()) / "out")
        >>> folder.is_dir()
        True
    """
    folder = Path(str(path)).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"{owner}: --out {folder} is a file, not a folder; pass a folder (it is created if missing)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            f"{owner}: cannot write into --out {folder} ({reason}); pass a folder you can write to"
        ) from None
    return folder
