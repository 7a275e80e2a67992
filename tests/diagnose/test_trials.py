"""Remedies tried on copies, and the LR range test: the user's run stays bit-identical; the answers are right."""

from __future__ import annotations

import math
import random

import numpy
import pytest
import torch
from torch import nn

import ravine.optim
from ravine.diagnose import VerdictKind, lr_range_test, try_remedies
from ravine.diagnose.scenarios import SCENARIOS
from ravine.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


class _Noisy(nn.Module):
    """A model that owns a generator (its own noise) and dropout (the global generator)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
        self.generator = torch.Generator().manual_seed(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x + 0.01 * torch.randn(x.shape, generator=self.generator))
        return out


def _state(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    tensors = [p.detach().clone() for p in model.parameters()]
    for state in optimizer.state.values():
        tensors += [v.clone() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors


def _run(
    optimizer_kind: str, interrupt: bool
) -> tuple[list[torch.Tensor], torch.Tensor, tuple[object, ...], object, torch.Tensor]:
    torch.manual_seed(0)
    random.seed(0)
    numpy.random.seed(0)
    model = _Noisy()
    optimizer: torch.optim.Optimizer = (
        torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        if optimizer_kind == "adamw"
        else ravine.optim.momentum(model.parameters(), lr=0.01, momentum=0.9)
    )
    x, y = torch.randn(256, 6), torch.randn(256, 1)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(1),
    )
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    for epoch in range(2):
        for xb, yb in data:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(xb), yb).backward()
            optimizer.step()
            seen.append((xb, yb))
        if interrupt and epoch == 0:
            before = _state(model, optimizer)
            try_remedies(
                model, optimizer, nn.functional.mse_loss, seen[-4:], remedies=VerdictKind.STALLED, steps=5
            )
            try_remedies(model, optimizer, nn.functional.mse_loss, seen[-2:], remedies=["escape"], steps=2)
            lr_range_test(model, optimizer, nn.functional.mse_loss, seen[-4:], num_steps=20)
            after = _state(model, optimizer)
            assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    order = torch.cat([xb for xb, _ in seen])
    return (
        _state(model, optimizer),
        torch.random.get_rng_state(),
        random.getstate(),
        numpy.random.get_state(),
        order,
    )


@pytest.mark.parametrize("optimizer_kind", ["adamw", "ravine-momentum"])
def test_trials_leave_parameters_state_rng_and_data_order_bit_identical(optimizer_kind: str) -> None:
    reference = _run(optimizer_kind, interrupt=False)
    tried = _run(optimizer_kind, interrupt=True)
    assert all(torch.equal(a, b) for a, b in zip(reference[0], tried[0], strict=True))  # params + state
    assert torch.equal(reference[1], tried[1])  # torch's global generator
    assert reference[2] == tried[2]  # Python's
    assert all(numpy.array_equal(a, b) for a, b in zip(reference[3], tried[3], strict=True))  # type: ignore[call-overload]
    assert torch.equal(reference[4], tried[4])  # the data order


def test_remedy_trial_on_lr_too_small_finds_the_higher_rate() -> None:
    scenario = SCENARIOS["lr-small-linreg-sgd"]
    run = scenario.build(0)
    batches = [run.batch(step) for step in range(4)]
    trial = try_remedies(
        run.model, run.optimizer, run.loss_fn, batches, remedies=VerdictKind.LR_TOO_SMALL, steps=30
    )
    assert trial.best is not None and trial.best.name in {"lr*10", "adam"}
    by_name = {t.name: t for t in trial.trials}
    assert by_name["lr*10"].gain > 0  # ×10 lowers the loss below continuing as is
    assert trial.control.loss_after <= trial.control.loss_before
    assert "as is" in trial.summary()


def test_remedy_trial_on_a_ravine_finds_the_lower_rate() -> None:
    scenario = SCENARIOS["ravine-surface-gd"]
    run = scenario.build(0)
    for _ in range(300):  # into the ravine: the loss is flat while the iterates bounce across it
        run.optimizer.zero_grad()
        run.loss_fn(run.model(run.batch(0)[0]), None).backward()
        run.optimizer.step()
    trial = try_remedies(
        run.model, run.optimizer, run.loss_fn, [run.batch(0)], remedies=["lr/10", "lr*10"], steps=50
    )
    by_name = {t.name: t for t in trial.trials}
    assert by_name["lr/10"].gain > 0 and by_name["lr*10"].diverged


def test_lr_range_test_suggests_a_stable_rate_for_least_squares() -> None:
    """Independent reference: GD on least squares is stable below 2/λ_max(XᵀX/n·2) (dense eigenvalues)."""
    torch.manual_seed(0)
    x = torch.randn(512, 8) * torch.linspace(0.5, 2.0, 8)
    y = x @ torch.randn(8, 1)
    model = nn.Linear(8, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    result = lr_range_test(
        model, optimizer, nn.functional.mse_loss, [(x, y)], start_lr=1e-5, end_lr=10, num_steps=80
    )
    lam_max = float(torch.linalg.eigvalsh(2 * x.T @ x / len(x))[-1])
    assert 1e-3 / lam_max < result.suggested_lr < 2 / lam_max
    assert math.isfinite(result.diverged_at) and result.diverged_at > 1 / lam_max
    assert len(result.lrs) < 80  # stopped on divergence
    assert "below" in result.advice()
    assert model.weight.grad is None  # the user's model was not touched


def test_bad_arguments_are_refused() -> None:
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = [(torch.randn(4, 2), torch.randn(4, 1))]
    with pytest.raises(ConfigError, match="unknown remedies"):
        try_remedies(model, optimizer, nn.functional.mse_loss, batch, remedies=["lr*3"])
    with pytest.raises(ConfigError, match="batches is empty"):
        try_remedies(model, optimizer, nn.functional.mse_loss, [])
    with pytest.raises(ConfigError, match="start_lr < end_lr"):
        lr_range_test(model, optimizer, nn.functional.mse_loss, batch, start_lr=1.0, end_lr=0.1)


def test_lr_range_figure_renders() -> None:
    from ravine.report.diagnose import lr_range_figure

    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    batch = [(torch.randn(64, 3), torch.randn(64, 1))]
    figure = lr_range_figure(lr_range_test(model, optimizer, nn.functional.mse_loss, batch, num_steps=30))
    assert figure.axes and figure.axes[0].get_xscale() == "log"
