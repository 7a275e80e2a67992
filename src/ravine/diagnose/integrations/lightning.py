"""A Lightning callback around :class:`ravine.diagnose.Monitor` (needs ``lightning`` installed).

Gradients are read in ``on_before_optimizer_step`` — after accumulation and AMP unscaling, before Lightning's
gradient clipping — and the step's loss is filled in from ``on_train_batch_end``'s outputs. The monitor's
signals and verdicts go to the trainer's own loggers (``trainer.loggers``: TensorBoard, CSV, W&B, ...) as
``ravine/<signal>`` and ``ravine/verdict`` metrics, from rank 0 only.
"""

from __future__ import annotations

import importlib
from typing import Any

from ravine.diagnose import Monitor, MonitorConfig
from ravine.diagnose._live import FunctionLogger, VerdictCallback

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
    """``trainer = Trainer(callbacks=[RavineMonitorCallback()])``; then ``callback.monitor.verdict()``.

    Args:
        config: The monitor's cadences and thresholds.
        on_verdict: Called with the new verdict whenever the regime changes.
        log: Send the signals and verdicts to ``trainer.loggers``.
    """

    def __init__(
        self,
        config: MonitorConfig | None = None,
        *,
        on_verdict: VerdictCallback | None = None,
        log: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.on_verdict = on_verdict
        self.log = log
        self.monitor: Monitor | None = None

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self.monitor is None:
            loggers = []
            if self.log and getattr(trainer, "loggers", None):

                def log_metrics(metrics: dict[str, float], step: int) -> None:
                    for logger in trainer.loggers:
                        logger.log_metrics(metrics, step=step)

                loggers.append(FunctionLogger(log_metrics))
            self.monitor = Monitor(
                pl_module,
                optimizer,
                config=self.config,
                placement="before",
                on_verdict=self.on_verdict,
                loggers=loggers,
            )
        self.monitor.step(None)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if self.monitor is not None and loss is not None:
            self.monitor.add_loss(loss)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is not None:
            self.monitor.verdict()
            self.monitor.close()
