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


def test_readme_has_the_five_library_examples() -> None:
    blocks = _python_blocks()
    assert len(blocks) == 5
    assert "ChainOptimizer" in blocks[0] and "Monitor" in blocks[1] and "HessianOperator" in blocks[2]
    assert "transformers" in blocks[3] and "block_spectra" in blocks[4]


# GPT-2's default config has dropout: ravine says, rightly, that it evaluates the Hessian in eval mode
@pytest.mark.filterwarnings("ignore:curvature. model has BatchNorm/Dropout layers")
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
    for block in _python_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    monitor = namespace["monitor"]
    assert isinstance(monitor, ravine.Monitor)
    top = namespace["top"]  # the Hugging Face example's, the last to set it
    assert bool(top.all_converged)  # type: ignore[attr-defined]
    H = namespace["H"]
    assert H.num_samples == 6 * 15  # type: ignore[attr-defined]  # counted tokens: 15 per row after the shift
    spectra = namespace["spectra"]
    assert [b.name for b in spectra.blocks] == ["attention", "mlp", "embeddings"]  # type: ignore[attr-defined]
