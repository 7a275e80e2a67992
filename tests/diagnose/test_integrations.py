"""Integrations are tested only when their framework is installed."""

from __future__ import annotations

import pytest


def test_lightning_callback_imports() -> None:
    pytest.importorskip("lightning")
    from ravine.diagnose.integrations.lightning import RavineMonitorCallback

    assert RavineMonitorCallback().monitor is None


def test_huggingface_callback_imports() -> None:
    pytest.importorskip("transformers")
    from ravine.diagnose.integrations.huggingface import RavineTrainerCallback

    assert RavineTrainerCallback().monitor is None
