"""Live curves of the Monitor's signals and verdicts in TensorBoard (needs ``tensorboard`` installed).

::

    from ravine.diagnose.integrations.tensorboard import TensorBoardLogger

    monitor = Monitor(model, optimizer, loggers=[TensorBoardLogger("runs/ravine")])

Every recorded row adds the finite signals as scalars ``ravine/loss``, ``ravine/grad_norm``, ... at the
monitor's step; every judgement adds ``ravine/verdict`` (the kind's index in :class:`VerdictKind`, so a
regime change is a step in the curve) and, when the kind changes, a text entry ``ravine/verdict`` with the
verdict's sentence, evidence and remedies. Under ``torch.distributed`` only rank 0 writes (the monitor calls
its loggers on rank 0 only).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ravine.diagnose._live import verdict_metrics
from ravine.diagnose._records import Verdict, VerdictKind
from ravine.errors import ConfigError

__all__ = ["TensorBoardLogger"]


def _writer_class() -> Any:
    try:
        module = importlib.import_module("torch.utils.tensorboard")
    except ImportError as error:  # torch's module imports tensorboard itself
        raise ConfigError(
            "TensorBoardLogger needs tensorboard: pip install tensorboard (or ravine[integrations])"
        ) from error
    return module.SummaryWriter


class TensorBoardLogger:
    """A Monitor logger writing TensorBoard event files (see the module docstring).

    Args:
        log_dir: Folder for the event files, or an existing ``SummaryWriter`` (not closed by this logger).
        prefix: Tag prefix.
        flush_secs: How often the writer flushes to disk.
    """

    def __init__(
        self, log_dir: str | Path | Any = "runs/ravine", *, prefix: str = "ravine", flush_secs: int = 10
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigError(f"TensorBoardLogger: prefix must be a non-empty string, got {prefix!r}")
        writer_class = _writer_class()
        self._writer: Any = None
        if isinstance(log_dir, writer_class):
            self._writer, self._owned = log_dir, False
        elif isinstance(log_dir, (str, Path)):
            self._owned = True
        else:
            raise ConfigError(
                f"TensorBoardLogger: log_dir must be a folder or a SummaryWriter, got {type(log_dir).__name__}"
            )
        self.log_dir, self.flush_secs, self._writer_class = log_dir, flush_secs, writer_class
        self.prefix = prefix
        self._kind: VerdictKind | None = None

    @property
    def writer(self) -> Any:
        """The ``SummaryWriter`` (opened on first use, so that a rank that never logs creates no files)."""
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.log_dir), flush_secs=self.flush_secs)
        return self._writer

    def log_signals(self, step: int, values: dict[str, float]) -> None:
        """One row: each finite signal as a scalar at ``step``."""
        for name, value in values.items():
            self.writer.add_scalar(f"{self.prefix}/{name}", value, step)

    def log_verdict(self, step: int, verdict: Verdict) -> None:
        """One judgement: the kind's index (and onset) as scalars; the full text when the kind changed."""
        for tag, value in verdict_metrics(verdict, self.prefix).items():
            self.writer.add_scalar(tag, value, step)
        if verdict.kind is not self._kind:
            self._kind = verdict.kind
            lines = [
                str(verdict),
                *(
                    f"- {e.name} = {e.value:.4g} (steps {e.first_step}–{e.last_step})"
                    for e in verdict.evidence
                ),
            ]
            lines += [f"- try: {r.title}: {r.detail}" for r in verdict.remedies]
            self.writer.add_text(f"{self.prefix}/verdict", "\n".join(lines), step)

    def flush(self) -> None:
        """Write what is buffered to disk."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush, and close the writer if this logger opened it."""
        if self._writer is None:
            return
        self._writer.flush()
        if self._owned:
            self._writer.close()
            self._writer = None
