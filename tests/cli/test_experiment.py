"""``ravine experiment NAME``: a real run with tiny settings writes its figure and numbers and prints every claim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ravine import cli


def test_cli_runs_an_experiment_and_writes_figure_and_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(
        [
            "experiment",
            "landscape",
            "--out",
            str(tmp_path),
            "--steps",
            "30",
            "--grid",
            "5",
            "--line-points",
            "7",
            "--hidden",
            "8",
            "--snapshot-every",
            "10",
        ]
    )
    assert status == 0
    numbers = json.loads((tmp_path / "landscape.json").read_text())
    assert numbers["config"]["steps"] == 30 and "holds" in numbers
    assert [set(check) for check in numbers["claims"]] == [{"statement", "holds", "evidence", "subject"}] * 2
    # Every checked part of the claim is printed with its verdict and its numbers.
    printed = " ".join(capsys.readouterr().out.split())
    for check in numbers["claims"]:
        assert " ".join(check["statement"].split()) in printed
        assert ("held" if check["holds"] else "did not hold") in printed
    assert "largest rise" in printed and "slice points" in printed
    assert (tmp_path / "landscape.png").stat().st_size > 1000
