r"""Learning-rate schedules: pure functions step → lr.

``step`` is the number of updates already taken (0 for the first update), as torch's LR schedulers count.
``schedule(step)`` is a Python float; ``schedule.table(n)`` is the float64 tensor of steps 0..n−1, computed
vectorised. In :class:`~ravine.optim.ChainOptimizer` a schedule *multiplies* the group's ``lr``
(η_t = group["lr"] × schedule(t)), so give schedules ``lr=1.0`` (the default) to use them as factors, or
an optimizer ``lr=1.0`` to use their absolute values.

Example:
    >>> from ravine.optim import CosineDecay, LinearWarmup, Sequential
    >>> warm_then_cosine = Sequential([LinearWarmup(10), CosineDecay(90)], milestones=[10])
    >>> [round(warm_then_cosine(t), 3) for t in (0, 9, 10, 55, 100)]
    [0.1, 1.0, 1.0, 0.5, 0.0]
    >>> warm_then_cosine.table(3).tolist()
    [0.1, 0.2, 0.3]
"""

from __future__ import annotations

import abc
import bisect
import math
from collections.abc import Callable, Sequence

import torch

from ravine._validate import check_nonnegative, check_positive, check_positive_int
from ravine.errors import ConfigError

__all__ = [
    "Constant",
    "CosineDecay",
    "ExponentialDecay",
    "InverseSqrtDecay",
    "InverseTimeDecay",
    "Lambda",
    "LinearSchedule",
    "LinearWarmup",
    "Product",
    "ResNetWarmup",
    "Schedule",
    "Sequential",
    "StepDecay",
    "TransformerSchedule",
]


class Schedule(abc.ABC):
    """A learning rate as a pure function of the number of updates already taken."""

    @abc.abstractmethod
    def __call__(self, step: int) -> float:
        """The learning rate for the update that follows ``step`` updates (step 0 = first update)."""

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        """The learning rate at each of ``steps`` (a float64 tensor of step counts), vectorised."""
        return torch.tensor([self(int(t)) for t in steps.tolist()], dtype=torch.float64)

    def table(self, num_steps: int) -> torch.Tensor:
        """float64 tensor of the learning rate for steps 0..num_steps−1."""
        if not isinstance(num_steps, int) or num_steps < 0:
            raise ConfigError(f"schedule: num_steps must be an integer >= 0, got {num_steps=}")
        return self.values(torch.arange(num_steps, dtype=torch.float64))

    def __mul__(self, other: Schedule) -> Schedule:
        return Product(self, other)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))


class Constant(Schedule):
    """η_t = lr."""

    def __init__(self, lr: float = 1.0) -> None:
        self.lr = check_nonnegative("Constant", "lr", lr)

    def __call__(self, step: int) -> float:
        return self.lr

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        return torch.full_like(steps, self.lr, dtype=torch.float64)


class StepDecay(Schedule):
    """η_t = lr·γ^⌊t/step_size⌋ (torch StepLR)."""

    def __init__(self, step_size: int, gamma: float = 0.1, *, lr: float = 1.0) -> None:
        self.step_size = check_positive_int("StepDecay", "step_size", step_size)
        self.gamma = check_nonnegative("StepDecay", "gamma", gamma)
        self.lr = check_nonnegative("StepDecay", "lr", lr)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        exponent = torch.div(steps, self.step_size, rounding_mode="floor")
        return self.lr * torch.pow(torch.tensor(self.gamma, dtype=torch.float64), exponent)


class ExponentialDecay(Schedule):
    """η_t = lr·γ^t (torch ExponentialLR)."""

    def __init__(self, gamma: float, *, lr: float = 1.0) -> None:
        self.gamma = check_nonnegative("ExponentialDecay", "gamma", gamma)
        self.lr = check_nonnegative("ExponentialDecay", "lr", lr)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma**step

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        return self.lr * torch.pow(torch.tensor(self.gamma, dtype=torch.float64), steps)


class InverseSqrtDecay(Schedule):
    """η_t = lr / sqrt(1 + t/scale); with scale = 1 this is η/sqrt(t+1) (the lecture's 1/sqrt(t+1))."""

    def __init__(self, scale: float = 1.0, *, lr: float = 1.0) -> None:
        self.scale = check_positive("InverseSqrtDecay", "scale", scale)
        self.lr = check_nonnegative("InverseSqrtDecay", "lr", lr)

    def __call__(self, step: int) -> float:
        return self.lr / math.sqrt(1.0 + step / self.scale)

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        return self.lr / torch.sqrt(1.0 + steps / self.scale)


class InverseTimeDecay(Schedule):
    """η_t = lr / (1 + t·decay): torch Adagrad's ``lr_decay``."""

    def __init__(self, decay: float, *, lr: float = 1.0) -> None:
        self.decay = check_nonnegative("InverseTimeDecay", "decay", decay)
        self.lr = check_nonnegative("InverseTimeDecay", "lr", lr)

    def __call__(self, step: int) -> float:
        return self.lr / (1.0 + step * self.decay)

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        return self.lr / (1.0 + steps * self.decay)


class CosineDecay(Schedule):
    """η_t = η_min + (lr − η_min)·(1 + cos(π·t/t_max))/2 (torch CosineAnnealingLR's closed form)."""

    def __init__(self, t_max: int, *, lr: float = 1.0, eta_min: float = 0.0) -> None:
        self.t_max = check_positive_int("CosineDecay", "t_max", t_max)
        self.lr = check_nonnegative("CosineDecay", "lr", lr)
        self.eta_min = check_nonnegative("CosineDecay", "eta_min", eta_min)

    def __call__(self, step: int) -> float:
        return self.eta_min + (self.lr - self.eta_min) * (1 + math.cos(math.pi * step / self.t_max)) / 2

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        return self.eta_min + (self.lr - self.eta_min) * (1 + torch.cos(math.pi * steps / self.t_max)) / 2


class LinearSchedule(Schedule):
    """η_t = lr·(s + (e − s)·min(t, T)/T): torch LinearLR (start_factor s, end_factor e, total_iters T)."""

    def __init__(
        self,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_steps: int = 5,
        *,
        lr: float = 1.0,
    ) -> None:
        self.start_factor = check_nonnegative("LinearSchedule", "start_factor", start_factor)
        self.end_factor = check_nonnegative("LinearSchedule", "end_factor", end_factor)
        self.total_steps = check_positive_int("LinearSchedule", "total_steps", total_steps)
        self.lr = check_nonnegative("LinearSchedule", "lr", lr)

    def __call__(self, step: int) -> float:
        fraction = min(step, self.total_steps) / self.total_steps
        return self.lr * (self.start_factor + (self.end_factor - self.start_factor) * fraction)

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        fraction = torch.clamp(steps, max=self.total_steps) / self.total_steps
        return self.lr * (self.start_factor + (self.end_factor - self.start_factor) * fraction)


class LinearWarmup(Schedule):
    """η_t = lr·min(1, (t + 1)/warmup_steps): linear warmup that reaches lr at update ``warmup_steps``."""

    def __init__(self, warmup_steps: int, *, lr: float = 1.0) -> None:
        self.warmup_steps = check_positive_int("LinearWarmup", "warmup_steps", warmup_steps)
        self.lr = check_nonnegative("LinearWarmup", "lr", lr)

    def __call__(self, step: int) -> float:
        return self.lr * min(1.0, (step + 1) / self.warmup_steps)

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        return self.lr * torch.clamp((steps + 1) / self.warmup_steps, max=1.0)


class TransformerSchedule(Schedule):
    """η_t = scale·d^−0.5·min(n^−0.5, n·w^−1.5) with n = t + 1 (Vaswani et al.; the lecture's form)."""

    def __init__(self, d_model: int, warmup_steps: int = 4000, *, scale: float = 1.0) -> None:
        self.d_model = check_positive_int("TransformerSchedule", "d_model", d_model)
        self.warmup_steps = check_positive_int("TransformerSchedule", "warmup_steps", warmup_steps)
        self.scale = check_nonnegative("TransformerSchedule", "scale", scale)

    def __call__(self, step: int) -> float:
        n = float(step + 1)
        value: float = self.scale * math.pow(self.d_model, -0.5)
        return value * min(math.pow(n, -0.5), n * math.pow(self.warmup_steps, -1.5))

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        n = steps + 1
        out: torch.Tensor = (
            self.scale * self.d_model**-0.5 * torch.minimum(n**-0.5, n * self.warmup_steps**-1.5)
        )
        return out


class ResNetWarmup(Schedule):
    """ResNet's warmup (He et al. 2016, 110 layers): warmup_lr (0.01) for ``warmup_steps``, then lr (0.1)."""

    def __init__(self, warmup_steps: int, *, warmup_lr: float = 0.01, lr: float = 0.1) -> None:
        self.warmup_steps = check_positive_int("ResNetWarmup", "warmup_steps", warmup_steps)
        self.warmup_lr = check_nonnegative("ResNetWarmup", "warmup_lr", warmup_lr)
        self.lr = check_nonnegative("ResNetWarmup", "lr", lr)

    def __call__(self, step: int) -> float:
        return self.warmup_lr if step < self.warmup_steps else self.lr

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        warm = torch.full_like(steps, self.warmup_lr, dtype=torch.float64)
        return torch.where(steps < self.warmup_steps, warm, torch.full_like(warm, self.lr))


class Lambda(Schedule):
    """η_t = fn(t) for any Python function (its :meth:`table` loops in Python)."""

    def __init__(self, fn: Callable[[int], float]) -> None:
        if not callable(fn):
            raise ConfigError(f"Lambda: fn must be callable, got {fn=}")
        self.fn = fn

    def __call__(self, step: int) -> float:
        value: float = self.fn(step)
        return float(value)


class Sequential(Schedule):
    """Schedules one after another, as torch's SequentialLR: from milestone m_i on, schedule i+1 runs with
    its count restarted, η_t = s_{i+1}(t − m_i).
    """

    def __init__(self, schedules: Sequence[Schedule], milestones: Sequence[int]) -> None:
        if len(schedules) < 1 or len(milestones) != len(schedules) - 1:
            raise ConfigError(
                "Sequential: needs one milestone fewer than schedules, got "
                f"{len(schedules)} schedules and milestones={list(milestones)!r}"
            )
        if any(not isinstance(s, Schedule) for s in schedules):
            raise ConfigError(f"Sequential: every part must be a Schedule, got {list(schedules)!r}")
        if any(not isinstance(m, int) or m < 1 for m in milestones) or list(milestones) != sorted(milestones):
            raise ConfigError(f"Sequential: milestones must be increasing integers >= 1, got {milestones=}")
        self.schedules = tuple(schedules)
        self.milestones = tuple(milestones)

    def __call__(self, step: int) -> float:
        i = bisect.bisect_right(self.milestones, step)
        start = self.milestones[i - 1] if i > 0 else 0
        return self.schedules[i](step - start)

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        bounds = torch.tensor(self.milestones, dtype=torch.float64)
        index = torch.bucketize(steps, bounds, right=True)
        starts = torch.cat([torch.zeros(1, dtype=torch.float64), bounds])[index]
        out = torch.empty_like(steps, dtype=torch.float64)
        for i, schedule in enumerate(self.schedules):
            mask = index == i
            if bool(mask.any()):
                out[mask] = schedule.values(steps[mask] - starts[mask])
        return out

    def __hash__(self) -> int:
        return hash((self.schedules, self.milestones))


class Product(Schedule):
    """η_t = Π s_i(t), as torch's ChainedScheduler for multiplicative schedulers (also ``a * b``)."""

    def __init__(self, *schedules: Schedule) -> None:
        if not schedules or any(not isinstance(s, Schedule) for s in schedules):
            raise ConfigError(f"Product: needs one or more Schedules, got {schedules!r}")
        self.schedules = tuple(schedules)

    def __call__(self, step: int) -> float:
        value = 1.0
        for schedule in self.schedules:
            value *= schedule(step)
        return value

    def values(self, steps: torch.Tensor) -> torch.Tensor:
        out = torch.ones_like(steps, dtype=torch.float64)
        for schedule in self.schedules:
            out = out * schedule.values(steps)
        return out

    def __hash__(self) -> int:
        return hash(self.schedules)
