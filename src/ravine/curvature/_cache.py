"""A cache of each batch's linearised gradient, so that a Hessian-vector product is one backward pass.

``torch.func.vjp(grad(L_b), θ)`` runs batch b's forward and backward once and returns a pullback, the
transpose of the Jacobian of ∇L_b at θ; as that Jacobian is the (symmetric) Hessian H_b, the pullback of v is
H_b v. Kept while the parameters stay put, every further product costs a second backward only, instead of
a forward-over-reverse pass (``jvp`` of ``grad``) per product.

The price is memory: each pullback holds the graph of its batch's forward and backward (activations and
their gradients). :class:`PullbackCache` estimates it from the sizes of the modules' outputs and keeps the
pullbacks only within a budget. A cached state is recognised by a fingerprint (storage, version counter,
dtype, device and shape of every parameter, buffer and data tensor, and the operator's settings) and, for
the differentiated parameters, by their values: an in-place update (an optimizer step, ``load_state_dict``,
``p.data.copy_``, which does not advance the version counter) invalidates it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeAlias

import torch
from torch import Tensor, nn

from ravine.curvature._data import iter_batches
from ravine.curvature._model import human_bytes
from ravine.errors import ConfigError, MemoryBudgetError

__all__ = ["AUTO_MAX_BATCHES", "CacheSetting", "PullbackCache", "activation_meter", "fingerprint"]

CacheSetting: TypeAlias = bool | Literal["auto"]
AUTO_MAX_BATCHES = 8
"""``cache="auto"`` caches a single batch or a list/tuple of at most this many batches."""

_GRAPH_FACTOR = 4
"""Graph bytes per byte of module outputs: the activations, their gradients and what double backward keeps."""

Pullback = Callable[[dict[str, Tensor]], tuple[dict[str, Tensor]]]


def _version(tensor: Tensor) -> int:
    try:
        return int(tensor._version)
    except RuntimeError:  # inference tensors have no version counter (and cannot be changed outside it)
        return -1


def _describe(tensor: Tensor) -> Hashable:
    return (tensor.data_ptr(), _version(tensor), tensor.dtype, tensor.device, tuple(tensor.shape))


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _tensors(item)


def is_replayable(data: object) -> bool:
    """Whether ``data`` is a single batch or a list/tuple of batches (cheap to fingerprint and re-read)."""
    return isinstance(data, tuple | list | Mapping)


def fingerprint(model: nn.Module, data: object, settings: tuple[Hashable, ...]) -> tuple[Hashable, ...]:
    """What must stay equal for a cached linearisation to stay valid (besides the parameters' values)."""
    parts: list[Hashable] = [settings, id(data)]
    parts += [(name, _describe(p)) for name, p in model.named_parameters()]
    parts += [(name, _describe(b)) for name, b in model.named_buffers()]
    if is_replayable(data):
        parts += [_describe(t) for batch in iter_batches(data) for t in _tensors(batch)]
    return tuple(parts)


@contextmanager
def activation_meter(model: nn.Module) -> Iterator[list[int]]:
    """Count the bytes of the tensors the model's leaf modules output while the context is open."""
    counter = [0]

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        counter[0] += sum(t.numel() * t.element_size() for t in _tensors(output))

    handles = [m.register_forward_hook(hook) for m in model.modules() if next(m.children(), None) is None]
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()


def estimate_graph_bytes(output_bytes: int, input_bytes: int, param_bytes: int) -> int:
    """Memory a batch's cached pullback holds, estimated from its activations and the parameters' size."""
    return _GRAPH_FACTOR * (output_bytes + input_bytes) + 2 * param_bytes


class PullbackCache:
    """The per-batch pullbacks of one parameter state, within a memory budget.

    Args:
        setting: ``"auto"``, ``True`` or ``False`` (see :class:`~ravine.curvature.HessianOperator`).
        max_bytes: Budget for the estimated memory of all the cached pullbacks.
    """

    def __init__(self, setting: CacheSetting, max_bytes: int) -> None:
        if setting not in ("auto", True, False):
            raise ConfigError(f"curvature: cache must be 'auto', True or False, got {setting!r}")
        if max_bytes <= 0:
            raise ConfigError(f"curvature: max_cache_bytes must be positive, got {max_bytes=}")
        self.setting = setting
        self.max_bytes = int(max_bytes)
        self.over_budget = False
        self.entries: list[tuple[float, Pullback]] = []
        self.count = 0
        self.estimated_bytes = 0
        self.builds = 0
        self._flat: Tensor | None = None
        self._key: tuple[Hashable, ...] | None = None
        self._filling = False

    def wanted(self, data: object) -> bool:
        """Whether products on ``data`` should go through the cache at all."""
        if self.setting is False:
            return False
        if self.setting is True:
            return True
        if self.over_budget or not is_replayable(data):
            return False
        return _is_pair(data) or len(data) <= AUTO_MAX_BATCHES  # type: ignore[arg-type]

    def valid(self, flat: Tensor, key: tuple[Hashable, ...]) -> bool:
        """Whether the pullbacks held were built at these parameter values and this fingerprint."""
        return (
            self._flat is not None
            and key == self._key
            and self._flat.shape == flat.shape
            and self._flat.dtype == flat.dtype
            and self._flat.device == flat.device
            and torch.equal(self._flat, flat)
        )

    def clear(self) -> None:
        """Drop every pullback (and the memory its graph holds)."""
        self.entries, self.count, self.estimated_bytes = [], 0, 0
        self._flat, self._key, self._filling = None, None, False

    def start(self, flat: Tensor, key: tuple[Hashable, ...]) -> None:
        """Begin filling the cache for a new parameter state."""
        self.clear()
        self._flat, self._key, self._filling = flat, key, True
        self.builds += 1

    def offer(self, scale: float, weight: int, pullback: Pullback, graph_bytes: int) -> None:
        """Keep a batch's pullback (its products count ``scale`` times, its weight ``weight``) within budget."""
        if not self._filling:
            return
        if self.estimated_bytes + graph_bytes > self.max_bytes:
            needed = self.estimated_bytes + graph_bytes
            self.clear()
            self.over_budget = True
            if self.setting is True:
                raise MemoryBudgetError(
                    f"curvature: caching the Hessian's pullbacks needs at least {human_bytes(needed)} (estimated), "
                    f"over max_cache_bytes={human_bytes(self.max_bytes)}; raise max_cache_bytes, pass fewer or "
                    "smaller batches, or cache='auto' / cache=False to recompute every product instead"
                )
            return
        self.entries.append((scale, pullback))
        self.count += weight
        self.estimated_bytes += graph_bytes

    def finish(self) -> None:
        """The pass is over: the pullbacks held now cover all the data (or nothing is cached)."""
        self._filling = False

    @property
    def holds(self) -> bool:
        """Whether a complete set of pullbacks is held."""
        return self._flat is not None and not self._filling


def _is_pair(data: object) -> bool:
    return isinstance(data, Mapping) or (
        isinstance(data, tuple) and len(data) == 2 and isinstance(data[1], Tensor)
    )


def apply_pullback(
    pullback: Pullback,
    rows: Tensor,
    unflatten: Callable[[Tensor], dict[str, Tensor]],
    flatten: Callable[[dict[str, Tensor]], Tensor],
) -> Tensor:
    """``(k, n)`` products H_b u for the rows u, one backward per vector."""
    return torch.stack([flatten(pullback(unflatten(u))[0]) for u in rows.unbind(0)])


def param_bytes(tensors: Sequence[Tensor]) -> int:
    """Bytes of a list of tensors."""
    return sum(t.numel() * t.element_size() for t in tensors)
