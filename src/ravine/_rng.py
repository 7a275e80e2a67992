"""Random numbers of ravine's own passes, drawn from private generators, never from the training's.

ravine runs the user's forward pass in its own passes (the Monitor's probes, the curvature operators' products
in train mode): dropout, noise layers, a module's own ``torch.Generator``. Seeding the process-wide generator
and restoring it afterwards (``torch.manual_seed`` + ``torch.random.fork_rng``) is not enough: another thread's
draws between the save and the restore are rewound (two runs in two threads replay each other's dropout masks),
and a generator owned by a module is not saved at all. Instead, :func:`private_randomness` installs a
:class:`~torch.utils._python_dispatch.TorchDispatchMode` — thread-local, so other threads never see it — that
hands every seeded aten operation (``bernoulli_``, ``rand``, ``randn``, ``normal_``, ``randperm``,
dropout...) a private generator in place of whatever generator it was given (the global CPU/CUDA ones or a
model's own). No generator the training uses is read, advanced or reseeded. A seeded operation that cannot be
given a generator (fused RNN or attention kernels with dropout) raises :class:`PrivateRandomnessError` instead
of drawing. Nested blocks keep their own generators: a thread has one mode, which draws from the innermost
block's generators (one mode, not one per block: each mode costs a Python call per aten operation).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ravine.errors import RavineError

__all__ = ["Draws", "PrivateGenerators", "PrivateRandomnessError", "private_randomness"]

_aten = torch.ops.aten
_active = threading.local()
"""``_active.blocks``: (generators, who draws, their draws) of the blocks open in this thread, innermost last."""


class PrivateRandomnessError(RavineError, RuntimeError):
    """A random operation that cannot be given a private generator (it would draw from the training's)."""


class PrivateGenerators:
    """Private generators, one per device, seeded from one seed (never the training's).

    Args:
        seed: Seed of the generators (the ``i``-th device's is ``seed + 7919·i``).

    Example:
        >>> generators = PrivateGenerators(3)
        >>> a = torch.rand(2, generator=generators.for_device("cpu"))
        >>> generators.reseed(3)
        >>> torch.equal(a, torch.rand(2, generator=generators.for_device("cpu")))
        True
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

    def reseed(self, seed: int) -> None:
        """Restart every generator from ``seed`` (the same streams as a fresh ``PrivateGenerators(seed)``)."""
        self.seed = seed
        for i, generator in enumerate(self._by_device.values()):
            generator.manual_seed(seed + 7919 * i)


class Draws:
    """How many random operations a :func:`private_randomness` block gave its generators (0: it drew nothing,
    so the same deterministic pass needs no block)."""

    def __init__(self) -> None:
        self.count = 0


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
    """Gives every seeded aten operation a private generator (see the module docstring)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in torch._disable_dynamo (≈10 µs per operation); these passes
        # run eagerly, outside any compiled region, so the wrapper is only overhead.
        return False

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

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
        generators, what, draws = _active.blocks[-1]
        device = _device_of(args, kwargs)
        rewrite = _REWRITES.get(func)
        if rewrite is not None:
            draws.count += 1
            return rewrite(generators.for_device(device), *args, **kwargs)
        names = [argument.name for argument in func._schema.arguments]
        if "generator" not in names and _draws_nothing(func, names, args, kwargs):
            return func(*args, **kwargs)
        if "generator" not in names:
            sibling = _with_generator(func)
            if sibling is None:
                raise PrivateRandomnessError(
                    f"{what}: {func} draws random numbers without a generator argument, so it cannot be "
                    "kept off the training's generators (e.g. a fused RNN or attention kernel with dropout); "
                    "evaluate in eval mode or with dropout=0"
                )
            kwargs.update(zip(names, args, strict=False))
            kwargs["generator"] = generators.for_device(device)
            draws.count += 1
            return sibling(**kwargs)
        position = names.index("generator")
        if position < len(args):
            args = (*args[:position], None, *args[position + 1 :])
        kwargs["generator"] = generators.for_device(device)
        draws.count += 1
        return func(*args, **kwargs)


@contextlib.contextmanager
def private_randomness(generators: PrivateGenerators, what: str = "ravine") -> Iterator[Draws]:
    """Draw every random number in this thread's block from ``generators`` (see the module docstring).

    Args:
        generators: The block's private generators.
        what: Who draws, for the error of an operation that cannot be redirected.

    Yields:
        The block's :class:`Draws` (counted when the block exits).

    Example:
        >>> before = torch.random.get_rng_state()
        >>> with private_randomness(PrivateGenerators(0)) as draws:
        ...     _ = torch.nn.functional.dropout(torch.ones(4), 0.5)
        >>> torch.equal(before, torch.random.get_rng_state()), draws.count
        (True, 1)
    """
    stack: tuple[tuple[PrivateGenerators, str, Draws], ...] = getattr(_active, "blocks", ())
    draws = Draws()
    _active.blocks = (*stack, (generators, what, draws))
    try:
        if stack:  # this thread's mode is on: it now draws from these generators
            yield draws
        else:
            with _PrivateRandomness():
                yield draws
    finally:
        _active.blocks = stack
