"""The CLI maps RavineError to exit status 1 with a readable message."""

from __future__ import annotations

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
