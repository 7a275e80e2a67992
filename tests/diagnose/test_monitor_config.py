"""Every MonitorConfig and Thresholds field is checked at construction; the history stays bounded."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from ravine.diagnose import History, Monitor, MonitorConfig, Thresholds
from ravine.diagnose._cadence import ProbeCadence
from ravine.errors import ConfigError


def _bad_values(kind: str) -> list[object]:
    never = [math.nan, "5", [1]]
    if kind == "bool":
        return [1, "yes", None]
    if kind.startswith("int"):
        return [*never, 2.5, math.inf, True, -7]
    return [*never, math.inf, -math.inf, True, None]


CASES = [
    (cls, item.name, value)
    for cls in (MonitorConfig, Thresholds)
    for item in dataclasses.fields(cls)
    if item.name != "thresholds"
    for value in _bad_values(str(item.type))
]


@pytest.mark.parametrize(
    ("cls", "name", "value"), CASES, ids=[f"{c.__name__}.{n}={v!r}" for c, n, v in CASES]
)
def test_every_field_refuses_values_of_the_wrong_kind(cls: type, name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        cls(**{name: value})
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (MonitorConfig, {"judge_every": 0}),
        (MonitorConfig, {"probe_every": -1}),
        (MonitorConfig, {"update_every": 0}),
        (MonitorConfig, {"flush_every": 0}),
        (MonitorConfig, {"probe_batch": 0}),
        (MonitorConfig, {"saddle_tol": -1e-3}),
        (MonitorConfig, {"history_window": 10}),
        (MonitorConfig, {"thresholds": {"window": 50}}),
        (Thresholds, {"window": 0}),
        (Thresholds, {"window": 5}),
        (Thresholds, {"plateau_tol": -0.01}),
        (Thresholds, {"plateau_z": -2.0}),
        (Thresholds, {"small_grad_abs": -1.0}),
        (Thresholds, {"cos_anti": -1.5}),
        (Thresholds, {"cos_aligned": 2.0}),
        (Thresholds, {"small_grad_ratio": 1.5}),
        (Thresholds, {"spike_factor": 0.5}),
        (Thresholds, {"blowup_factor": 1.0}),
        (Thresholds, {"burst_memory": 0}),
        (Thresholds, {"converged_fraction": 2.0}),
    ],
)
def test_values_out_of_range_are_refused(cls: type, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        cls(**kwargs)


def test_defaults_and_sensible_values_are_accepted() -> None:
    MonitorConfig()
    MonitorConfig(update_every=None, probe_every=0, thresholds=Thresholds(window=10, cos_anti=-1.0))
    Thresholds(plateau_tol=0.0, spike_factor=1.5)


def test_history_memory_is_flat_after_the_window_fills() -> None:
    history = History([f"p{i}" for i in range(100)], recent=512, layer_window=64)
    sizes = {}
    for step in range(40_000):
        history.append(
            step, {"loss": 1.0 / (step + 1), "grad_norm": float(step % 7)}, [1.0] * 100, [2.0] * 100
        )
        if step + 1 in (2_000, 40_000):
            sizes[step + 1] = history.nbytes()
    assert len(history) == 40_000
    assert sizes[40_000] < 1.25 * sizes[2_000]  # O(window + log steps)
    loss = history.columns["loss"]
    assert loss[-1] == 1.0 / 40_000 and loss[10] == 1.0 / 11  # the newest and the first rows are exact
    assert history.steps[20_000] == 20_000  # consecutive steps stay exact inside blocks
    blocks = history.blocks("grad_norm")
    assert blocks[0][0] == 0 and blocks[-1][1] == 39_999
    assert all(lo <= mid <= hi for _, _, lo, mid, hi in blocks)
    assert max(hi for *_, hi in blocks) == 6.0 and min(lo for _, _, lo, *_ in blocks) == 0.0
    assert len(history.layer_grad_norms) == 64


def test_a_long_monitored_run_keeps_bounded_records() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    config = MonitorConfig(
        judge_every=100,
        probe_every=50,
        probe_budget=0.0,
        probe_max_every=50,
        history_window=256,
        max_records=5,
        thresholds=Thresholds(burst_memory=50),
    )
    monitor = Monitor(model, optimizer, loss_fn=nn.functional.mse_loss, config=config)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    for _ in range(1_500):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.step(loss, batch=(x, y))
        optimizer.step()
    verdict = monitor.verdict()
    assert verdict.step == 1_499 and not monitor.errors
    assert len(monitor.history) == 1_500
    assert 700 < monitor.history.columns["loss"].exact_from < 1_000  # older rows are downsampled
    assert len(monitor.probes) == 16 + 5 and monitor.probes.dropped == 8
    assert monitor.probes[0].step == 50 and monitor.probes[-1].step == 1_450


def test_probe_cadence_backs_off_while_steady_and_keeps_to_its_time_budget() -> None:
    cadence = ProbeCadence(25, max_every=100, budget=0.05, healthy_max_every=800)
    cadence.step_seconds = 0.1
    steps = []
    for steady in (True, True, True, False, True):
        step = cadence.next
        assert cadence.due(step) and not cadence.due(step - 1)
        cadence.done(step, seconds=0.01, steady=steady)  # cheap probes: the budget does not bind
        steps.append(cadence.interval)
    assert steps == [50, 100, 100, 25, 50]
    cadence.done(cadence.next, seconds=0.3, steady=True)  # 0.3 s / (5% of 0.1 s per step) = 60 steps
    assert cadence.interval == 100  # doubled from 50: more than the budget asks
    cadence.done(cadence.next, seconds=0.3, steady=False)  # a change: fast again, whatever the budget
    assert cadence.interval == 25
    cadence.done(cadence.next, seconds=0.3, steady=True)  # steady: the budget's 60 steps, rounded up
    assert cadence.interval == 75
    cadence.done(cadence.next, seconds=10.0, steady=True)  # never beyond max_every outside health
    assert cadence.interval == 100
    healthy = []
    for _ in range(6):  # healthy and steady: geometric back-off up to healthy_max_every
        cadence.done(cadence.next, seconds=0.01, steady=True, healthy=True)
        healthy.append(cadence.interval)
    assert healthy == [200, 400, 800, 800, 800, 800]
    cadence.done(cadence.next, seconds=40.0, steady=True, healthy=True)  # the budget cannot pass the cap
    assert cadence.interval == 800
    cadence.done(cadence.next, seconds=0.01, steady=False, healthy=True)  # asked for / changed: fast
    assert cadence.interval == 25


def test_recent_batches_are_bounded_by_count_and_bytes() -> None:
    torch.manual_seed(0)
    model = nn.Linear(1000, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    megabyte = 250 * 1000 * 4  # a (250, 1000) float32 batch of inputs (the targets add 1 kB)
    configs = {
        "default": MonitorConfig(probe_every=0),
        "tight": MonitorConfig(recent_batch_bytes=2 * megabyte + 2_500),
    }
    monitors = {name: Monitor(model, optimizer, config=config) for name, config in configs.items()}
    monitors["newest only"] = Monitor(model, optimizer, config=MonitorConfig(recent_batch_bytes=0))
    seen = []
    for _ in range(12):
        x, y = torch.randn(250, 1000), torch.randn(250, 1)
        seen.append(x)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        for monitor in monitors.values():
            monitor.step(loss, batch=(x, y))
        optimizer.step()
    kept = {name: [batch[0] for batch in monitor.recent_batches] for name, monitor in monitors.items()}
    assert kept["default"] == seen[-8:]  # 8 batches of 1 MB: within the default 64 MiB
    assert kept["tight"] == seen[-3:]  # the newest + 2 MB of older ones
    assert kept["newest only"] == seen[-1:]
    assert monitors["tight"].recent_batches.nbytes == 3 * (megabyte + 1_000)
    assert monitors["tight"].recent_batches[-1][0] is seen[-1]
