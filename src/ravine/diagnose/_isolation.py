"""Running a probe on the live model without touching the training run's random numbers or buffers.

A probe runs the user's forward pass (dropout, noise layers, a module's own ``torch.Generator``) in train
mode. Saving and restoring the process-wide RNG around it (``torch.random.fork_rng``) is not enough: another
thread's draws between the save and the restore are rewound (two monitored runs in two threads would replay
each other's dropout masks), and a generator owned by a module is not saved at all. Instead, :func:`isolated`
installs a :class:`~torch.utils._python_dispatch.TorchDispatchMode` — thread-local, so other threads never
see it — that hands every seeded aten operation (``bernoulli_``, ``rand``, ``randn``, ``normal_``,
``randperm``, dropout...) the probe's private generator in place of whatever generator it was given (the
global CPU/CUDA ones or a model's own). No generator the training uses is read or advanced. A seeded
operation that cannot be given a generator (fused RNN or attention kernels with dropout) raises
:class:`ProbeIsolationError` instead of drawing: the probe is skipped, the run is untouched.

Module buffers (BatchNorm running statistics) are copied before the probe and written back after it.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ravine.errors import RavineError

__all__ = ["ProbeGenerators", "ProbeIsolationError", "isolated"]

_aten = torch.ops.aten
_active = threading.local()


class ProbeIsolationError(RavineError, RuntimeError):
    """A probe met a random operation it cannot redirect to its private generator (it is skipped)."""


class ProbeGenerators:
    """The probe's private generators, one per device, seeded from one seed (never the training's).

    Args:
        seed: Seed of the probe's random numbers.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._by_device: dict[torch.device, torch.Generator] = {}

    def for_device(self, device: torch.device | str | None) -> torch.Generator:
        """The private generator of ``device`` (created on first use)."""
        key = torch.device(device if device is not None else "cpu")
        if str(key) == "cuda":  # no index: the current device
            key = torch.device("cuda", torch.cuda.current_device())
        generator = self._by_device.get(key)
        if generator is None:
            generator = torch.Generator(device=key).manual_seed(self.seed + 7919 * len(self._by_device))
            self._by_device[key] = generator
        return generator


def _device_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.device:
    device = kwargs.get("device")
    if device is not None:
        return torch.device(device)
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")


def _native_dropout(generator: torch.Generator, x: torch.Tensor, p: float, train: bool | None) -> Any:
    if not train or p == 0:
        return x.clone(), torch.ones_like(x, dtype=torch.bool)
    keep = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator)
    mask = keep.to(torch.bool)
    scale = 0.0 if p >= 1 else 1.0 / (1.0 - p)
    return x * keep * scale, mask


_SEEDED: dict[Any, bool] = {}
"""Whether an aten operation draws random numbers (cached per operation)."""

# Seeded operations without a ``generator`` argument nor a sibling overload that takes one, rewritten.
_REWRITES: dict[Any, Callable[..., Any]] = {_aten.native_dropout.default: _native_dropout}


@functools.cache
def _with_generator(func: Any) -> Any:
    """The overload of ``func``'s operator with the same arguments plus ``generator`` (None if there is none)."""
    names = {argument.name for argument in func._schema.arguments} | {"generator"}
    packet = func.overloadpacket
    for overload in packet.overloads():
        sibling = getattr(packet, overload)
        if {argument.name for argument in sibling._schema.arguments} == names:
            return sibling
    return None


def _draws_nothing(func: Any, names: list[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a seeded kernel without a generator argument (fused RNNs, attention) draws nothing this time:
    its dropout probability is 0 or it runs in eval mode. Then it is deterministic and runs as it is."""
    bound = dict(zip(names, args, strict=False)) | kwargs
    for name in ("dropout", "dropout_p", "p"):
        if name in bound and isinstance(bound[name], (int, float)) and bound[name] == 0:
            return True
    return "train" in bound and bound["train"] is False


class _PrivateRandomness(TorchDispatchMode):
    """Gives every seeded aten operation the probe's generator (see the module docstring)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in torch._disable_dynamo (≈10 µs per operation); probes run
        # eagerly, outside any compiled region, so the wrapper is only overhead.
        return False

    def __init__(self, generators: ProbeGenerators) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.generators = generators
        self.redirected = 0

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        seeded = _SEEDED.get(func)
        if seeded is None:
            seeded = _SEEDED[func] = torch.Tag.nondeterministic_seeded in func.tags
        if not seeded:
            return func(*args, **(kwargs or {}))
        kwargs = dict(kwargs or {})
        device = _device_of(args, kwargs)
        rewrite = _REWRITES.get(func)
        if rewrite is not None:
            self.redirected += 1
            return rewrite(self.generators.for_device(device), *args, **kwargs)
        names = [argument.name for argument in func._schema.arguments]
        if "generator" not in names and _draws_nothing(func, names, args, kwargs):
            return func(*args, **kwargs)
        if "generator" not in names:
            sibling = _with_generator(func)
            if sibling is None:
                raise ProbeIsolationError(
                    f"probe skipped: {func} draws random numbers without a generator argument, so it cannot "
                    "be kept off the training's generators (e.g. a fused RNN or attention kernel with dropout)"
                )
            kwargs.update(zip(names, args, strict=False))
            kwargs["generator"] = self.generators.for_device(device)
            self.redirected += 1
            return sibling(**kwargs)
        position = names.index("generator")
        if position < len(args):
            args = (*args[:position], None, *args[position + 1 :])
        kwargs["generator"] = self.generators.for_device(device)
        self.redirected += 1
        return func(*args, **kwargs)


@contextlib.contextmanager
def isolated(model: nn.Module, generators: ProbeGenerators | None = None) -> Iterator[None]:
    """Run a probe without side effects on the model's buffers or on any generator the training uses.

    Args:
        model: The live model (its buffers are restored afterwards).
        generators: The probe's private generators. None: those of the enclosing ``isolated`` block in this
            thread if there is one, else a fresh set seeded with 0.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
        >>> before = torch.random.get_rng_state()
        >>> with isolated(model):
        ...     _ = model(torch.ones(2, 4))
        >>> torch.equal(before, torch.random.get_rng_state())
        True
    """
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    outer = getattr(_active, "generators", None)
    try:
        if outer is not None and generators is None:  # nested inside an isolated probe: its mode is on
            yield
        else:
            _active.generators = generators or ProbeGenerators(0)
            try:
                with _PrivateRandomness(_active.generators):
                    yield
            finally:
                _active.generators = outer
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
