"""``ravine lab``: real runs with few steps; figures written, the claims table printed; bad input in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ravine import cli


def test_lab_command_writes_figures_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        ["lab", "momentum", "--out", str(tmp_path), "--steps", "2000", "--format", "svg", "--no-gif"]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "holds" in out and "rolls through" in out
    assert (tmp_path / "momentum" / "momentum-paths.svg").exists()
    assert not list(tmp_path.rglob("*.png"))


def test_lab_command_rejects_unknown_names_and_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lab", "bowl"]) == 1
    assert "unknown lab 'bowl'" in capsys.readouterr().err
    assert cli.main(["lab", "saddle", "--format", "jpg"]) == 1
    assert "--format" in capsys.readouterr().err
    assert cli.main(["lab", "saddle", "--steps", "0"]) == 1
