"""Diagnose a user's script: load ``model``, ``loss_fn`` and ``data`` from it and train under a Monitor.

The script format (a .py file, executed once with ``runpy``; the names are checked before any training):

- ``model``: a ``torch.nn.Module``;
- ``loss_fn``: ``loss_fn(model(inputs), targets) -> scalar tensor``;
- ``data``: an ``(inputs, targets)`` pair of tensors with one row per sample (mini-batches of
  ``--batch-size`` are drawn from it with a seeded generator), or an iterable of such pairs (cycled);
- optionally ``optimizer``: a ready ``torch.optim.Optimizer`` over ``model``'s parameters. It is then the one
  trained with and reported (its class and learning rate); ``--optimizer``/``--lr`` are refused with it.
  Without it, ``--optimizer`` (default sgd) with ``--lr`` (default 0.01) is built from torch.optim.

Or a function ``make()`` returning a dict with those keys. Example script::

    import torch
    model = torch.nn.Linear(10, 1)
    loss_fn = torch.nn.functional.mse_loss
    data = (torch.randn(512, 10), torch.randn(512, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)   # optional

An error inside the script is reported as one line pointing at the script's own line. Ctrl-C while training
stops it: the verdict so far is returned, marked partial (:attr:`ScriptRun.interrupted`).
"""

from __future__ import annotations

import itertools
import math
import runpy
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ravine.diagnose._config import MonitorConfig
from ravine.diagnose._lr_range import LRRangeResult, lr_range_test
from ravine.diagnose._monitor import Monitor
from ravine.diagnose._records import Verdict
from ravine.errors import ConfigError, DataError, RavineError

__all__ = [
    "FORMAT",
    "OPTIMIZERS",
    "ScriptError",
    "ScriptRun",
    "describe_optimizer",
    "diagnose_script",
    "load_script",
    "lr_range_script",
]

FORMAT = (
    "The script defines model (a torch.nn.Module), loss_fn (loss_fn(model(inputs), targets) -> scalar tensor) "
    "and data (an (inputs, targets) pair of tensors, or an iterable of such batches), and optionally optimizer "
    "(a torch.optim.Optimizer over model's parameters, then trained with and reported as it is) — as "
    "module-level names or in a dict returned by make()."
)
"""The script format in one paragraph (for ``--help`` and error messages)."""

DEFAULT_OPTIMIZER, DEFAULT_LR = "sgd", 0.01

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "adagrad": lambda params, lr: torch.optim.Adagrad(params, lr=lr),
    "rmsprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr),
    "adadelta": lambda params, lr: torch.optim.Adadelta(params, lr=lr),
}


class ScriptError(ConfigError):
    """The user's script raised, or does not follow the format; the message points at the script's line."""


@dataclass
class ScriptRun:
    """What :func:`diagnose_script` did.

    Attributes:
        monitor: The Monitor that watched the training (its history, verdict, probes).
        verdict: The verdict at the end (or at the interruption).
        steps: Optimizer steps trained.
        requested: Steps asked for.
        optimizer: The optimizer trained with, as text (class and hyper-parameters, e.g. ``SGD(lr=1e-05)``).
        source: "script" when the script built the optimizer, "command line" otherwise.
        interrupted: True when training was stopped early (Ctrl-C): the verdict is the one so far.
    """

    monitor: Monitor
    verdict: Verdict
    steps: int
    requested: int
    optimizer: str
    source: str
    interrupted: bool = False

    @property
    def description(self) -> str:
        """One line for a report: what was trained, with what, for how long."""
        partial = (
            f" — PARTIAL: interrupted after {self.steps} of {self.requested} steps"
            if self.interrupted
            else ""
        )
        return f"{self.steps} steps with {self.optimizer} (from the {self.source}){partial}"


def _user_frame(error: BaseException, target: Path) -> str:
    """``file:line: code`` of the deepest frame in the user's script, or '' if none."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == target]
    if not frames:
        return ""
    frame = frames[-1]
    code = f": {frame.line.strip()}" if frame.line else ""
    return f"{target.name}:{frame.lineno}{code}"


def _script_error(error: BaseException, target: Path, what: str) -> ScriptError:
    where = _user_frame(error, target)
    place = f" at {where}" if where else ""
    return ScriptError(f"diagnose script: {what}{place}: {type(error).__name__}: {error}")


def load_script(path: Path | str) -> dict[str, Any]:
    """Run the script and return its checked ``model``, ``loss_fn``, ``data`` (and ``optimizer`` if given).

    Raises:
        ScriptError: The file is missing, raises (the message names the script's line), or lacks a name of
            the format (see :data:`FORMAT`).
    """
    target = Path(path).expanduser().resolve()
    if not target.is_file():
        raise ScriptError(f"diagnose script: no such file {str(path)!r}; pass a .py file. {FORMAT}")
    if target.suffix != ".py":
        raise ScriptError(f"diagnose script: {target.name} is not a .py file. {FORMAT}")
    try:
        namespace = runpy.run_path(str(target), run_name="__ravine_script__")
        found = namespace["make"]() if callable(namespace.get("make")) else namespace
    except RavineError:
        raise
    except Exception as error:
        raise _script_error(error, target, f"{target.name} raised") from None
    if not isinstance(found, dict):
        raise ScriptError(f"diagnose script: make() must return a dict, got {type(found).__name__}. {FORMAT}")
    missing = [name for name in ("model", "loss_fn", "data") if name not in found]
    if missing:
        raise ScriptError(f"diagnose script: {target.name} does not define {', '.join(missing)}. {FORMAT}")
    parts = {k: found[k] for k in ("model", "loss_fn", "data", "optimizer") if k in found}
    _check_parts(parts, target)
    return parts


def _check_parts(parts: dict[str, Any], target: Path) -> None:
    model, loss_fn, data = parts["model"], parts["loss_fn"], parts["data"]
    name = target.name
    if not isinstance(model, torch.nn.Module):
        raise ScriptError(
            f"diagnose script: {name}: model must be a torch.nn.Module, got {type(model).__name__}"
        )
    if not callable(loss_fn):
        raise ScriptError(f"diagnose script: {name}: loss_fn must be callable, got {type(loss_fn).__name__}")
    optimizer = parts.get("optimizer")
    if optimizer is not None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ScriptError(
                f"diagnose script: {name}: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not any(id(p) in held for p in model.parameters()):
            raise ScriptError(f"diagnose script: {name}: optimizer holds none of model's parameters")
    if _is_pair(data):
        x, y = data
        if len(x) == 0:
            raise DataError(f"diagnose script: {name}: data is empty")
        if len(x) != len(y):
            raise DataError(f"diagnose script: {name}: data has {len(x)} inputs but {len(y)} targets")
    elif not hasattr(data, "__iter__"):
        raise ScriptError(
            f"diagnose script: {name}: data must be an (inputs, targets) pair of tensors or an iterable of "
            f"batches, got {type(data).__name__}"
        )


def _is_pair(data: Any) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor)


def _batches(data: Any, batch_size: int, seed: int) -> Iterator[tuple[Any, Any]]:
    if _is_pair(data):
        x, y = data
        generator = torch.Generator().manual_seed(seed)
        while True:
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, max(len(x) - batch_size + 1, 1), batch_size):
                rows = order[start : start + batch_size]
                yield x[rows], y[rows]
    else:
        for batch in itertools.cycle(data):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise ScriptError(
                    f"diagnose script: each batch of data must be an (inputs, targets) pair, got "
                    f"{type(batch).__name__}"
                )
            yield batch[0], batch[1]


def describe_optimizer(optimizer: torch.optim.Optimizer) -> str:
    """The optimizer's class and the hyper-parameters of its first group that differ from its defaults.

    Example:
        >>> params = [torch.nn.Parameter(torch.zeros(2))]
        >>> describe_optimizer(torch.optim.SGD(params, lr=1e-5, momentum=0.9))
        'SGD(lr=1e-05, momentum=0.9)'
    """
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    shown = ["lr"] + [k for k in ("momentum", "betas", "weight_decay", "eps", "alpha") if k in group]
    defaults = getattr(optimizer, "defaults", {})
    items = [
        f"{k}={group[k]!r}" if not isinstance(group[k], float) else f"{k}={group[k]:g}"
        for k in shown
        if k in group and (k == "lr" or group[k] != _constructor_default(optimizer, k, defaults))
    ]
    return f"{type(optimizer).__name__}({', '.join(items)})"


def _constructor_default(optimizer: torch.optim.Optimizer, key: str, defaults: dict[str, Any]) -> Any:
    import inspect

    try:
        parameter = inspect.signature(type(optimizer).__init__).parameters.get(key)
    except (TypeError, ValueError):
        return defaults.get(key)
    return parameter.default if parameter is not None else defaults.get(key)


def _check_numbers(steps: int, lr: float | None, batch_size: int, seed: int) -> None:
    for name, value, low in (("steps", steps, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"diagnose script: {name} must be an integer >= {low}, got {name}={value!r}")
    if lr is not None and (
        isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0
    ):
        raise ConfigError(f"diagnose script: lr must be a finite number > 0, got lr={lr!r}")


StepCallback = Callable[[Monitor, int, int], object]
"""``on_step(monitor, step, total)`` after each optimizer step (e.g. a live panel)."""


@dataclass
class _Setup:
    target: Path
    model: torch.nn.Module
    loss_fn: Callable[..., Any]
    optimizer: torch.optim.Optimizer
    source: str
    batches: Iterator[tuple[Any, Any]]
    """Starts with the batch already checked by one forward pass and loss."""


def _prepare(
    path: Path | str, *, optimizer: str | None, lr: float | None, batch_size: int, seed: int, command: str
) -> _Setup:
    """Load the script, pick the optimizer (the script's own, or one named on the command line) and check one
    forward pass and loss on the first batch, so that the script's mistakes show before any work."""
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise ConfigError(f"{command}: optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer=}")
    parts = load_script(path)
    target = Path(path).expanduser().resolve()
    model, loss_fn = parts["model"], parts["loss_fn"]
    opt = parts.get("optimizer")
    if opt is not None:
        given = [
            f"--{name} {value}" for name, value in (("optimizer", optimizer), ("lr", lr)) if value is not None
        ]
        if given:
            raise ConfigError(
                f"{command}: {target.name} builds its own optimizer, {describe_optimizer(opt)}, which is the "
                f"one used; drop {' and '.join(given)} (or remove `optimizer` from the script)"
            )
        source = "script"
    else:
        opt = OPTIMIZERS[optimizer or DEFAULT_OPTIMIZER](
            [p for p in model.parameters() if p.requires_grad], DEFAULT_LR if lr is None else lr
        )
        source = "command line"
    batches = _batches(parts["data"], batch_size, seed)
    first = next(batches)
    try:  # one forward and loss before any training: the script's mistakes show now, at its own line
        value = loss_fn(model(first[0]), first[1])
    except Exception as error:
        raise _script_error(error, target, "model(inputs) or loss_fn(outputs, targets) failed") from None
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ScriptError(
            f"{command}: loss_fn must return a scalar tensor, got {type(value).__name__}"
            + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else "")
        )
    del value
    return _Setup(target, model, loss_fn, opt, source, itertools.chain([first], batches))


def lr_range_script(
    path: Path | str,
    *,
    optimizer: str | None = None,
    batch_size: int = 64,
    seed: int = 0,
    num_steps: int = 100,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
) -> tuple[LRRangeResult, str]:
    """The LR range test (:func:`ravine.diagnose.lr_range_test`) on a script's model, loss and data.

    The sweep runs on copies: the script's model and optimizer are left as they were. The optimizer is the
    script's own if it builds one (its other hyper-parameters kept), else ``optimizer`` from
    :data:`OPTIMIZERS`. ``num_steps`` batches are drawn from the data (cycled if it has fewer).

    Returns:
        The result and the optimizer swept, as text.
    """
    _check_numbers(num_steps, None, batch_size, seed)
    setup = _prepare(
        path, optimizer=optimizer, lr=None, batch_size=batch_size, seed=seed, command="diagnose lr-range"
    )
    batches = list(itertools.islice(setup.batches, num_steps))
    result = lr_range_test(
        setup.model, setup.optimizer, setup.loss_fn, batches,
        start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, seed=seed,
    )  # fmt: skip
    return result, describe_optimizer(setup.optimizer)


def diagnose_script(
    path: Path | str,
    *,
    steps: int = 500,
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int = 64,
    seed: int = 0,
    config: MonitorConfig | None = None,
    on_step: StepCallback | None = None,
) -> ScriptRun:
    """Train the script's model for ``steps`` optimizer steps under a Monitor.

    Everything is checked before training: the numbers, the script's names (see :data:`FORMAT`), and one
    forward pass and loss on the first batch. Ctrl-C during training stops it and returns the run so far,
    with ``interrupted=True``.

    Args:
        path: The script.
        steps: Optimizer steps.
        optimizer: One of :data:`OPTIMIZERS` when the script builds none (default "sgd"); refused when it does.
        lr: Its learning rate (default 0.01); refused when the script builds its own optimizer.
        batch_size: Mini-batch size drawn from a full-batch ``data``.
        seed: Seed of the batch order and of the monitor.
        config: The monitor's configuration.
        on_step: Called as ``on_step(monitor, step, steps)`` after each step.
    """
    _check_numbers(steps, lr, batch_size, seed)
    setup = _prepare(
        path, optimizer=optimizer, lr=lr, batch_size=batch_size, seed=seed, command="diagnose script"
    )
    model, loss_fn, opt, source, batches = (
        setup.model,
        setup.loss_fn,
        setup.optimizer,
        setup.source,
        setup.batches,
    )
    target = setup.target
    first = next(batches)
    monitor = Monitor(model, opt, loss_fn=loss_fn, config=config, seed=seed)
    done, interrupted = 0, False
    batch = first
    try:
        while done < steps:
            x, y = batch
            opt.zero_grad()
            try:
                loss = loss_fn(model(x), y)
                loss.backward()
            except Exception as error:
                raise _script_error(error, target, f"training step {done} failed") from None
            monitor.step(loss, batch=(x, y))
            opt.step()
            done += 1
            if on_step is not None:
                on_step(monitor, done, steps)
            if done < steps:
                batch = next(batches)
    except KeyboardInterrupt:
        interrupted = True
    verdict = monitor.verdict()
    monitor.close()
    return ScriptRun(monitor, verdict, done, steps, describe_optimizer(opt), source, interrupted)
