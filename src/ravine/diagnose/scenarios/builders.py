"""The labelled runs' ingredients: small models, data and optimizers, one builder per scenario (seed → Run)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Run:
    """What a scenario builds: a model, an optimizer, a loss, batches and an optional per-step intervention."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[Any, Any], torch.Tensor]
    batch: Callable[[int], Batch]
    before_step: Callable[[int], None] = lambda step: None
    scheduler: Any = None


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(out, y)


def _ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, y)


def _identity_loss(out: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
    return out


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _full(x: torch.Tensor, y: torch.Tensor) -> Callable[[int], Batch]:
    return lambda step: (x, y)


def _minibatches(x: torch.Tensor, y: torch.Tensor, size: int, seed: int) -> Callable[[int], Batch]:
    generator = torch.Generator().manual_seed(seed + 1000)
    order: list[torch.Tensor] = []

    def batch(step: int) -> Batch:
        per_epoch = len(x) // size
        epoch, index = divmod(step, per_epoch)
        while len(order) <= epoch:
            order.append(torch.randperm(len(x), generator=generator))
        rows = order[epoch][index * size : (index + 1) * size]
        return x[rows], y[rows]

    return batch


def _regression(n: int, d: int, seed: int, *, scales: list[float] | None = None, noise: float = 0.1) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator)
    if scales is not None:
        x = x * torch.tensor(scales)
    w = torch.randn(d, 1, generator=generator)
    y = x @ w + noise * torch.randn(n, 1, generator=generator)
    return x, y


def _mnist1d(seed: int, n: int = 1200) -> Batch:
    from ravine.data import mnist1d

    data = mnist1d(num_samples=n, seed=seed)
    return data.x_train, data.y_train


def _mlp(d_in: int, hidden: int, d_out: int, seed: int, act: type[nn.Module] = nn.ReLU) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d_in, hidden), act(), nn.Linear(hidden, hidden), act(), nn.Linear(hidden, d_out)
    )


class _Surface(nn.Module):
    """The lecture's ravine: L = u² + 100·f(v), (u, v) = (x, y) rotated by ``angle``, f = v² or logcosh(10v)/10."""

    def __init__(self, start: tuple[float, float], angle: float, *, logcosh: bool = False) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(start, dtype=torch.float64))
        self.angle = angle
        self.logcosh = logcosh

    def forward(self, _x: torch.Tensor) -> torch.Tensor:
        c, s = math.cos(self.angle), math.sin(self.angle)
        u = c * self.w[0] + s * self.w[1]
        v = -s * self.w[0] + c * self.w[1]
        steep = torch.log(torch.cosh(10 * v)) if self.logcosh else v**2
        return u**2 + 100 * steep


class _Conv(nn.Module):
    def __init__(self, classes: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Sequential(nn.Conv1d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2))
        self.head = nn.Linear(8 * 20, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.conv(x.unsqueeze(1)).flatten(1))
        return logits


class _DeepLinear(nn.Module):
    def __init__(self, d: int, depth: int, scale: float, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.layers = nn.ParameterList(
            [nn.Parameter(scale * torch.randn(d, d, generator=generator)) for _ in range(depth)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for w in self.layers:
            x = x @ w.T
        return x


# ---------------------------------------------------------------------------------------------- builders
def ravine_surface(seed: int) -> Run:
    model = _Surface((30.0, 3.0), 0.02)
    x = torch.zeros(1, 1)
    return Run(model, torch.optim.SGD(model.parameters(), lr=1e-2), _identity_loss, _full(x, x))


def small_linreg(seed: int) -> Run:
    x, y = _regression(256, 6, seed)
    torch.manual_seed(seed)
    model = nn.Linear(6, 1)
    return Run(model, torch.optim.SGD(model.parameters(), lr=1e-5), _mse, _full(x, y))


def small_mlp_adagrad(seed: int) -> Run:
    x, y = _mnist1d(seed)
    model = _mlp(40, 64, 10, seed)
    return Run(model, torch.optim.Adagrad(model.parameters(), lr=1e-5), _ce, _minibatches(x, y, 128, seed))


def small_deeplinear_adadelta(seed: int) -> Run:
    x, y = _regression(256, 6, seed)
    y = y.repeat(1, 6)
    model = _DeepLinear(6, 3, 0.6, seed)
    return Run(model, torch.optim.Adadelta(model.parameters(), lr=1e-3), _mse, _full(x, y))


def small_cnn_momentum(seed: int) -> Run:
    x, y = _mnist1d(seed)
    model = _Conv(10, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    return Run(model, optimizer, _ce, _minibatches(x, y, 128, seed))


def saddle_deeplinear(seed: int) -> Run:
    x, y = _regression(256, 6, seed)
    y = y.repeat(1, 6)
    model = _DeepLinear(6, 2, 1e-6, seed)
    return Run(model, torch.optim.SGD(model.parameters(), lr=0.01), _mse, _full(x, y))


def saddle_mlp_momentum(seed: int) -> Run:
    x, y = _regression(256, 4, seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return Run(model, optimizer, _mse, _full(x, y))


def minimum_linreg(seed: int) -> Run:
    x, y = _regression(256, 6, seed, noise=3.0)
    torch.manual_seed(seed)
    model = nn.Linear(6, 1)
    return Run(model, torch.optim.SGD(model.parameters(), lr=0.2), _mse, _full(x, y))


def minimum_mlp_momentum(seed: int) -> Run:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=generator)
    y = torch.sin(3 * x[:, :1]) * torch.cos(2 * x[:, 1:2]) + 0.5 * torch.randn(256, 1, generator=generator)
    model = _mlp(4, 3, 1, seed, nn.Tanh)
    return Run(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), _mse, _full(x, y))


def noise_random_labels(seed: int) -> Run:
    x, _ = _mnist1d(seed, n=5000)
    generator = torch.Generator().manual_seed(seed + 7)
    y = torch.randint(0, 10, (len(x),), generator=generator)
    model = _mlp(40, 32, 10, seed)
    return Run(model, torch.optim.SGD(model.parameters(), lr=0.05), _ce, _minibatches(x, y, 16, seed))


def diverging_mlp(seed: int) -> Run:
    x, y = _mnist1d(seed)
    model = _mlp(40, 64, 10, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def before(step: int) -> None:
        if step == 150:
            _set_lr(optimizer, 30.0)

    return Run(model, optimizer, _ce, _minibatches(x, y, 64, seed), before)


def diverging_cnn_nan(seed: int) -> Run:
    x, y = _mnist1d(seed)
    model = _Conv(10, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inner = _minibatches(x, y, 64, seed)

    def batch(step: int) -> Batch:
        xb, yb = inner(step)
        if step == 150:
            xb = xb.clone()
            xb[0, 0] = math.nan
        return xb, yb

    return Run(model, optimizer, _ce, batch)


def bursts_surface_adagrad(seed: int) -> Run:
    model = _Surface((30.0, 3.0), 0.02)
    x = torch.zeros(1, 1)
    # The lecture's Adagrad divides by the *mean* of past g² (σ = sqrt(Σg²/(t+1))); torch's divides by the sum,
    # so η·sqrt(t+1) with torch's Adagrad is the lecture's η.
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.2, eps=1e-30)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: math.sqrt(t + 1))
    return Run(model, optimizer, _identity_loss, _full(x, x), scheduler=scheduler)


# ---------------------------------------------------------------------------------------------- healthy
def healthy_mlp_adam(seed: int) -> Run:
    x, y = _mnist1d(seed, n=4000)
    model = _mlp(40, 64, 10, seed)
    return Run(model, torch.optim.Adam(model.parameters(), lr=1e-3), _ce, _minibatches(x, y, 64, seed))


def healthy_mlp_momentum(seed: int) -> Run:
    x, y = _mnist1d(seed, n=4000)
    model = _mlp(40, 64, 10, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    return Run(model, optimizer, _ce, _minibatches(x, y, 64, seed))


def healthy_cnn_adam(seed: int) -> Run:
    x, y = _mnist1d(seed, n=4000)
    model = _Conv(10, seed)
    return Run(model, torch.optim.Adam(model.parameters(), lr=2e-3), _ce, _minibatches(x, y, 64, seed))


def healthy_digits_adagrad(seed: int) -> Run:
    from ravine.data import digits

    data = digits(seed=seed)
    model = _mlp(64, 64, 10, seed)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.02)
    return Run(model, optimizer, _ce, _minibatches(data.x_train, data.y_train, 32, seed))


def healthy_deeplinear_adadelta(seed: int) -> Run:
    x, y = _regression(512, 6, seed, noise=0.5)
    y = y.repeat(1, 6) + 0.1 * torch.randn(512, 6, generator=torch.Generator().manual_seed(seed))
    model = _DeepLinear(6, 3, 0.5, seed)
    return Run(model, torch.optim.Adadelta(model.parameters(), lr=0.5), _mse, _minibatches(x, y, 32, seed))


def healthy_linreg_sgd(seed: int) -> Run:
    x, y = _regression(4096, 20, seed, noise=0.5)
    torch.manual_seed(seed)
    model = nn.Linear(20, 1)
    return Run(model, torch.optim.SGD(model.parameters(), lr=0.01), _mse, _minibatches(x, y, 32, seed))
