"""A Lightning callback around :class:`ravine.diagnose.Monitor` (needs ``lightning`` installed).

Gradients are read in ``on_before_optimizer_step`` — after accumulation and AMP unscaling, before Lightning's
gradient clipping — and the step's loss is filled in from ``on_train_batch_end``'s outputs.
"""

from __future__ import annotations

import importlib
from typing import Any

from ravine.diagnose import Monitor, MonitorConfig

__all__ = ["RavineMonitorCallback"]


def _base() -> Any:
    """Lightning's ``Callback`` (from ``lightning`` or the older ``pytorch_lightning`` package).

    Imported by name so that the type checker sees the same thing whether or not Lightning is installed.
    """
    try:
        module = importlib.import_module("lightning.pytorch.callbacks")
    except ImportError:
        module = importlib.import_module("pytorch_lightning.callbacks")
    return module.Callback


class RavineMonitorCallback(_base()):  # type: ignore[misc]
    """``trainer = Trainer(callbacks=[RavineMonitorCallback()])``; then ``callback.monitor.verdict()``."""

    def __init__(self, config: MonitorConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.monitor: Monitor | None = None

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self.monitor is None:
            self.monitor = Monitor(pl_module, optimizer, config=self.config, placement="before")
        self.monitor.step(None)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if self.monitor is not None and loss is not None:
            self.monitor.add_loss(loss)
