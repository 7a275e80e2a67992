"""``ravine optimizers`` runs, writes its PNGs and prints sane numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from ravine import cli
from ravine.experiments.digits_optimizers import compare_on_digits
from ravine.optim import PRESETS


def test_compare_on_digits_learns() -> None:
    result = compare_on_digits(steps=150, presets=["sgd", "adam"])
    assert [r.name for r in result.runs] == ["sgd", "adam"]
    for run in result.runs:
        assert len(run.losses) == 150
        assert run.final_train_loss < run.losses[0]
        assert run.val_accuracy > 0.8
        assert run.effective_lr_median > 0


def test_optimizers_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["optimizers", "--steps", "60", "--out", str(tmp_path)])
    assert status == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out
    for png in ("optimizers-loss.png", "schedules.png"):
        path = tmp_path / png
        assert path.exists()
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
