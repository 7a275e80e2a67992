"""Diagnose a user's script: load ``model``, ``loss_fn`` and ``data`` from it and train under a Monitor.

The contract: the script (a .py file, executed with ``runpy``) defines either a function ``make()`` returning
a dict, or these names at module level:

- ``model``: a ``torch.nn.Module``;
- ``loss_fn``: ``loss_fn(model(inputs), targets) -> scalar tensor``;
- ``data``: an ``(inputs, targets)`` pair (full batch; mini-batches of ``--batch-size`` are drawn from it
  with a seeded generator) or an iterable of such pairs (cycled);
- optionally ``optimizer``: a ready ``torch.optim.Optimizer`` over ``model``'s parameters (else the CLI's
  ``--optimizer``/``--lr`` choice builds one from torch.optim).
"""

from __future__ import annotations

import itertools
import runpy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ravine.diagnose import Monitor, MonitorConfig
from ravine.errors import ConfigError, DataError

__all__ = ["OPTIMIZERS", "diagnose_script", "load_script"]

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "adagrad": lambda params, lr: torch.optim.Adagrad(params, lr=lr),
    "rmsprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr),
    "adadelta": lambda params, lr: torch.optim.Adadelta(params, lr=lr),
}


def load_script(path: Path | str) -> dict[str, Any]:
    """Run the script and return its ``model``, ``loss_fn``, ``data`` (and ``optimizer`` if given)."""
    target = Path(path)
    if not target.is_file():
        raise ConfigError(f"diagnose script: no such file {str(target)!r}")
    namespace = runpy.run_path(str(target))
    found: dict[str, Any] = namespace["make"]() if callable(namespace.get("make")) else namespace
    missing = [name for name in ("model", "loss_fn", "data") if name not in found]
    if missing:
        raise ConfigError(
            f"diagnose script {target.name}: define {missing} (or a make() returning them); see ravine.diagnose.script"
        )
    if not isinstance(found["model"], torch.nn.Module):
        raise ConfigError(
            f"diagnose script: model must be a torch.nn.Module, got {type(found['model']).__name__}"
        )
    return {k: found[k] for k in ("model", "loss_fn", "data", "optimizer") if k in found}


def _batches(data: Any, batch_size: int, seed: int) -> Iterator[tuple[Any, Any]]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
        if len(x) == 0:
            raise DataError("diagnose script: data is empty")
        generator = torch.Generator().manual_seed(seed)
        while True:
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, max(len(x) - batch_size + 1, 1), batch_size):
                rows = order[start : start + batch_size]
                yield x[rows], y[rows]
    else:
        yield from itertools.cycle(data)


def diagnose_script(
    path: Path | str,
    *,
    steps: int = 500,
    optimizer: str = "sgd",
    lr: float = 0.01,
    batch_size: int = 64,
    seed: int = 0,
    config: MonitorConfig | None = None,
) -> Monitor:
    """Train the script's model for ``steps`` optimizer steps under a Monitor and return the monitor."""
    parts = load_script(path)
    model, loss_fn = parts["model"], parts["loss_fn"]
    opt = parts.get("optimizer")
    if opt is None:
        if optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"diagnose script: optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer=}"
            )
        opt = OPTIMIZERS[optimizer]([p for p in model.parameters() if p.requires_grad], lr)
    monitor = Monitor(model, opt, loss_fn=loss_fn, config=config, seed=seed)
    batches = _batches(parts["data"], batch_size, seed)
    for _ in range(steps):
        x, y = next(batches)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        monitor.step(loss, batch=(x, y))
        opt.step()
    monitor.verdict()
    monitor.close()
    return monitor
