"""Schedules equal their closed forms and torch's LR schedulers."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy
import pytest
import torch
from torch.optim import lr_scheduler

import ravine.optim as ro
from ravine.errors import ConfigError

N = 120


def _torch_values(
    make: Callable[[torch.optim.Optimizer], object], n: int, base_lr: float = 1.0
) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = make(opt)
    values = []
    for _ in range(n):
        values.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()  # type: ignore[attr-defined]
    return values


CLOSED_FORMS: list[tuple[ro.Schedule, Callable[[int], float]]] = [
    (ro.Constant(0.3), lambda t: 0.3),
    (ro.StepDecay(30, 0.5, lr=0.2), lambda t: 0.2 * 0.5 ** (t // 30)),
    (ro.ExponentialDecay(0.97, lr=2.0), lambda t: 2.0 * 0.97**t),
    (ro.InverseSqrtDecay(), lambda t: 1 / math.sqrt(t + 1)),
    (ro.InverseSqrtDecay(1000.0, lr=0.2), lambda t: 0.2 / math.sqrt(1 + t / 1000)),
    (ro.InverseTimeDecay(0.1, lr=0.5), lambda t: 0.5 / (1 + 0.1 * t)),
    (ro.CosineDecay(50, lr=1.0, eta_min=0.1), lambda t: 0.1 + 0.9 * (1 + math.cos(math.pi * t / 50)) / 2),
    (ro.LinearSchedule(0.25, 1.0, 20), lambda t: 0.25 + 0.75 * min(t, 20) / 20),
    (ro.LinearWarmup(10, lr=0.5), lambda t: 0.5 * min(1.0, (t + 1) / 10)),
    (ro.TransformerSchedule(512, 40), lambda t: 512**-0.5 * min((t + 1) ** -0.5, (t + 1) * 40**-1.5)),
    (ro.ResNetWarmup(20), lambda t: 0.01 if t < 20 else 0.1),
    (ro.Lambda(lambda t: 1.0 / (t + 2)), lambda t: 1.0 / (t + 2)),
    (
        ro.Sequential([ro.LinearWarmup(10), ro.CosineDecay(40)], milestones=[10]),
        lambda t: min(1.0, (t + 1) / 10) if t < 10 else (1 + math.cos(math.pi * (t - 10) / 40)) / 2,
    ),
    (ro.ExponentialDecay(0.99) * ro.StepDecay(10, 0.5), lambda t: 0.99**t * 0.5 ** (t // 10)),
]


@pytest.mark.parametrize(
    ("schedule", "formula"),
    CLOSED_FORMS,
    ids=[f"{type(s).__name__}-{i}" for i, (s, _) in enumerate(CLOSED_FORMS)],
)
def test_schedule_equals_closed_form_and_table(
    schedule: ro.Schedule, formula: Callable[[int], float]
) -> None:
    expected = torch.tensor([formula(t) for t in range(N)], dtype=torch.float64)
    scalar = torch.tensor([schedule(t) for t in range(N)], dtype=torch.float64)
    table = schedule.table(N)
    assert table.dtype == torch.float64
    assert table.shape == (N,)
    torch.testing.assert_close(scalar, expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(table, expected, rtol=1e-12, atol=1e-15)


TORCH_PAIRS: list[tuple[str, ro.Schedule, Callable[[torch.optim.Optimizer], object], float]] = [
    ("step", ro.StepDecay(30, 0.5), lambda o: lr_scheduler.StepLR(o, 30, 0.5), 1e-12),
    ("exponential", ro.ExponentialDecay(0.97), lambda o: lr_scheduler.ExponentialLR(o, 0.97), 1e-10),
    (
        "cosine",
        ro.CosineDecay(50, eta_min=0.1),
        lambda o: lr_scheduler.CosineAnnealingLR(o, 50, 0.3 * 0.1),
        1e-9,
    ),
    ("linear", ro.LinearSchedule(0.25, 1.0, 20), lambda o: lr_scheduler.LinearLR(o, 0.25, 1.0, 20), 1e-10),
    (
        "transformer",
        ro.TransformerSchedule(512, 40),
        lambda o: lr_scheduler.LambdaLR(o, lambda t: 512**-0.5 * min((t + 1) ** -0.5, (t + 1) * 40**-1.5)),
        1e-12,
    ),
    (
        "sequential",
        ro.Sequential([ro.LinearSchedule(0.1, 1.0, 10), ro.ExponentialDecay(0.95)], milestones=[10]),
        lambda o: lr_scheduler.SequentialLR(
            o, [lr_scheduler.LinearLR(o, 0.1, 1.0, 10), lr_scheduler.ExponentialLR(o, 0.95)], milestones=[10]
        ),
        1e-10,
    ),
    (
        "sequential-3",
        ro.Sequential([ro.Constant(0.5), ro.StepDecay(7, 0.5), ro.CosineDecay(30)], milestones=[5, 40]),
        lambda o: lr_scheduler.SequentialLR(
            o,
            [
                lr_scheduler.LambdaLR(o, lambda t: 0.5),
                lr_scheduler.StepLR(o, 7, 0.5),
                lr_scheduler.CosineAnnealingLR(o, 30),
            ],
            milestones=[5, 40],
        ),
        1e-9,
    ),
]


@pytest.mark.parametrize(("label", "schedule", "make", "rtol"), TORCH_PAIRS, ids=[p[0] for p in TORCH_PAIRS])
def test_schedule_equals_torch_scheduler(
    label: str, schedule: ro.Schedule, make: Callable[[torch.optim.Optimizer], object], rtol: float
) -> None:
    del label
    base = 0.3
    expected = torch.tensor(_torch_values(make, N, base), dtype=torch.float64)
    torch.testing.assert_close(base * schedule.table(N), expected, rtol=rtol, atol=1e-15)


def test_transformer_schedule_peaks_at_warmup() -> None:
    table = ro.TransformerSchedule(64, 100).table(400)
    assert int(table.argmax()) == 99  # n = t + 1 = w
    assert table[99].item() == pytest.approx(64**-0.5 * 100**-0.5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ro.StepDecay(0),
        lambda: ro.ExponentialDecay(-0.1),
        lambda: ro.CosineDecay(10, lr=-1.0),
        lambda: ro.Sequential([ro.Constant()], milestones=[3]),
        lambda: ro.Sequential([ro.Constant(), ro.Constant()], milestones=[0]),
        lambda: ro.InverseSqrtDecay(0.0),
        lambda: ro.Constant(1.0).table(-1),
    ],
)
def test_bad_schedule_arguments_raise_config_error(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        make()


def test_plot_schedule_draws_a_line() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from ravine.report.schedules import plot_schedule

    ax = plot_schedule(ro.CosineDecay(50), 60)
    (line,) = ax.get_lines()
    ys = numpy.asarray(line.get_ydata(), dtype=numpy.float64)
    assert len(ys) == 60
    assert ys[0] == pytest.approx(1.0)
