"""Labelled runs of real nets for the failure classes of the second round (digits, MNIST-1D, generated data).

Each builder is deterministic given its seed. The truth of each is established in the tests by a measurement
that does not use ravine's signals (dense Hessians via ``torch.func.hessian``, a forward pass counting dead
units, per-layer gradients by autograd, control runs at other learning rates, held-out losses).
"""

from __future__ import annotations

import torch
from torch import nn

from ravine.diagnose.scenarios.builders import Batch, Run, _ce, _full, _minibatches, _mse, _regression

__all__ = [
    "dead_relu_adam",
    "dead_relu_digits",
    "diverged_stuck_adam",
    "healthy_lstm_adam",
    "healthy_mlp_adamw_small_batch",
    "regularised_minimum_sgd",
    "saddle_from_init_digits",
    "vanishing_deep_sigmoid",
]


def _digits(seed: int) -> tuple[Batch, Batch]:
    from ravine.data import digits

    data = digits(seed=seed)
    return (data.x_train, data.y_train), (data.x_test, data.y_test)


def saddle_from_init_digits(seed: int) -> Run:
    """Tanh MLP 64→4→10 on digits, every parameter scaled by 1e-4 at initialisation: stuck at the origin's
    saddle from step 0."""
    (x, y), _ = _digits(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 4), nn.Tanh(), nn.Linear(4, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e-4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    return Run(model, optimizer, _ce, _full(x, y))


def diverged_stuck_adam(seed: int) -> Run:
    """Tanh MLP on digits with Adam at lr 3: the loss jumps to ~100× its start within a few steps and stays."""
    (x, y), _ = _digits(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    return Run(model, torch.optim.Adam(model.parameters(), lr=3.0), _ce, _minibatches(x, y, 64, seed))


def dead_relu_adam(seed: int) -> Run:
    """ReLU MLP on digits with Adam at lr 1: the first steps kill the ReLUs; the net collapses to a constant
    predictor at the label entropy (≈ ln 10) and stays there."""
    (x, y), _ = _digits(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    return Run(model, torch.optim.Adam(model.parameters(), lr=1.0), _ce, _minibatches(x, y, 64, seed))


def regularised_minimum_sgd(seed: int) -> Run:
    """Least squares with SGD weight_decay = 0.5, full batch: converges to the regularised (strongly convex)
    minimum, where p.grad = −λθ is not small but the gradient of the objective minimised is zero."""
    x, y = _regression(256, 6, seed, noise=0.5)
    torch.manual_seed(seed)
    model = nn.Linear(6, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.5)
    return Run(model, optimizer, _mse, _full(x, y))


def dead_relu_digits(seed: int) -> Run:
    """ReLU MLP on digits, SGD; at step 100 a bad update pushes every first-layer pre-activation below zero
    (bias −= 50): all 64 units die, the output becomes the output bias, the loss sits at the label entropy."""
    (x, y), _ = _digits(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    first = model[0]
    assert isinstance(first, nn.Linear)

    def before(step: int) -> None:
        if step == 100:
            with torch.no_grad():
                first.bias.sub_(50.0)

    return Run(model, optimizer, _ce, _minibatches(x, y, 64, seed), before)


class _DeepSigmoid(nn.Module):
    def __init__(self, depth: int, width: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        layers: list[nn.Module] = [nn.Linear(64, width), nn.Sigmoid()]
        for _ in range(depth - 2):
            layers += [nn.Linear(width, width), nn.Sigmoid()]
        layers.append(nn.Linear(width, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def vanishing_deep_sigmoid(seed: int) -> Run:
    """A 12-layer sigmoid MLP on digits with SGD: the relative gradient shrinks ~4× per layer toward the input."""
    (x, y), _ = _digits(seed)
    model = _DeepSigmoid(12, 32, seed)
    return Run(model, torch.optim.SGD(model.parameters(), lr=0.05), _ce, _minibatches(x, y, 64, seed))


class _LSTMClassifier(nn.Module):
    """An LSTM reading a digits image row by row (8 steps of 8 pixels), classifying from its last state."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.lstm = nn.LSTM(8, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.reshape(-1, 8, 8))
        logits: torch.Tensor = self.head(out[:, -1])
        return logits


def healthy_lstm_adam(seed: int) -> Run:
    """LSTM over digits rows, Adam 4e-3, noisy batches of 16: healthy (its held-out loss falls from step ~25
    on: 2.26 → 0.57 over the first 200 steps at seed 0)."""
    (x, y), _ = _digits(seed)
    model = _LSTMClassifier(seed)
    return Run(model, torch.optim.Adam(model.parameters(), lr=4e-3), _ce, _minibatches(x, y, 16, seed))


def healthy_mlp_adamw_small_batch(seed: int) -> Run:
    """MLP on digits, AdamW 1e-3 with weight decay 0.05, batches of 8: healthy under heavy batch noise."""
    (x, y), _ = _digits(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    return Run(model, optimizer, _ce, _minibatches(x, y, 8, seed))
