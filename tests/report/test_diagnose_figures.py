"""The Monitor's figures show a long run's whole history: older steps as a min–max band, recent ones exactly."""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from ravine.diagnose import Monitor, MonitorConfig
from ravine.report.diagnose import monitor_figure, regimes_figure

STEPS = 20_000
SPIKE = 5_000


def _long_run() -> Monitor:
    """A monitor whose history holds 20,000 rows (appended directly: what a long run leaves behind), with a
    one-step spike at step 5,000 that only the block maxima still show."""
    model = nn.Linear(2, 1)
    monitor = Monitor(
        model, torch.optim.SGD(model.parameters(), lr=0.1), config=MonitorConfig(history_window=256)
    )
    for step in range(STEPS):
        loss = (1 + 0.5 * math.sin(step / 7)) / math.sqrt(step + 1)
        if step == SPIKE:
            loss = 50.0
        monitor.history.append(step, {"loss": loss, "grad_norm": 0.1 + 0.05 * math.cos(step / 5)})
    return monitor


def _ink(figure: Figure) -> float:
    """Share of the rendered pixels that are not white."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # type: ignore[no-untyped-call]
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]  # type: ignore[no-untyped-call]
    return float((pixels < 250).any(axis=-1).mean())


def test_a_long_runs_figure_draws_the_older_steps_as_a_band_and_covers_the_whole_run() -> None:
    monitor = _long_run()
    assert monitor.history.columns["loss"].exact_from > 15_000  # the older rows are downsampled
    assert max(monitor.history.columns["loss"]) < 50.0  # the medians alone hide the spike
    figure = monitor_figure(monitor, title="long run")
    loss_ax, grad_ax = figure.axes[0], figure.axes[1]
    for ax in (loss_ax, grad_ax):
        assert ax.collections  # the min–max band
        low, high = ax.get_xlim()
        assert low <= 0 and high >= STEPS - 1
    bottom, top = loss_ax.get_ylim()
    assert top >= 50.0 and bottom <= 0.5 / math.sqrt(STEPS)  # the spike and the run's lowest loss
    assert "min–max" in loss_ax.get_legend_handles_labels()[1][0]
    assert _ink(figure) > 0.02
    regimes = regimes_figure(monitor)
    assert regimes.axes[0].collections and regimes.axes[0].get_ylim()[1] >= 50.0
    assert _ink(regimes) > 0.02


def test_a_short_runs_figure_is_its_exact_rows() -> None:
    model = nn.Linear(2, 1)
    monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    for step in range(300):
        monitor.history.append(step, {"loss": 1.0 / (step + 1), "grad_norm": 1.0})
    figure = monitor_figure(monitor)
    (line,) = figure.axes[0].lines
    assert not figure.axes[0].collections
    assert np.asarray(line.get_xdata()).tolist() == list(range(300))
    assert np.asarray(line.get_ydata()).tolist() == [1.0 / (step + 1) for step in range(300)]
