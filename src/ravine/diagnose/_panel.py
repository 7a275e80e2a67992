"""A rich live panel for a monitored run in a terminal: the step, the latest signals and the verdict so far.

Used by ``ravine diagnose script`` as :func:`~ravine.diagnose.script.diagnose_script`'s ``on_step``; it reads
the monitor (never changes it) and redraws at most a few times a second.
"""

from __future__ import annotations

import math
import time
from typing import Any

__all__ = ["LivePanel"]


class LivePanel:
    """``with LivePanel(console, title) as panel: diagnose_script(..., on_step=panel)``.

    Args:
        console: A ``rich.console.Console``.
        title: The panel's title (e.g. the script's name).
        refresh: Seconds between redraws.
    """

    def __init__(self, console: Any, title: str, *, refresh: float = 0.25) -> None:
        from rich.live import Live

        self.console, self.title, self.refresh = console, title, refresh
        self._live = Live(console=console, refresh_per_second=max(1, int(1 / refresh)), transient=False)
        self._last = -math.inf
        self._started = time.perf_counter()

    def __enter__(self) -> LivePanel:
        self._live.__enter__()
        return self

    def __exit__(self, *args: object) -> None:
        self._live.__exit__(None, None, None)

    def __call__(self, monitor: Any, step: int, total: int) -> None:
        now = time.perf_counter()
        if now - self._last < self.refresh and step < total:
            return
        self._last = now
        self._live.update(self.render(monitor, step, total, now - self._started))

    def render(self, monitor: Any, step: int, total: int, seconds: float) -> Any:
        """The panel for the current state of ``monitor``."""
        from rich.panel import Panel
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        rate = step / seconds if seconds > 0 else 0.0
        table.add_row("step", f"{step} / {total}  ({rate:.0f} steps/s)")
        history = monitor.history
        if len(history):
            for name, label in (("loss", "loss"), ("grad_norm", "‖g‖"), ("lr", "lr")):
                value = history.columns[name][-1]
                table.add_row(label, f"{value:.4g}" if math.isfinite(value) else "—")
        verdict = monitor.last_verdict
        if verdict is not None:
            style = "green" if verdict.healthy else "bold red"
            table.add_row("verdict", f"[{style}]{verdict.kind.value}[/]: {verdict.summary}")
        else:
            table.add_row("verdict", f"— (first verdict at step {monitor.config.judge_every})")
        return Panel(table, title=self.title, expand=False)
