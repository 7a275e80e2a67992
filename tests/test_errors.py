"""Every ravine error is a RavineError and also the matching built-in exception."""

from __future__ import annotations

import pytest

import ravine


@pytest.mark.parametrize(
    ("error_type", "builtin"),
    [
        (ravine.ConfigError, ValueError),
        (ravine.UnsupportedError, TypeError),
        (ravine.NonFiniteError, FloatingPointError),
        (ravine.DataError, ValueError),
        (ravine.CurvatureError, RuntimeError),
        (ravine.MemoryBudgetError, MemoryError),
    ],
)
def test_errors_share_one_base(error_type: type[Exception], builtin: type[Exception]) -> None:
    with pytest.raises(ravine.RavineError):
        raise error_type("x")
    assert issubclass(error_type, builtin)
