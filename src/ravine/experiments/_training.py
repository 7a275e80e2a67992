"""Shared pieces of the experiments: seeded models, mini-batch loops, flat parameter vectors, progress.

Everything here is deterministic given a seed: models are initialised inside a forked RNG (the global torch
RNG is left untouched) and mini-batches are drawn from an explicit :class:`torch.Generator`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ravine._threads import single_threaded
from ravine.errors import ConfigError, NonFiniteError
from ravine.progress import Progress

__all__ = [
    "TrainLog",
    "accuracy",
    "batches",
    "evaluate",
    "flat_params",
    "loss_at",
    "loss_below",
    "mlp",
    "set_flat_params",
    "single_threaded",
    "train",
]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mlp(
    sizes: Sequence[int], *, activation: str = "relu", seed: int = 0, dtype: torch.dtype = torch.float32
) -> nn.Sequential:
    """A fully connected net ``sizes[0] → … → sizes[-1]`` initialised from ``seed`` (PyTorch's default init).

    Raises:
        ConfigError: If fewer than two sizes are given, a size is not positive, or the activation is unknown.
    """
    if len(sizes) < 2 or any(size < 1 for size in sizes):
        raise ConfigError(f"mlp: need at least two positive layer sizes, got {list(sizes)}")
    if activation not in _ACTIVATIONS:
        raise ConfigError(f"mlp: unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(fan_in, fan_out, dtype=dtype))
            if index < len(sizes) - 2:
                layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def flat_params(model: nn.Module) -> torch.Tensor:
    """All parameters of ``model`` as one detached vector (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def set_flat_params(model: nn.Module, vector: torch.Tensor) -> None:
    """Write a flat vector (as from :func:`flat_params`) back into ``model``'s parameters."""
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            count = p.numel()
            p.copy_(vector[offset : offset + count].view_as(p))
            offset += count
    if offset != vector.numel():
        raise ConfigError(f"set_flat_params: model has {offset} parameters, vector has {vector.numel()}")


def batches(num_samples: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless mini-batches of indices: a fresh shuffle every epoch, the last short batch dropped
    (unless the whole epoch is one batch)."""
    if batch_size < 1:
        raise ConfigError(f"batches: batch_size must be at least 1, got {batch_size=}")
    size = min(batch_size, num_samples)
    while True:
        order = torch.randperm(num_samples, generator=generator)
        for start in range(0, num_samples - size + 1, size):
            yield order[start : start + size]


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows whose arg-max equals the label."""
    return float((logits.argmax(dim=1) == labels).float().mean())


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Cross-entropy loss and accuracy of a classifier on ``(x, y)``."""
    logits = model(x)
    return float(nn.functional.cross_entropy(logits, y)), accuracy(logits, y)


@torch.no_grad()
def loss_at(
    model: nn.Module,
    vector: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
) -> float:
    """Loss of ``model`` with its parameters replaced by the flat ``vector`` (the model is modified)."""
    set_flat_params(model, vector)
    return float(loss_fn(model(x), y))


def loss_below(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: float, *, every: int
) -> Callable[[int], bool] | None:
    """A ``stop_when`` for :func:`train`: true once the full-batch cross-entropy on ``(x, y)`` is at most
    ``target`` (checked every ``every`` updates); ``None`` (never stop) if ``target`` is not positive."""
    if target <= 0:
        return None

    def check(done: int) -> bool:
        return done % max(1, every) == 0 and evaluate(model, x, y)[0] <= target

    return check


@dataclass
class TrainLog:
    """What a training loop recorded: the mini-batch loss of every step and optional snapshots."""

    losses: list[float] = field(default_factory=list)
    snapshots: list[torch.Tensor] = field(default_factory=list)
    snapshot_steps: list[int] = field(default_factory=list)
    diverged: bool = False


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    seed: int = 0,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
    lr_at: Callable[[int], float] | None = None,
    snapshot_every: int = 0,
    on_step: Callable[[int, float], None] | None = None,
    after_backward: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    progress: Progress | None = None,
    stop_on_nonfinite: bool = True,
    stop_when: Callable[[int], bool] | None = None,
) -> TrainLog:
    """Mini-batch training for ``steps`` updates; returns the per-step losses.

    Args:
        lr_at: If given, every param group's ``lr`` is set to ``lr_at(step)`` before step ``step`` (from 0).
        snapshot_every: If positive, a flat copy of the parameters is kept at step 0 and every that many
            steps, and after the last step.
        on_step: Called as ``on_step(step, loss)`` after every update.
        after_backward: Called as ``after_backward(step, loss, batch_indices)`` between ``backward()`` and
            ``optimizer.step()`` (where a diagnostics monitor reads the gradient).
        progress: Called as ``progress(updates_done, steps)`` about 50 times over the run.
        stop_on_nonfinite: Stop (and mark the log ``diverged``) when the loss becomes NaN or infinite;
            otherwise raise :class:`NonFiniteError`.
        stop_when: Called as ``stop_when(updates_done)`` after every update; training ends early when it
            returns true.
    """
    generator = torch.Generator().manual_seed(seed)
    stream = batches(len(y), batch_size, generator)
    log = TrainLog()
    if snapshot_every > 0:
        log.snapshots.append(flat_params(model))
        log.snapshot_steps.append(0)
    report_every = max(1, steps // 50)
    for step in range(steps):
        index = next(stream)
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[index]), y[index])
        value = float(loss.detach())
        if not torch.isfinite(loss):
            if not stop_on_nonfinite:
                raise NonFiniteError(f"train: loss became {value} at step {step}; lower the learning rate")
            log.diverged = True
            break
        torch.autograd.backward(loss)
        if after_backward is not None:
            after_backward(step, loss.detach(), index)
        optimizer.step()
        log.losses.append(value)
        if on_step is not None:
            on_step(step, value)
        if snapshot_every > 0 and ((step + 1) % snapshot_every == 0 or step + 1 == steps):
            log.snapshots.append(flat_params(model))
            log.snapshot_steps.append(step + 1)
        if progress is not None and (step + 1) % report_every == 0:
            progress(step + 1, steps)
        if stop_when is not None and stop_when(step + 1):
            break
    return log
