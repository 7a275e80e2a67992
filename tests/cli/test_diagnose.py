"""``ravine diagnose``: a built-in scenario and a user's script, run for real with few steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from ravine import cli

_SCRIPT = """
import torch

torch.manual_seed(0)
x = torch.randn(256, 4)
y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
model = torch.nn.Linear(4, 1)
loss_fn = torch.nn.functional.mse_loss
data = (x, y)
"""


def test_scenario_prints_the_verdict_against_its_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["diagnose", "scenario", "ravine-surface-gd", "--steps", "300", "--out", str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())
    assert status == 0, out
    assert "1/1 verdicts as labelled" in out  # the one run, verdict as its label says
    page = (tmp_path / "diagnose.html").read_text(encoding="utf-8")
    assert "ravine-surface-gd" in page and "data:image/png;base64," in page


def test_unknown_scenario_names_the_choices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["diagnose", "scenario", "ravine-surface", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown name='ravine-surface'" in err and "ravine-surface-gd" in err


def test_script_trains_the_users_model_and_gives_a_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT, encoding="utf-8")
    status = cli.main(
        ["diagnose", "script", str(script), "--steps", "60", "--lr", "0.05", "--out", str(tmp_path / "out")]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert ":" in out.splitlines()[0]  # "<verdict kind>: <summary>"
    assert (tmp_path / "out" / "diagnose-script.html").stat().st_size > 1000
