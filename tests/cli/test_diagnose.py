"""``ravine diagnose``: a built-in scenario and a user's script, run for real with few steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ravine import cli
from ravine.diagnose import VerdictKind

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
    verdict = out.split("╯")[-1]  # after the live panel: "<verdict kind>: <summary>"
    assert any(f"{kind.value}:" in verdict for kind in VerdictKind), verdict
    assert (tmp_path / "out" / "diagnose-script.html").stat().st_size > 1000


def test_lr_range_suggests_a_rate_below_the_stability_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT, encoding="utf-8")
    status = cli.main(["diagnose", "lr-range", str(script), "--steps", "80", "--out", str(tmp_path / "out")])
    out = " ".join(capsys.readouterr().out.split())
    assert status == 0, out
    # the script's least squares: the Hessian of the mean squared error is 2/n [x 1]ᵀ[x 1]; GD diverges past 2/λ_max
    torch.manual_seed(0)
    x = torch.cat([torch.randn(256, 4), torch.ones(256, 1)], dim=1)
    limit = 2 / float(torch.linalg.eigvalsh(2 * x.T @ x / 256).max())
    suggested = float(out.split("suggested η ≈ ")[1].split()[0])
    assert 1e-3 < suggested < limit, (suggested, limit)
    assert (tmp_path / "out" / "lr-range.png").read_bytes()[:4] == b"\x89PNG"


def test_lr_range_refuses_a_script_optimizer_with_a_command_line_one(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        _SCRIPT + "optimizer = torch.optim.SGD(model.parameters(), lr=1e-5)\n", encoding="utf-8"
    )
    out = str(tmp_path / "out")
    assert cli.main(["diagnose", "lr-range", str(script), "--optimizer", "adam", "--out", out]) == 1
