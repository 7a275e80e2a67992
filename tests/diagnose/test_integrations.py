"""The Lightning and Hugging Face callbacks, run through their real trainers when the framework is installed.

Each test trains a tiny regression model for a few optimizer steps with gradient accumulation and gradient
clipping, and checks that the monitor saw one row per optimizer step with the unclipped gradient norm and the
step's loss, and that the framework's training ran as it would without the callback.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

# The frameworks' own deprecation chatter is theirs; ravine's warnings (RavineWarning, MonitorWarning) still fail.
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:lightning"),
    pytest.mark.filterwarnings("ignore::UserWarning:transformers"),
    pytest.mark.filterwarnings("ignore::UserWarning:accelerate"),
]

STEPS = 6
ACCUMULATE = 2
BATCH = 8


def _framework(name: str) -> ModuleType:
    """Import ``name`` or skip; a framework that is installed but broken (e.g. a mismatched torchvision) skips too."""
    try:
        return importlib.import_module(name)
    except Exception as error:  # any import failure means: not usable here
        pytest.skip(f"{name} is not usable here: {type(error).__name__}: {error}")


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS * ACCUMULATE * BATCH, 3, generator=generator)
    y = 100 * x.sum(dim=1, keepdim=True)  # large targets: the first gradients are far above the clip norm
    return x, y


def _assert_recorded(monitor: Any, clip: float) -> None:
    assert monitor is not None
    assert monitor.verdict().kind.value  # a verdict can be given (and the pending rows are flushed)
    history = monitor.history
    assert len(history) == STEPS
    losses = history.columns["loss"]
    assert all(math.isfinite(value) and value > 0 for value in losses)
    # the norm before clipping: well above the clip threshold at the start
    assert history.columns["grad_norm"][0] > 10 * clip
    assert monitor.errors == []


def test_lightning_callback_records_every_optimizer_step(tmp_path: Any) -> None:
    lightning = _framework("lightning")
    from ravine.diagnose.integrations.lightning import RavineMonitorCallback

    class Regression(lightning.LightningModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(3, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss: torch.Tensor = nn.functional.mse_loss(self.net(x), y)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    callback = RavineMonitorCallback()
    csv = importlib.import_module("lightning.pytorch.loggers").CSVLogger(str(tmp_path), name="run")
    trainer = lightning.Trainer(
        max_epochs=1,
        accumulate_grad_batches=ACCUMULATE,
        gradient_clip_val=1.0,
        callbacks=[callback],
        accelerator="cpu",
        logger=csv,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Regression(), loader)
    assert trainer.global_step == STEPS
    _assert_recorded(callback.monitor, clip=1.0)
    # The monitor's signals went through the trainer's own logger.
    text = (Path(csv.log_dir) / "metrics.csv").read_text()
    assert "ravine/loss" in text and "ravine/grad_norm" in text


def test_huggingface_callback_records_every_optimizer_step(tmp_path: Any) -> None:
    transformers = _framework("transformers")
    _framework("accelerate")
    from ravine.diagnose.integrations.huggingface import RavineTrainerCallback

    class Regression(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(3, 1)

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": nn.functional.mse_loss(self.net(x), labels)}

    x, y = _data()
    dataset = [{"x": xi, "labels": yi} for xi, yi in zip(x, y, strict=True)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=ACCUMULATE,
        max_grad_norm=1.0,
        learning_rate=1e-3,
        num_train_epochs=1,
        lr_scheduler_type="constant",
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="steps",
        logging_steps=2,
    )
    callback = RavineTrainerCallback()
    logged: list[dict[str, Any]] = []

    class Spy(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            logged.append(dict(logs or {}))

    trainer = transformers.Trainer(
        model=Regression(), args=args, train_dataset=dataset, callbacks=[callback, Spy()]
    )
    trainer.train()
    assert trainer.state.global_step == STEPS
    monitor = callback.monitor
    assert monitor is not None
    assert monitor.verdict().kind.value
    history = monitor.history
    assert len(history) == STEPS
    assert all(math.isfinite(value) and value > 0 for value in history.columns["loss"])
    assert monitor.errors == []
    # The Trainer's logs carry the monitor's signals (from the latest flushed rows) and, at the end, its verdict.
    assert any("ravine/grad_norm" in entry for entry in logged)
    assert "ravine/verdict" in callback.latest
