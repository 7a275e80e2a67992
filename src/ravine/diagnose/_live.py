"""The monitor while training runs: an ``on_verdict`` callback when the regime changes, and loggers that
receive every recorded row's signals and every verdict (TensorBoard, Lightning's or Hugging Face's loggers,
anything with the two methods below).

A logger is any object with

- ``log_signals(step: int, values: dict[str, float])`` — one call per recorded row (every
  ``MonitorConfig.log_every`` steps), the finite signals of :data:`~ravine.diagnose.COLUMNS` by name;
- ``log_verdict(step: int, verdict: Verdict)`` — one call per judgement;
- optionally ``close()``, called by ``Monitor.close()``.

Under ``torch.distributed`` only rank 0 calls the loggers (every rank records the same signals); the
``on_verdict`` callback runs on every rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch

from ravine.diagnose._records import Verdict
from ravine.errors import ConfigError

__all__ = ["FunctionLogger", "Live", "MonitorLogger", "VerdictCallback", "is_rank_zero"]

VerdictCallback = Callable[[Verdict], object]


class MonitorLogger(Protocol):
    """What the monitor calls on a logger (see the module docstring)."""

    def log_signals(self, step: int, values: dict[str, float]) -> None: ...

    def log_verdict(self, step: int, verdict: Verdict) -> None: ...


def is_rank_zero() -> bool:
    """True unless ``torch.distributed`` is initialised and this process is not rank 0."""
    distributed = torch.distributed
    return not (distributed.is_available() and distributed.is_initialized()) or distributed.get_rank() == 0


def verdict_metrics(verdict: Verdict, prefix: str = "ravine") -> dict[str, float]:
    """A verdict as numbers for a metrics logger: its kind's index in :class:`VerdictKind` and its onset."""
    from ravine.diagnose._records import VerdictKind

    return {
        f"{prefix}/verdict": float(list(VerdictKind).index(verdict.kind)),
        f"{prefix}/verdict_onset": float(verdict.onset),
    }


class FunctionLogger:
    """A logger from one function ``log(metrics, step)`` (Lightning's ``logger.log_metrics``, W&B's ``log``,
    ...): the signals as ``{prefix}/{name}``, the verdict as its kind's index and onset.

    Args:
        log: Called as ``log(metrics: dict[str, float], step: int)``.
        prefix: Prefix of the metric names.

    Example:
        >>> seen = []
        >>> logger = FunctionLogger(lambda metrics, step: seen.append((step, metrics)))
        >>> logger.log_signals(3, {"loss": 0.5})
        >>> seen
        [(3, {'ravine/loss': 0.5})]
    """

    def __init__(self, log: Callable[[dict[str, float], int], object], *, prefix: str = "ravine") -> None:
        if not callable(log):
            raise ConfigError(f"FunctionLogger: log must be callable as log(metrics, step), got {log!r}")
        self.log, self.prefix = log, prefix

    def log_signals(self, step: int, values: dict[str, float]) -> None:
        self.log({f"{self.prefix}/{name}": value for name, value in values.items()}, step)

    def log_verdict(self, step: int, verdict: Verdict) -> None:
        self.log(verdict_metrics(verdict, self.prefix), step)


class Live:
    """Calls the monitor's ``on_verdict`` callback and loggers (see the module docstring).

    Args:
        monitor: The :class:`~ravine.diagnose.Monitor` (its history, config and error collection).
        on_verdict: Called with the new verdict whenever the regime's kind changes.
        loggers: Objects with ``log_signals`` and ``log_verdict``.
    """

    def __init__(self, monitor: Any, on_verdict: VerdictCallback | None, loggers: Sequence[Any]) -> None:
        if on_verdict is not None and not callable(on_verdict):
            raise ConfigError(
                f"Monitor: on_verdict must be callable as on_verdict(verdict), got {on_verdict!r}"
            )
        if isinstance(loggers, (str, bytes)) or not isinstance(loggers, Sequence):
            raise ConfigError(f"Monitor: loggers must be a list of loggers, got {type(loggers).__name__}")
        for logger in loggers:
            missing = [m for m in ("log_signals", "log_verdict") if not callable(getattr(logger, m, None))]
            if missing:
                raise ConfigError(
                    f"Monitor: logger {type(logger).__name__} lacks {missing}; use ravine.diagnose.tensorboard."
                    "TensorBoardLogger, FunctionLogger(log_fn), or give it log_signals(step, values) and "
                    "log_verdict(step, verdict)"
                )
        self.monitor = monitor
        self.on_verdict = on_verdict
        self.loggers = list(loggers)
        self.writer = is_rank_zero()
        self._logged = -1

    def _call(self, where: str, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception as error:
            if self.monitor.strict:
                raise
            self.monitor._fail(where, error)

    def rows_added(self, start: int) -> None:
        """Send the rows from ``start`` on (those not sent before) to the loggers."""
        if not self.loggers or not self.writer:
            return
        hist = self.monitor.history
        every = self.monitor.config.log_every
        columns: Mapping[str, Any] = hist.columns
        for row in range(max(start, 0), len(hist)):
            step = int(hist.steps[row])
            if step <= self._logged or step % every:
                continue
            self._logged = step
            values = {name: float(col[row]) for name, col in columns.items() if math.isfinite(col[row])}
            for logger in self.loggers:
                self._call("logger", logger.log_signals, step, values)

    def judged(self, previous: Verdict | None, verdict: Verdict | None) -> None:
        """After a judgement: the loggers get the verdict; ``on_verdict`` too when the kind changed."""
        if verdict is None:
            return
        if self.writer:
            for logger in self.loggers:
                self._call("logger", logger.log_verdict, verdict.step, verdict)
        if self.on_verdict is not None and (previous is None or previous.kind is not verdict.kind):
            self._call("on_verdict", self.on_verdict, verdict)

    def close(self) -> None:
        """Close the loggers that can be closed."""
        if not self.writer:
            return
        for logger in self.loggers:
            close = getattr(logger, "close", None)
            if callable(close):
                self._call("logger close", close)
