"""A Hugging Face ``TrainerCallback`` around :class:`ravine.diagnose.Monitor` (needs ``transformers``).

``on_pre_optimizer_step`` runs after the Trainer's gradient clipping, so the recorded gradient norm is the
clipped one (the Trainer logs the unclipped ``grad_norm`` itself). The loss is taken from the model's outputs
(``outputs.loss``) by a forward hook and averaged over the accumulated micro-batches.

Logging: every Trainer log (``logging_steps``) flushes the monitor and gets its latest signals and verdict as
``ravine/<signal>`` and ``ravine/verdict`` entries (the printed logs, and the callbacks listed after this one
see them; the Trainer's built-in reporters run before user callbacks, so they do not). With ``"tensorboard"`` in
``report_to`` the monitor writes its own curves under ``<logging_dir>/ravine`` (rank 0 only).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ravine.diagnose import Monitor, MonitorConfig, Verdict
from ravine.diagnose._live import FunctionLogger, VerdictCallback, verdict_metrics

__all__ = ["RavineTrainerCallback"]


def _base() -> Any:
    """transformers' ``TrainerCallback``, imported by name so that the type checker sees the same thing whether
    or not transformers is installed."""
    return importlib.import_module("transformers").TrainerCallback


class RavineTrainerCallback(_base()):  # type: ignore[misc]
    """``Trainer(..., callbacks=[RavineTrainerCallback()])``; then ``callback.monitor.verdict()``.

    Args:
        config: The monitor's cadences and thresholds.
        on_verdict: Called with the new verdict whenever the regime changes.
        loggers: The monitor's loggers; None: a TensorBoardLogger under ``logging_dir`` when the Trainer
            reports to TensorBoard.
    """

    def __init__(
        self,
        config: MonitorConfig | None = None,
        *,
        on_verdict: VerdictCallback | None = None,
        loggers: list[Any] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.on_verdict = on_verdict
        self.loggers = loggers
        self.monitor: Monitor | None = None
        self.latest: dict[str, float] = {}
        self._losses: list[Any] = []
        self._handle: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is not None and self._handle is None:
            self._handle = model.register_forward_hook(self._capture)

    def _capture(self, module: Any, inputs: Any, output: Any) -> None:
        loss = getattr(output, "loss", None)
        if loss is None and isinstance(output, dict):
            loss = output.get("loss")
        if loss is not None and module.training:
            self._losses.append(loss.detach())

    def _remember(self, metrics: dict[str, float], step: int) -> None:
        self.latest.update(metrics)

    def _loggers(self, args: Any) -> list[Any]:
        loggers: list[Any] = [FunctionLogger(self._remember)]
        if self.loggers is not None:
            return loggers + list(self.loggers)
        report_to = getattr(args, "report_to", None) or []
        if "tensorboard" in report_to and getattr(args, "logging_dir", None):
            from ravine.diagnose.integrations.tensorboard import TensorBoardLogger

            loggers.append(TensorBoardLogger(os.path.join(args.logging_dir, "ravine")))
        return loggers

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        if model is None:
            return
        if self.monitor is None:
            self.monitor = Monitor(
                model,
                optimizer,
                config=self.config,
                placement="before",
                on_verdict=self.on_verdict,
                loggers=self._loggers(args),
            )
        loss = sum(self._losses) / len(self._losses) if self._losses else None
        self._losses.clear()
        self.monitor.step(loss)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self.monitor is not None:
            self.monitor.flush()
        if isinstance(logs, dict) and self.latest:
            logs.update(self.latest)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.monitor is not None:
            verdict: Verdict = self.monitor.verdict()
            self.latest.update(verdict_metrics(verdict))
            self.monitor.close()
