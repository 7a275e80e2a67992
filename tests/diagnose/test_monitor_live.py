"""The Monitor while training runs: on_verdict on regime changes, loggers, TensorBoard event files read back."""

from __future__ import annotations

import importlib
import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from ravine.diagnose import Monitor, MonitorConfig, Verdict, VerdictKind
from ravine.diagnose._live import FunctionLogger
from ravine.errors import ConfigError


def _run(
    monitor: Monitor, model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, *, blow_up: int = -1
) -> None:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, generator=generator), torch.randn(32, 1, generator=generator)
    for step in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        if step >= blow_up >= 0:
            loss = loss * math.inf
        loss.backward()
        monitor.step(loss)
        optimizer.step()


def test_on_verdict_fires_when_the_regime_changes_and_str_is_one_line() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    seen: list[Verdict] = []
    monitor = Monitor(model, optimizer, on_verdict=seen.append, config=MonitorConfig(judge_every=10))
    _run(monitor, model, optimizer, 150, blow_up=120)
    kinds = [v.kind for v in seen]
    assert kinds[0] is VerdictKind.HEALTHY and kinds[-1] is VerdictKind.DIVERGING
    assert all(a is not b for a, b in itertools.pairwise(kinds))  # only on changes
    text = str(monitor.verdict())
    assert text.startswith("diverging: ") and "\n" not in text and len(text) < 300
    assert "try: " in text


def test_function_logger_gets_every_row_and_verdict() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    logged: list[tuple[int, dict[str, float]]] = []
    logger = FunctionLogger(lambda metrics, step: logged.append((step, metrics)))
    monitor = Monitor(model, optimizer, loggers=[logger], config=MonitorConfig(judge_every=20, log_every=2))
    _run(monitor, model, optimizer, 60)
    monitor.verdict()
    monitor.close()
    rows = [(step, m) for step, m in logged if "ravine/loss" in m]
    assert [step for step, _ in rows] == list(range(0, 60, 2))
    losses = monitor.history.columns["loss"]
    assert all(m["ravine/loss"] == losses[step] for step, m in rows)
    verdicts = [step for step, m in logged if "ravine/verdict" in m]
    assert verdicts == [20, 40, 59]


def test_bad_callbacks_and_loggers_are_refused() -> None:
    model = nn.Linear(3, 1)
    with pytest.raises(ConfigError, match="on_verdict"):
        Monitor(model, on_verdict="print")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="log_signals"):
        Monitor(model, loggers=[object()])
    with pytest.raises(ConfigError, match="list of loggers"):
        Monitor(model, loggers="tb")


def test_a_failing_logger_never_stops_training() -> None:
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def broken(metrics: dict[str, float], step: int) -> None:
        raise OSError("disk full")

    monitor = Monitor(
        model, optimizer, loggers=[FunctionLogger(broken)], config=MonitorConfig(judge_every=10)
    )
    with pytest.warns(Warning, match="disk full"):
        _run(monitor, model, optimizer, 20)
    assert any("disk full" in e for e in monitor.errors)


def test_tensorboard_event_files_read_back(tmp_path: Path) -> None:
    try:
        accumulator: Any = importlib.import_module("tensorboard.backend.event_processing.event_accumulator")
        from ravine.diagnose.integrations.tensorboard import TensorBoardLogger
    except ImportError:
        pytest.skip("tensorboard is not installed")
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(
        model, optimizer, loggers=[TensorBoardLogger(tmp_path)], config=MonitorConfig(judge_every=25)
    )
    _run(monitor, model, optimizer, 100, blow_up=80)
    monitor.verdict()
    monitor.close()
    events = accumulator.EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"ravine/loss", "ravine/grad_norm", "ravine/verdict"} <= set(scalars)
    loss = events.Scalars("ravine/loss")
    history = monitor.history
    finite = [i for i, v in enumerate(history.columns["loss"]) if math.isfinite(v)]
    assert [e.step for e in loss] == [history.steps[i] for i in finite]
    assert [e.value for e in loss] == pytest.approx([history.columns["loss"][i] for i in finite], rel=1e-6)
    kinds = list(VerdictKind)
    verdict = events.Scalars("ravine/verdict")
    assert kinds[int(verdict[0].value)] is VerdictKind.HEALTHY
    assert kinds[int(verdict[-1].value)] is VerdictKind.DIVERGING
    texts = events.Tensors("ravine/verdict/text_summary")
    assert any(b"diverging" in t.tensor_proto.string_val[0] for t in texts)
