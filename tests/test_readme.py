"""The README's Python examples run as written, on a small model and data set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_has_the_three_library_examples() -> None:
    blocks = _python_blocks()
    assert len(blocks) == 3
    assert "ChainOptimizer" in blocks[0] and "Monitor" in blocks[1] and "HessianOperator" in blocks[2]


def _printed_comment(block: str) -> str:
    """The text after a block's ``# prints:`` line (comment lines joined with spaces)."""
    lines = block.split("# prints:\n", 1)[1].splitlines()
    return " ".join(line.removeprefix("# ").strip() for line in lines if line.startswith("#"))


def test_readme_monitor_example_prints_what_it_shows(capsys: pytest.CaptureFixture[str]) -> None:
    block = _python_blocks()[1]
    exec(compile(block, str(README), "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert printed == _printed_comment(block)
    assert printed.startswith("ravine oscillation: ")


def test_readme_examples_run() -> None:
    import ravine

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    loader = [(x[:32], y[:32]), (x[32:], y[32:])]
    namespace: dict[str, object] = {
        "ravine": ravine,
        "model": model,
        "loss_fn": nn.functional.mse_loss,
        "loader": loader,
        "x": x,
        "y": y,
    }
    # Each block on its own copy of the names (the Monitor example builds its own model and data).
    results: dict[str, object] = {}
    for block in _python_blocks():
        scope = dict(namespace)
        exec(compile(block, str(README), "exec"), scope)
        results.update({k: v for k, v in scope.items() if k in ("monitor", "top", "optimizer")})
    monitor = results["monitor"]
    assert isinstance(monitor, ravine.Monitor)
    top = results["top"]
    assert bool(top.all_converged)  # type: ignore[attr-defined]
