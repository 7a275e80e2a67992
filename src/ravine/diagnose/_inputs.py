"""What the Monitor is given, checked where it is given: the model, the optimizer, the loss, the closure.

Each check raises :class:`~ravine.errors.ConfigError` (or :class:`~ravine.errors.UnsupportedError`) naming
what was received and what to pass instead. :class:`StepCounter` tells the monitor, from the optimizer's own
hooks, whether a step was taken, refused (the optimizer raised, e.g. ravine's ``NonFiniteError``) or not
attempted since the last call, and notices parameters changed by something else. :class:`RecentBatches` keeps
the newest batches given, within a byte limit.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import torch
from torch import nn

from ravine.diagnose._probing import split_batch
from ravine.errors import ConfigError, UnsupportedError

__all__ = [
    "RecentBatches",
    "StepCounter",
    "batch_nbytes",
    "check_closure",
    "check_loss",
    "check_model",
    "check_optimizer",
    "check_probe_inputs",
    "unwrap",
    "unwrap_model",
]


def unwrap(optimizer: Any) -> Any:
    """The torch optimizer inside a framework's wrapper (accelerate's ``AcceleratedOptimizer``, Lightning's
    ``LightningOptimizer``), whose own step hooks would never fire; anything else as it is."""
    seen = 0
    while seen < 4 and isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
        seen += 1
    return optimizer


def unwrap_model(model: object) -> nn.Module:
    """The module inside ``DistributedDataParallel`` / ``DataParallel`` (probes differentiate twice, which
    DDP's gradient hooks do not support, and must not start collectives); any other module as it is."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"Monitor: model must be a torch.nn.Module, got {type(model).__name__}")
    wrappers: tuple[type, ...] = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    module: nn.Module = model
    while isinstance(module, wrappers):
        inner = getattr(module, "module", None)
        if not isinstance(inner, nn.Module):
            break
        module = inner
    return module


def check_model(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The model's trainable (name, parameter) pairs; refuses frozen and meta-device models."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ConfigError("Monitor: the model has no trainable parameters (all have requires_grad=False)")
    meta = [name for name, p in named if p.device.type == "meta"]
    if meta:
        raise UnsupportedError(
            f"Monitor: parameters {meta[:3]} are on the 'meta' device (no values yet); materialise the model "
            "first (model.to_empty(device=...) and initialise it, or load its weights), then build the Monitor"
        )
    return named


def check_optimizer(optimizer: Any, params: Sequence[torch.Tensor]) -> None:
    """The optimizer must look like a torch optimizer and hold at least one of the watched parameters."""
    if optimizer is None:
        return
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list):
        raise ConfigError(
            f"Monitor: optimizer must be a torch.optim.Optimizer (with param_groups), got "
            f"{type(optimizer).__name__}; pass the optimizer that steps the model, or None"
        )
    held = {id(p) for group in groups if isinstance(group, dict) for p in group.get("params", ())}
    if held and not any(id(p) in held for p in params):
        raise ConfigError(
            f"Monitor: the optimizer given ({type(optimizer).__name__}) holds none of the model's trainable "
            "parameters; pass the optimizer that steps this model"
        )


def check_loss(loss: object) -> None:
    """``monitor.step``'s loss must be a number, a tensor with one element, or None."""
    if loss is None or (isinstance(loss, (int, float)) and not isinstance(loss, bool)):
        return
    if isinstance(loss, torch.Tensor):
        if loss.numel() == 0:
            raise ConfigError("Monitor.step: loss is an empty tensor; pass the step's scalar loss")
        return
    hint = " (a tuple: pass the loss itself, e.g. loss[0])" if isinstance(loss, tuple) else ""
    raise ConfigError(
        f"Monitor.step: loss must be a scalar tensor, a number or None, got {type(loss).__name__}{hint}"
    )


def check_probe_loss(value: object, where: str) -> torch.Tensor:
    """A probe's loss (from ``loss_fn`` or a closure) must be a scalar tensor that requires grad."""
    if not isinstance(value, torch.Tensor):
        hint = (
            "; return the loss alone, e.g. lambda out, y: my_loss(out, y)[0]"
            if isinstance(value, tuple)
            else ""
        )
        raise ConfigError(f"Monitor: {where} must return a scalar tensor, got {type(value).__name__}{hint}")
    if value.numel() != 1:
        raise ConfigError(
            f"Monitor: {where} must return a scalar (the batch's mean loss), got shape {tuple(value.shape)}; "
            "use reduction='mean' or .mean()"
        )
    if not value.requires_grad:
        raise ConfigError(
            f"Monitor: {where} returned a loss that does not require grad (computed under no_grad, or "
            "detached?); the probes differentiate it"
        )
    return value


def check_closure(closure: Callable[[], Any], params: Sequence[torch.Tensor]) -> None:
    """Call ``closure`` once with the gradients set aside: it must return the loss and not call backward.

    torch's optimizer closures (``zero_grad(); loss.backward(); return loss``) would overwrite ``p.grad``
    whenever a probe runs; they are refused here, at the first call, with the gradients put back as they were.
    """
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        value = closure()
        touched = any(p.grad is not None for p in params)
    finally:
        for p, grad in zip(params, saved, strict=True):
            p.grad = grad
    if touched:
        raise ConfigError(
            "Monitor.step: the closure calls backward() (a torch.optim-style closure); the probes would "
            "overwrite p.grad. Give a closure that only computes and returns the loss (no zero_grad/backward), "
            "or pass batch=(inputs, targets) with loss_fn"
        )
    check_probe_loss(value, "closure()")


def check_probe_inputs(monitor: Any, batch: Any, closure: Callable[[], Any] | None) -> None:
    """What the probes will be given, tried once: the closure (no backward inside) or ``loss_fn`` on the
    batch slice the probes use (a scalar tensor). Call it inside the monitor's isolation.

    Raises:
        ConfigError: The closure is not callable or calls backward, the batch is not an ``(inputs, targets)``
            pair, or ``loss_fn`` does not return a scalar tensor. The user's own errors propagate as they are.
    """
    if closure is not None:
        if not callable(closure):
            raise ConfigError(f"Monitor.step: closure must be callable, got {type(closure).__name__}")
        check_closure(closure, monitor.params)
    elif monitor.loss_fn is not None and monitor.config.probe_every:
        inputs, targets = split_batch(batch)
        take = monitor.config.probe_batch
        outputs = monitor.model(inputs[:take])
        check_probe_loss(monitor.loss_fn(outputs, targets[:take]), "loss_fn(model(inputs), targets)")


class StepCounter:
    """Counts the optimizer's step attempts (pre-hook) and completed steps (post-hook)."""

    def __init__(self, optimizer: Any, params: Sequence[torch.Tensor]) -> None:
        self.params = list(params)
        self.attempts = 0
        self.steps = 0
        self.handles: list[Any] = []
        self._seen = (0, 0, self.version())
        if optimizer is not None:
            self.handles.append(optimizer.register_step_pre_hook(self._pre))
            self.handles.append(optimizer.register_step_post_hook(self._post))

    def _pre(self, *args: object, **kwargs: object) -> None:
        self.attempts += 1

    def _post(self, *args: object, **kwargs: object) -> None:
        self.steps += 1

    def version(self) -> int:
        """Sum of the parameters' version counters (moves whenever one is changed in place)."""
        return sum(p._version for p in self.params)

    def since_last_call(self) -> tuple[int, int, bool]:
        """(attempts, completed steps, parameters changed) since the previous call of this method."""
        attempts, steps, version = self._seen
        now = self.version()
        self._seen = (self.attempts, self.steps, now)
        return self.attempts - attempts, self.steps - steps, now != version

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def batch_nbytes(batch: Any) -> int:
    """Bytes of the tensors in a batch (``numel × element_size``, through tuples, lists and dicts; a view
    counts its own elements, not its base's: slicing a dataset tensor holds nothing new)."""
    if isinstance(batch, torch.Tensor):
        return batch.numel() * batch.element_size()
    if isinstance(batch, dict):
        return sum(batch_nbytes(value) for value in batch.values())
    if isinstance(batch, (tuple, list)):
        return sum(batch_nbytes(value) for value in batch)
    return 0


class RecentBatches(Sequence[Any]):
    """The newest batches given to ``monitor.step(batch=...)``, oldest first, for
    :func:`~ravine.diagnose.try_remedies` and :func:`~ravine.diagnose.lr_range_test`.

    At most ``count`` batches, and the older ones only while their tensors add up to at most ``max_bytes``
    (the newest is always kept: the monitor holds it anyway, for its probes). References, not copies: what is
    held is what the training loop would otherwise have freed.

    Args:
        count: Most batches kept.
        max_bytes: Most tensor bytes kept beyond the newest batch.
    """

    def __init__(self, count: int, max_bytes: int) -> None:
        self.most, self.max_bytes = count, max_bytes
        self._items: collections.deque[tuple[Any, int]] = collections.deque()

    def append(self, batch: Any) -> None:
        """Keep ``batch`` as the newest; drop the oldest beyond the limits."""
        self._items.append((batch, batch_nbytes(batch)))
        while len(self._items) > self.most or (len(self._items) > 1 and self._older_bytes() > self.max_bytes):
            self._items.popleft()

    def _older_bytes(self) -> int:
        return sum(size for _, size in list(self._items)[:-1])

    @property
    def nbytes(self) -> int:
        """Tensor bytes of the batches kept."""
        return sum(size for _, size in self._items)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [batch for batch, _ in list(self._items)[index]]
        return self._items[index][0]

    def __iter__(self) -> Iterator[Any]:
        return (batch for batch, _ in list(self._items))

    def __repr__(self) -> str:
        return f"RecentBatches({len(self)} batches, {self.nbytes:,} bytes)"
