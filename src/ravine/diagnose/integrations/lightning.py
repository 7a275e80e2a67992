"""A Lightning callback around :class:`ravine.diagnose.Monitor` (needs ``lightning`` installed).

Gradients are read in ``on_before_optimizer_step`` — after accumulation and AMP unscaling, before Lightning's
gradient clipping — and the step's loss is filled in from ``on_train_batch_end``'s outputs.
"""

from __future__ import annotations

from typing import Any

from ravine.diagnose import Monitor, MonitorConfig

__all__ = ["RavineMonitorCallback"]


def _base() -> type:
    try:
        from lightning.pytorch.callbacks import Callback
    except ImportError:
        from pytorch_lightning.callbacks import Callback
    return Callback  # type: ignore[no-any-return]


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
