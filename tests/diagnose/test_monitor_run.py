"""The Monitor never touches the run: no generator the training uses (global, a model's own, another
thread's) is consumed or rewound, closures that call backward are refused, every optimizer step is a row."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from ravine.diagnose import Monitor, MonitorConfig, MonitorWarning, Thresholds, VerdictKind
from ravine.diagnose._isolation import isolated
from ravine.errors import ConfigError, NonFiniteError, UnsupportedError
from ravine.optim import sgd


class NoisyNet(nn.Module):
    """Dropout (global generator), noise from the module's own generator, BatchNorm in train mode."""

    def __init__(self, *, dropout: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Tanh())
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(16, 2)
        self.noise = torch.Generator().manual_seed(99)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        h = h + 0.05 * torch.randn(h.shape, generator=self.noise)
        out: torch.Tensor = self.head(self.drop(h))
        return out


EVERY_STEP = MonitorConfig(judge_every=1, probe_every=1, update_every=1, probe_budget=0.0, probe_max_every=1)


@contextlib.contextmanager
def _drawing_thread(draws: list[float] | None) -> Iterator[None]:
    """Another thread drawing float64s from the global generator (seeded 7) for the whole block, into ``draws``."""
    if draws is None:
        yield
        return
    done = threading.Event()

    def draw() -> None:
        while not done.wait(0.001):  # for the whole run, however the threads are scheduled
            draws.extend(torch.rand(8, dtype=torch.float64).tolist())

    torch.manual_seed(7)
    worker = threading.Thread(target=draw)
    worker.start()
    try:
        yield
    finally:
        done.set()
        worker.join()


def _assert_the_seeded_sequence(draws: list[float], at_least: int) -> None:
    """The other thread's draws are exactly the seeded sequence: none consumed, none rewound and repeated."""
    torch.manual_seed(7)
    reference = torch.rand(len(draws), dtype=torch.float64).tolist()
    assert len(draws) > at_least and len(set(draws)) == len(draws)
    assert draws == reference


def _train(
    monitored: bool, *, steps: int = 30, dropout: float = 0.2, config: MonitorConfig = EVERY_STEP
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = NoisyNet(dropout=dropout)
    x, y = torch.randn(64, 6), torch.randint(0, 2, (64,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.functional.cross_entropy
    monitor = Monitor(model, optimizer, loss_fn=loss_fn, config=config) if monitored else None
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
        assert not monitor.errors, monitor.errors
        assert len(monitor.probes) >= steps - 2
    state = [t.detach().clone() for t in model.state_dict().values()]
    return state, torch.rand(4), torch.randn(4, generator=model.noise)


def test_probes_every_step_leave_global_and_model_generators_untouched() -> None:
    bare, global_bare, own_bare = _train(False)
    watched, global_watched, own_watched = _train(True)
    for a, b in zip(bare, watched, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(global_bare, global_watched)
    assert torch.equal(own_bare, own_watched)


def test_another_threads_draws_are_neither_consumed_nor_rewound() -> None:
    # Once the model and data exist, the training thread draws only from the model's own generator (no
    # dropout), so the other thread is the global generator's only user: its draws must be exactly the seeded
    # sequence, however the threads interleave (fork_rng-style save/restore would rewind and repeat them).
    torch.manual_seed(0)
    model = NoisyNet(dropout=0.0)
    x, y = torch.randn(64, 6), torch.randint(0, 2, (64,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.functional.cross_entropy
    monitor = Monitor(model, optimizer, loss_fn=loss_fn, config=EVERY_STEP)
    draws: list[float] = []
    with _drawing_thread(draws):
        for _ in range(25):
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            monitor.step(loss, batch=(x, y))
            optimizer.step()
    assert len(monitor.probes) >= 20 and not monitor.errors
    _assert_the_seeded_sequence(draws, at_least=100)


def test_a_closure_that_calls_backward_is_refused_with_the_gradients_intact() -> None:
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, optimizer)
    x, y = torch.randn(8, 3), torch.randn(8, 1)

    def torch_style() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    with pytest.raises(ConfigError, match="calls backward"):
        monitor.step(loss, closure=torch_style)
    for p, g in zip(model.parameters(), grads, strict=True):
        assert p.grad is not None and torch.equal(p.grad, g)
    # A closure that only returns the loss is used by the probes.
    good = Monitor(model, optimizer, config=MonitorConfig(probe_every=2, probe_budget=0.0, probe_max_every=2))
    for _ in range(5):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        good.step(loss, closure=lambda: nn.functional.mse_loss(model(x), y))
        optimizer.step()
    good.verdict()
    assert len(good.probes) == 2 and not good.errors


def test_a_refused_step_is_its_own_row() -> None:
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    optimizer = sgd(model.parameters(), lr=0.1)
    monitor = Monitor(model, optimizer, config=MonitorConfig(judge_every=1000))
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    for step in range(30):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y) * (math.nan if step == 20 else 1.0)
        loss.backward()
        monitor.step(loss)
        with contextlib.suppress(NonFiniteError):  # the user skips the step
            optimizer.step()
    verdict = monitor.verdict()
    assert len(monitor.history) == 30
    assert list(monitor.refused_steps) == [20]
    assert math.isnan(monitor.history.columns["grad_norm"][20])
    assert verdict.kind is VerdictKind.DIVERGING
    assert verdict.evidence[0].first_step == 20


def test_missing_losses_are_not_divergence() -> None:
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, optimizer)
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    for _ in range(60):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        monitor.step(None)
        optimizer.step()
    assert monitor.verdict().kind is not VerdictKind.DIVERGING
    assert all(math.isnan(v) for v in monitor.history.columns["loss"])


def test_wrong_optimizer_and_step_after_close_are_reported() -> None:
    model = nn.Linear(2, 1)
    other = nn.Linear(2, 1)
    with pytest.raises(ConfigError, match="holds none of the model's trainable parameters"):
        Monitor(model, torch.optim.SGD(other.parameters(), lr=0.1))
    given = torch.optim.SGD(model.parameters(), lr=0.1)
    stepping = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, given)
    x, y = torch.randn(8, 2), torch.randn(8, 1)

    def train() -> torch.Tensor:
        for _ in range(5):
            stepping.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            monitor.step(loss)
            stepping.step()
        return loss

    with pytest.warns(MonitorWarning, match="another optimizer"):
        loss = train()
    monitor.close()
    assert len(monitor.history) == 5
    with pytest.warns(MonitorWarning, match="after close"):
        monitor.step(loss)
    assert len(monitor.history) == 5


def test_bad_losses_and_models_are_refused_where_given() -> None:
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def tuple_loss(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        return nn.functional.mse_loss(outputs, targets), 0

    monitor = Monitor(model, optimizer, loss_fn=tuple_loss)  # type: ignore[arg-type]
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    with pytest.raises(ConfigError, match="got tuple"):
        monitor.step(loss, batch=(x, y))
    with pytest.raises(ConfigError, match="tuple"):
        monitor.step((loss, 0))  # type: ignore[arg-type]
    with torch.device("meta"):
        meta = nn.Linear(3, 1)
    with pytest.raises(UnsupportedError, match="meta"):
        Monitor(meta)
    with pytest.raises(ConfigError, match=r"nn\.Module"):
        Monitor("model")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="seed"):
        Monitor(model, seed=-1)
    with pytest.raises(ConfigError, match="MonitorConfig"):
        Monitor(model, config={"judge_every": 5})  # type: ignore[arg-type]


def test_fused_rnn_and_attention_kernels_are_probed_without_touching_the_global_rng() -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(4, 8, num_layers=2, dropout=0.3, batch_first=True)
    plain = nn.LSTM(4, 8, batch_first=True)  # a fused, seeded-tagged kernel that draws nothing
    q = torch.randn(1, 2, 5, 8, requires_grad=True)
    x = torch.randn(2, 5, 4)

    def loss(case: str) -> torch.Tensor:
        if case == "attention":
            out: torch.Tensor = nn.functional.scaled_dot_product_attention(q, q, q, dropout_p=0.1)
            return out.sum()
        hidden: torch.Tensor = (lstm if case == "lstm" else plain)(x)[0]
        return hidden.sum()

    for case in ("lstm", "plain", "attention"):
        before = torch.random.get_rng_state()
        with isolated(lstm):
            loss(case).backward()
        assert torch.equal(before, torch.random.get_rng_state())


class _TinyNoisy(nn.Module):
    """38 parameters (a dense Hessian is cheap) and noise from the module's own generator."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2))
        self.noise = torch.Generator().manual_seed(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x + 0.01 * torch.randn(x.shape, generator=self.noise))
        return out


def _classifying_run(monitored: bool, draws: list[float] | None) -> tuple[list[torch.Tensor], Monitor | None]:
    """A flat run whose every judgement classifies the Hessian (any gradient counts as small), beside a thread
    drawing from the global generator when ``draws`` is given."""
    torch.manual_seed(0)
    model = _TinyNoisy()
    x, y = torch.randn(32, 6), torch.randint(0, 2, (32,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-7)  # a flat loss: the plateau rules run
    loss_fn = nn.functional.cross_entropy
    config = MonitorConfig(
        judge_every=1,
        probe_every=1,
        probe_budget=0.0,
        max_dense_params=10,
        lanczos_hvps=12,
        thresholds=Thresholds(window=10, small_grad_abs=1e6, classification_max_age=1),
    )
    monitor = Monitor(model, optimizer, loss_fn=loss_fn, config=config) if monitored else None
    with _drawing_thread(draws):
        for _ in range(18):
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            if monitor is not None:
                monitor.step(loss, batch=(x, y))
            optimizer.step()
    return [p.detach().clone() for p in model.parameters()], monitor


def test_hessian_classifications_leave_another_threads_draws_and_the_trajectory_alone() -> None:
    # The classification runs ravine.curvature's passes; they draw (the model's noise) from private
    # generators and never seed or restore the global one, so the other thread's draws are the seeded sequence.
    bare, _ = _classifying_run(False, None)
    draws: list[float] = []
    watched, monitor = _classifying_run(True, draws)
    assert monitor is not None
    assert not monitor.errors, monitor.errors
    assert len(monitor.critical_points) >= 4  # a classification at every other judgement (max age 1)
    assert all(torch.equal(a, b) for a, b in zip(bare, watched, strict=True))
    _assert_the_seeded_sequence(draws, at_least=1000)
