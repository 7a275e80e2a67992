"""The README's examples run as written, on a small model and data set; its install lines match pyproject.toml."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# The frameworks' own deprecation chatter is theirs; ravine's warnings still fail.
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:lightning"),
    pytest.mark.filterwarnings("ignore::UserWarning:transformers"),
    pytest.mark.filterwarnings("ignore::UserWarning:accelerate"),
    pytest.mark.filterwarnings(
        "ignore:.*pin_memory.*:UserWarning"
    ),  # torch, for the Trainer's CPU DataLoader
]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def _framework(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as error:  # installed but broken counts as absent
        pytest.skip(f"{name} is not usable here: {type(error).__name__}: {error}")


def test_readme_has_the_library_examples() -> None:
    blocks = _blocks("python")
    assert "ChainOptimizer" in blocks[0] and "Monitor" in blocks[1] and "HessianOperator" in blocks[2]
    assert any("RavineMonitorCallback" in block for block in blocks)
    assert any("RavineTrainerCallback" in block for block in blocks)
    assert any("monitor.history" in block and "monitor_figure" in block for block in blocks)
    assert any("GPT2LMHeadModel" in block for block in blocks) and any(
        "block_spectra" in block for block in blocks
    )


def test_install_lines_name_this_package_and_its_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (install,) = [block for block in _blocks("bash") if "pip install" in block]
    for extra in re.findall(r"ravine\[(\w+)\]", install):
        assert extra in project["optional-dependencies"]
    assert project["name"] == "ravine" and project["scripts"]["ravine"] == "ravine.cli:main"


class _LitRegression:
    """Built on first use, so that importing this file does not import Lightning."""

    @staticmethod
    def build(lightning: Any) -> Any:
        class Regression(lightning.LightningModule):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

            def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
                x, y = batch
                loss: torch.Tensor = nn.functional.mse_loss(self.net(x), y)
                return loss

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return torch.optim.SGD(self.parameters(), lr=0.05)

        return Regression()


class _HFRegression(nn.Module):
    """A model as the Hugging Face Trainer wants it: keyword inputs in, a dict with the loss out."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.net(x), labels)}


def _printed_comment(block: str) -> str:
    """The text after a block's ``# prints:`` line (comment lines joined with spaces)."""
    lines = block.split("# prints:\n", 1)[1].splitlines()
    return " ".join(line.removeprefix("# ").strip() for line in lines if line.startswith("#"))


def test_readme_monitor_example_prints_what_it_shows(capsys: pytest.CaptureFixture[str]) -> None:
    block = _blocks("python")[1]
    exec(compile(block, str(README), "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert printed == _printed_comment(block)
    assert printed.startswith("ravine oscillation: ")


# GPT-2's default config has dropout: ravine says, rightly, that it evaluates the Hessian in eval mode
@pytest.mark.filterwarnings("ignore:curvature. model has BatchNorm/Dropout layers")
def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ravine
    import ravine.optim as ro

    monkeypatch.chdir(tmp_path)  # the examples write their figures and the Trainer its output here
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    loader = [(x[:32], y[:32]), (x[32:], y[32:])]
    namespace: dict[str, object] = {
        "ravine": ravine,
        "ro": ro,
        "model": model,
        "loss_fn": nn.functional.mse_loss,
        "loader": loader,
        "x": x,
        "y": y,
    }
    base = {name: namespace[name] for name in ("model", "loss_fn", "loader", "x", "y")}
    for block in _blocks("python"):
        if "lightning" in block:
            lightning = _framework("lightning")
            namespace["lit_module"] = _LitRegression.build(lightning)
            namespace["train_loader"] = torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(x, y), batch_size=16
            )
        if "transformers" in block:
            _framework("transformers")
            _framework("accelerate")
            namespace["hf_model"] = _HFRegression(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)))
            namespace["train_dataset"] = [{"x": xi, "labels": yi} for xi, yi in zip(x, y, strict=True)]
        exec(compile(block, str(README), "exec"), namespace)
        if "inject_hyperparams" in block:
            namespace["injected"] = cast(ro.ChainOptimizer, namespace["optimizer"]).hyperparams()
        if (
            "ravine.Monitor(" in block
        ):  # the Monitor example builds its own model and data: later ones use ours
            namespace.update(base)
        if "RavineMonitorCallback" in block or "RavineTrainerCallback" in block:
            callback: Any = namespace["callback"]
            assert callback.monitor is not None and len(callback.monitor.history) > 0
    assert namespace["injected"] == {"0.max_norm": 1.0, "1.beta2": 0.95}  # the optimizer example's comment
    monitor = namespace["monitor"]
    assert isinstance(monitor, ravine.Monitor)
    top = namespace["top"]  # the Hugging Face example's, the last to set it
    assert bool(top.all_converged)  # type: ignore[attr-defined]
    for png in ("my-run.png", "spectrum.png", "schedule.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    H = namespace["H"]
    assert H.num_samples == 6 * 15  # type: ignore[attr-defined]  # counted tokens: 15 per row after the shift
    spectra = namespace["spectra"]
    assert [b.name for b in spectra.blocks] == ["attention", "mlp", "embeddings"]  # type: ignore[attr-defined]
