"""``diagnose script``: the optimizer actually used is reported, the format is checked before training, errors
point at the user's line, bad numbers are refused, Ctrl-C keeps the verdict so far."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ravine import cli
from ravine.diagnose.script import FORMAT, ScriptError, diagnose_script
from ravine.errors import ConfigError, DataError

HEADER = """\
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
loss_fn = torch.nn.functional.mse_loss
"""


def _script(tmp_path: Path, body: str, name: str = "run.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def test_the_scripts_own_optimizer_is_used_and_reported(tmp_path: Path) -> None:
    path = _script(
        tmp_path,
        """
        data = (torch.randn(128, 4), torch.randn(128, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-5)
        """,
    )
    run = diagnose_script(path, steps=30)
    assert run.optimizer == "SGD(lr=1e-05)" and run.source == "script"
    assert run.monitor.history.columns["lr"][-1] == 1e-5
    assert "SGD(lr=1e-05)" in run.description and not run.interrupted
    with pytest.raises(ConfigError, match=r"builds its own optimizer, SGD\(lr=1e-05\).*drop --lr 0.1"):
        diagnose_script(path, steps=30, lr=0.1)
    plain = _script(tmp_path, "data = (torch.randn(128, 4), torch.randn(128, 1))\n", "plain.py")
    run = diagnose_script(plain, steps=10, optimizer="momentum", lr=0.05)
    assert run.optimizer == "SGD(lr=0.05, momentum=0.9)" and run.source == "command line"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"optimizer": "lbfgs"}, "optimizer"),
    ],
)
def test_invalid_numbers_are_refused_before_the_script_runs(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    path = _script(tmp_path, "raise SystemExit('the script must not run')\n")
    with pytest.raises(ConfigError, match=match):
        diagnose_script(path, **kwargs)  # type: ignore[arg-type]


def test_errors_point_at_the_users_line(tmp_path: Path) -> None:
    broken = _script(tmp_path, "data = (torch.randn(8, 4), undefined_name)\n", "broken.py")
    with pytest.raises(ScriptError, match=r"broken\.py:5: data = .*NameError"):
        diagnose_script(broken, steps=5)
    mismatched = _script(
        tmp_path,
        """
        def loss_fn(outputs, targets):
            return torch.nn.functional.cross_entropy(outputs, targets)  # wrong targets for 1 output
        data = (torch.randn(32, 4), torch.randn(32, 3))
        """,
        "mismatch.py",
    )
    with pytest.raises(ScriptError, match=r"mismatch\.py:7: return torch.nn.functional.cross_entropy"):
        diagnose_script(mismatched, steps=5)
    missing = _script(tmp_path, "x = 1\n", "missing.py")
    with pytest.raises(ScriptError, match="does not define data") as caught:
        diagnose_script(missing, steps=5)
    assert FORMAT in str(caught.value)
    empty = _script(tmp_path, "data = (torch.randn(0, 4), torch.randn(0, 1))\n", "empty.py")
    with pytest.raises(DataError, match="empty"):
        diagnose_script(empty, steps=5)


def test_ctrl_c_keeps_the_verdict_so_far(tmp_path: Path) -> None:
    path = _script(tmp_path, "data = (torch.randn(128, 4), torch.randn(128, 1))\n")

    def interrupt(monitor: object, step: int, total: int) -> None:
        if step == 40:
            raise KeyboardInterrupt

    run = diagnose_script(path, steps=500, on_step=interrupt)
    assert run.interrupted and run.steps == 40 and run.requested == 500
    assert len(run.monitor.history) == 40 and run.verdict.step == 39
    assert "PARTIAL" in run.description


def test_command_line_reports_partial_runs_and_documents_the_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _script(
        tmp_path,
        """
        class Batches:
            def __iter__(self):
                for i in range(60):
                    yield torch.randn(16, 4), torch.randn(16, 1)
                raise KeyboardInterrupt  # Ctrl-C after 60 batches
        data = Batches()
        """,
    )
    out = tmp_path / "out"
    status = cli.main(["diagnose", "script", str(path), "--steps", "100", "--out", str(out)])
    text = capsys.readouterr().out
    assert status == 130
    assert "interrupted after 60 of 100 steps" in text
    assert "PARTIAL" in (out / "diagnose-script.html").read_text()
    assert cli.main(["diagnose", "script", str(path), "--lr", "-1", "--out", str(out)]) == 1
    assert "lr must be a finite number > 0" in capsys.readouterr().err
    assert cli.main(["diagnose", "script", "--help"]) == 0
    assert "loss_fn(model(inputs), targets)" in " ".join(capsys.readouterr().out.split())
