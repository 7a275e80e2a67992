"""The Monitor: no effect on the trajectory, robust to bad inputs, signals that match hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ravine.diagnose import Monitor, MonitorConfig, MonitorWarning, VerdictKind
from ravine.errors import ConfigError


def _setup(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.2), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    x, y = torch.randn(64, 6), torch.randint(0, 2, (64,))
    return model, x, y


def _train(with_monitor: bool, steps: int = 60) -> tuple[list[torch.Tensor], torch.Tensor]:
    model, x, y = _setup()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.functional.cross_entropy
    config = MonitorConfig(judge_every=10, probe_every=5, thresholds=MonitorConfig().thresholds)
    monitor = Monitor(model, optimizer, loss_fn=loss_fn, config=config) if with_monitor else None
    torch.manual_seed(123)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        if monitor is not None:
            monitor.step(loss, batch=(x, y))
        optimizer.step()
    if monitor is not None:
        monitor.verdict()
        assert monitor.errors == []
        assert len(monitor.probes) > 0
    state = [t.detach().clone() for t in model.state_dict().values()]
    return state, torch.rand(3)


def test_trajectory_and_global_rng_are_bit_identical() -> None:
    bare, rng_bare = _train(False)
    watched, rng_watched = _train(True)
    for a, b in zip(bare, watched, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(rng_bare, rng_watched)


def test_signals_match_hand_computation() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, optimizer, config=MonitorConfig(weight_norm_every=1, distance_every=1))
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    start = [p.detach().clone() for p in model.parameters()]
    previous = start
    updates = []
    grads = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]))
        monitor.step(loss)
        optimizer.step()
    now = [p.detach().clone() for p in model.parameters()]
    del now, previous
    monitor.verdict()
    hist = monitor.history
    assert hist.steps == [0, 1, 2]
    assert hist.columns["grad_norm"][0] == pytest.approx(float(grads[0].norm()), rel=1e-6)
    # Update at row 1 was made with the gradient of row 0 (called before optimizer.step): SGD → ‖Δθ‖ = η‖g‖.
    assert hist.columns["update_norm"][1] == pytest.approx(0.1 * float(grads[0].norm()), rel=1e-5)
    assert hist.columns["eff_lr"][1] == pytest.approx(0.1, rel=1e-5)
    updates = [-0.1 * g for g in grads]
    cos = float(updates[0] @ updates[1] / (updates[0].norm() * updates[1].norm()))
    assert hist.columns["cos_prev"][2] == pytest.approx(cos, rel=1e-5)
    assert hist.columns["lr"][0] == 0.1
    assert math.isnan(hist.columns["update_norm"][0])


def test_nan_loss_gives_diverging_without_raising() -> None:
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, optimizer)
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    for step in range(30):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y) * (math.nan if step == 20 else 1.0)
        loss.backward()
        monitor.step(loss)
        optimizer.step()
    verdict = monitor.verdict()
    assert verdict.kind is VerdictKind.DIVERGING
    assert verdict.evidence[0].first_step == 20


def test_frozen_layers_are_listed_and_skipped() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model[0].weight.requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    monitor = Monitor(model, optimizer, loss_fn=nn.functional.mse_loss, config=MonitorConfig(probe_every=3))
    assert monitor.frozen == ["0.weight"]
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(10):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.step(loss, batch=(x, y))
        optimizer.step()
    monitor.verdict()
    assert monitor.errors == []
    assert monitor.history.layer_names == ["0.bias", "2.weight", "2.bias"]


def test_unknown_optimizer_and_after_step_placement() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    monitor = Monitor(model, optimizer)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    for _ in range(5):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        monitor.step(loss)  # after the step: detected
    monitor.verdict()
    assert monitor.placement == "after"
    assert all(math.isfinite(v) for v in monitor.history.columns["eff_lr"][1:])


def test_gradient_accumulation_merges_micro_batches() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, optimizer)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    for _ in range(4):
        optimizer.zero_grad()
        losses = []
        for half in (slice(0, 16), slice(16, 32)):
            loss = nn.functional.mse_loss(model(x[half]), y[half]) / 2
            loss.backward()
            losses.append(float(loss.detach()))
            monitor.step(loss)  # on every micro-batch
        total = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]).norm()
        optimizer.step()
    monitor.verdict()
    assert monitor.history.steps == [0, 1, 2, 3]
    assert monitor.history.columns["loss"][-1] == pytest.approx(sum(losses) / 2, rel=1e-6)
    assert monitor.history.columns["grad_norm"][-1] == pytest.approx(float(total), rel=1e-6)


def test_gradient_norm_is_recorded_before_clipping() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, optimizer)
    x, y = 100 * torch.randn(32, 3), torch.randn(32, 1)
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    monitor.step(loss)
    clipped_from = float(nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    optimizer.step()
    monitor.verdict()
    assert monitor.history.columns["grad_norm"][0] == pytest.approx(clipped_from, rel=1e-6)
    assert clipped_from > 1.0


def _train_three_steps(monitor: Monitor, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    for _ in range(3):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.step(loss, batch={"x": x})  # not a pair: the probe fails
        optimizer.step()


def test_bad_batch_is_refused_at_the_first_call() -> None:
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, optimizer, loss_fn=nn.functional.mse_loss, config=MonitorConfig(probe_every=1))
    with pytest.raises(ConfigError, match="pair"):
        _train_three_steps(monitor, model, optimizer)


def test_monitor_failures_are_collected_not_raised() -> None:
    calls = []

    def flaky_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) > 1:  # fine when checked on the first call, failing in the probes afterwards
            raise RuntimeError("flaky loss")
        return nn.functional.mse_loss(outputs, targets)

    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, optimizer, loss_fn=flaky_loss, config=MonitorConfig(probe_every=1))
    x, y = torch.randn(8, 3), torch.randn(8, 1)

    def train(monitor: Monitor) -> None:
        for _ in range(3):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            monitor.step(loss, batch=(x, y))
            optimizer.step()

    with pytest.warns(MonitorWarning, match="flaky loss"):
        train(monitor)
    assert monitor.errors and "flaky loss" in monitor.errors[0]
    monitor.verdict()
    assert len(monitor.history) == 3
    calls.clear()
    strict = Monitor(model, optimizer, loss_fn=flaky_loss, config=MonitorConfig(probe_every=1), strict=True)
    with pytest.raises(RuntimeError, match="flaky"):
        train(strict)


def test_no_gradients_is_reported() -> None:
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, optimizer)
    with pytest.warns(MonitorWarning, match="no parameter has a gradient"):
        monitor.step(torch.tensor(1.0))
    assert "no parameter has a gradient" in monitor.errors[0]


@pytest.mark.parametrize("update_every", [1, 10])
def test_sampled_update_distance_and_cosine_match_hand_computation(update_every: int) -> None:
    # The distance θ_t − θ_0 is formed in the tracker's spare buffer; the update pairs must be unaffected.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    config = MonitorConfig(
        update_every=update_every, weight_norm_every=3, distance_every=3, probe_every=0, judge_every=1000
    )
    monitor = Monitor(model, optimizer, config=config)
    x, y = torch.randn(32, 4), torch.randn(32, 2)
    seen = []
    for _ in range(26):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        seen.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
        monitor.step(loss)
        optimizer.step()
    monitor.verdict()
    columns = monitor.history.columns
    measured = [t for t in range(26) if math.isfinite(columns["update_norm"][t])]
    assert len(measured) >= 4
    for t in measured:
        assert columns["update_norm"][t] == pytest.approx(float((seen[t] - seen[t - 1]).norm()), rel=1e-5)
        if math.isfinite(columns["distance"][t]):
            assert columns["distance"][t] == pytest.approx(float((seen[t] - seen[0]).norm()), rel=1e-5)
        if math.isfinite(columns["cos_prev"][t]):
            a, b = seen[t] - seen[t - 1], seen[t - 1] - seen[t - 2]
            assert columns["cos_prev"][t] == pytest.approx(float(a @ b / (a.norm() * b.norm())), rel=1e-5)
    assert any(math.isfinite(columns["distance"][t]) for t in measured)
    assert any(math.isfinite(columns["cos_prev"][t]) for t in measured)
