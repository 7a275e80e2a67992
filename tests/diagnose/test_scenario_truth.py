"""Each real-net scenario's label is true, by a measurement that does not use ravine's signals.

The runs are replayed without a monitor (a plain loop), and the truth is measured directly: dense Hessians of
tiny nets by ``torch.func.hessian``, a forward pass counting dead units, per-layer gradients by autograd, the
constant predictor's loss from the label frequencies, control runs at other learning rates, held-out losses.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from ravine.diagnose.scenarios import HEALTHY, SCENARIOS
from ravine.diagnose.scenarios.builders import Run

# torch.func.hessian's first call scripts a helper with torch.jit, which torch 2.13 deprecates (not ravine's).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _train(run: Run, steps: int, lr: float | None = None, start: int = 0) -> list[float]:
    if lr is not None:
        for group in run.optimizer.param_groups:
            group["lr"] = lr
    losses = []
    for step in range(start, start + steps):
        run.before_step(step)
        x, y = run.batch(step)
        run.optimizer.zero_grad()
        loss = run.loss_fn(run.model(x), y)
        loss.backward()
        run.optimizer.step()
        losses.append(loss.item())
    return losses


def _dense_hessian(run: Run, decay: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient and the dense Hessian (float64) of the full-batch objective L + decay·‖θ‖²/2."""
    model = run.model.double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])
    x, y = run.batch(0)
    x = x.double()
    y = y.double() if y.is_floating_point() else y

    def objective(theta: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(theta, sizes)
        params = {n: piece.reshape(s) for n, piece, s in zip(names, pieces, shapes, strict=True)}
        return run.loss_fn(functional_call(model, params, (x,)), y) + 0.5 * decay * theta.square().sum()

    grad = torch.func.grad(objective)(flat)
    return grad, hessian(objective)(flat)


def test_saddle_from_init_is_a_saddle_by_the_dense_hessian() -> None:
    scenario = SCENARIOS["saddle-from-init-digits-tanh"]
    run = scenario.build(0)
    losses = _train(run, scenario.steps)
    grad, H = _dense_hessian(run)
    eigenvalues = torch.linalg.eigvalsh(H)
    assert float(grad.norm()) < 1e-2  # stuck: the gradient is tiny ...
    assert (
        eigenvalues[0] < -0.05 * eigenvalues[-1].abs()
    )  # ... and the Hessian has clearly negative curvature
    assert abs(losses[-1] - losses[0]) < 0.01 * losses[0]


def test_diverged_stuck_stays_far_above_its_start_while_a_lower_rate_learns() -> None:
    scenario = SCENARIOS["diverged-stuck-digits-adam"]
    losses = _train(scenario.build(0), scenario.steps)
    tail = losses[-50:]
    assert min(tail) > 10 * losses[0]
    control = _train(scenario.build(0), scenario.steps, lr=1e-3)
    assert sum(control[-50:]) / 50 < 0.5 * control[0]


def test_regularised_minimum_is_the_minimum_of_the_objective_with_weight_decay() -> None:
    scenario = SCENARIOS["regularised-minimum-linreg-wd"]
    run = scenario.build(0)
    _train(run, scenario.steps)
    x, y = run.batch(0)
    run.optimizer.zero_grad()
    run.loss_fn(run.model(x), y).backward()
    raw = math.sqrt(sum(float(p.grad.square().sum()) for p in run.model.parameters() if p.grad is not None))
    decay = run.optimizer.param_groups[0]["weight_decay"]
    grad, H = _dense_hessian(run, decay)
    assert raw > 0.1  # p.grad is not small ...
    assert float(grad.norm()) < 1e-4  # ... but the objective's gradient vanishes
    assert torch.linalg.eigvalsh(H)[0] > 0.1  # strongly convex: a minimum


def _dead_share(run: Run, x: torch.Tensor) -> float:
    hidden = run.model[1](run.model[0](x))  # type: ignore[index]
    return float((hidden == 0).all(0).float().mean())


def test_dead_relu_runs_have_dead_units_and_sit_near_the_constant_predictor() -> None:
    for name in ("dead-relu-digits-momentum", "dead-relu-digits-adam"):
        scenario = SCENARIOS[name]
        run = scenario.build(0)
        losses = _train(run, scenario.steps)
        from ravine.data import digits

        data = digits(seed=0)
        with torch.no_grad():
            assert _dead_share(run, data.x_train) >= 0.9, name
        counts = torch.bincount(data.y_train, minlength=10).double()
        entropy = float(-(counts / counts.sum() * (counts / counts.sum()).log()).sum())
        tail = sum(losses[-50:]) / 50
        assert 0.7 * entropy < tail < 1.1 * entropy, (name, tail, entropy)


def test_deep_sigmoid_gradients_vanish_toward_the_input() -> None:
    scenario = SCENARIOS["vanishing-deep-sigmoid-digits"]
    run = scenario.build(0)
    _train(run, 50)
    x, y = run.batch(0)
    run.optimizer.zero_grad()
    run.loss_fn(run.model(x), y).backward()
    weights = [m.weight for m in run.model.modules() if isinstance(m, nn.Linear)]
    first, last = (
        float(w.grad.norm() / w.detach().norm()) for w in (weights[0], weights[-1]) if w.grad is not None
    )
    assert first < 1e-3 * last


def test_healthy_lstm_held_out_loss_falls() -> None:
    from ravine.data import digits

    scenario = HEALTHY["healthy-lstm-adam"]
    run = scenario.build(0)
    data = digits(seed=0)

    def held_out() -> float:
        with torch.no_grad():
            return float(run.loss_fn(run.model(data.x_test), data.y_test))

    losses = [held_out()]
    for start in (0, 210):
        _train(run, 210, start=start)
        losses.append(held_out())
    assert losses[1] < 0.8 * losses[0] and losses[2] < 0.9 * losses[1]  # still falling at the end
