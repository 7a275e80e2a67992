"""The CLI: a RavineError is one line and status 1; a bad --out fails before any work; help written for people."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ravine import RavineError, cli


def test_version_prints_versions(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version"]) == 0
    assert "ravine 0.1.0" in capsys.readouterr().out


def test_ravine_error_exits_one_with_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @cli.app.command("explode-for-test")
    def explode() -> None:
        raise RavineError("learning rate must be positive, got lr=-1.0; pass lr > 0")

    try:
        status = cli.main(["explode-for-test"])
    finally:
        cli.app.registered_commands.pop()
    assert status == 1
    assert "learning rate must be positive" in capsys.readouterr().err


def test_unknown_command_is_usage_error() -> None:
    assert cli.main(["no-such-command"]) == 2


_CHECK_NO_WORK = """
import json, sys
from ravine.cli import main
commands, outs = json.loads(sys.argv[1])
for command in commands:
    for out in outs:
        status = main([*command, "--out", out])
        print(json.dumps([command, out, status, "torch" in sys.modules]))
"""

_WITH_OUT = [
    ["tour"],
    ["lab", "saddle"],
    ["optimizers"],
    ["experiment", "batch"],
    ["diagnose", "scenario", "saddle-mlp-momentum"],
    ["diagnose", "script", "train.py"],
]


def _bad_outs(tmp_path: Path) -> list[Path]:
    a_file = tmp_path / "report.txt"
    a_file.write_text("not a folder")
    return [a_file, a_file / "below-a-file", Path("/proc/ravine-cannot-write-here")]


def test_a_bad_out_fails_in_one_line_before_any_work(tmp_path: Path) -> None:
    outs = [str(out) for out in _bad_outs(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-c", _CHECK_NO_WORK, json.dumps([_WITH_OUT, outs])],
        capture_output=True,
        text=True,
        check=False,
    )
    results = [json.loads(line) for line in done.stdout.splitlines()]
    # Every command with --out, every bad folder: status 1 and torch never imported (no work was started) ...
    assert [(command, out) for command, out, _, _ in results] == [(c, o) for c in _WITH_OUT for o in outs]
    assert all(status == 1 and not torch for _, _, status, torch in results), results
    # ... and one line each, naming --out and the fix.
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(results)
    for line, (_, out, _, _) in zip(lines, results, strict=True):
        assert line.startswith("error:") and f"--out {out}" in line and "pass a folder" in line


def test_experiment_with_a_bad_out_fails_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ravine.experiments import REGISTRY

    def must_not_run(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the experiment ran although --out is unusable")

    monkeypatch.setitem(REGISTRY, "momentum", dataclasses.replace(REGISTRY["momentum"], run=must_not_run))
    (out,) = _bad_outs(tmp_path)[:1]
    assert cli.main(["experiment", "momentum", "--out", str(out)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "is a file, not a folder" in line


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    import os

    os.environ["COLUMNS"] = "400"  # one line per option, so that phrases are not broken by the layout
    try:
        assert cli.main([*command, "--help"]) == 0
    finally:
        del os.environ["COLUMNS"]
    return " ".join(capsys.readouterr().out.split())


def test_diagnose_scenario_help_lists_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    from ravine.diagnose.scenarios import HEALTHY, SCENARIOS

    text = _help(capsys, "diagnose", "scenario")
    for name in [*SCENARIOS, *HEALTHY]:
        assert name in text.replace("- ", "-")  # rich may break a long name at a hyphen


def test_experiment_help_describes_options_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "experiment", "batch")
    assert "MNIST-1D samples" in text and "Comma-separated" in text and "quick 80,800, full" in text
    assert "batch_sizes (tuple)" not in text and "default from the preset" not in text
    listing = _help(capsys, "experiment")
    for name in ("minimum-ratio", "batch", "momentum", "adaptive", "warmup", "landscape"):
        assert name in listing


def test_optimizers_help_does_not_claim_parity(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "optimizers")
    assert "checked by the test suite" in text and "digits" in text


def test_field_help_reads_the_config_docstring() -> None:
    from ravine.cli.experiment import field_help
    from ravine.experiments.momentum import MomentumConfig

    described = field_help(MomentumConfig)
    assert set(described) == {f.name for f in dataclasses.fields(MomentumConfig)}
    assert described["mu"].startswith("Momentum coefficient")
