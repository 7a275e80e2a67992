"""A Hugging Face ``TrainerCallback`` around :class:`ravine.diagnose.Monitor` (needs ``transformers``).

``on_pre_optimizer_step`` runs after the Trainer's gradient clipping, so the recorded gradient norm is the
clipped one (the Trainer logs the unclipped ``grad_norm`` itself). The loss is taken from the model's outputs
(``outputs.loss``) by a forward hook and averaged over the accumulated micro-batches.
"""

from __future__ import annotations

import importlib
from typing import Any

from ravine.diagnose import Monitor, MonitorConfig

__all__ = ["RavineTrainerCallback"]


def _base() -> Any:
    """transformers' ``TrainerCallback``, imported by name so that the type checker sees the same thing whether
    or not transformers is installed."""
    return importlib.import_module("transformers").TrainerCallback


class RavineTrainerCallback(_base()):  # type: ignore[misc]
    """``Trainer(..., callbacks=[RavineTrainerCallback()])``; then ``callback.monitor.verdict()``."""

    def __init__(self, config: MonitorConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.monitor: Monitor | None = None
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

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        if model is None:
            return
        if self.monitor is None:
            self.monitor = Monitor(model, optimizer, config=self.config, placement="before")
        loss = sum(self._losses) / len(self._losses) if self._losses else None
        self._losses.clear()
        self.monitor.step(loss)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
