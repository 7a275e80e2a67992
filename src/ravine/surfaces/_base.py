"""A 2-D error surface: loss and gradient as torch functions of a (..., 2) tensor of points (x, y)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ravine.errors import ConfigError, DataError

__all__ = ["CallableSurface", "Minimum", "Surface", "as_surface", "check_points"]

Bounds = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Minimum:
    """A known minimum of a surface.

    Attributes:
        point: (x, y).
        value: Loss there.
        kind: ``"global"`` or ``"local"``.
    """

    point: tuple[float, float]
    value: float
    kind: str = "global"


def check_points(theta: torch.Tensor, *, where: str) -> None:
    """Raise :class:`DataError` unless ``theta`` is a floating tensor of shape (..., 2)."""
    if not isinstance(theta, torch.Tensor):
        raise DataError(
            f"{where}: points must be a torch.Tensor of shape (..., 2), got {type(theta).__name__}"
        )
    if theta.ndim == 0 or theta.shape[-1] != 2:
        raise DataError(
            f"{where}: points must have shape (..., 2) (last axis = (x, y)), got shape {tuple(theta.shape)}"
        )
    if not theta.is_floating_point():
        raise DataError(f"{where}: points must be floating point, got dtype {theta.dtype}; use float64")


class Surface(abc.ABC):
    """An analytic 2-D error surface L(x, y).

    Subclasses implement :meth:`loss` and, for a fast path, the closed-form :meth:`gradient`; the base
    class falls back to autograd. Points are tensors of shape (..., 2); results keep the leading shape.

    Attributes:
        name: Short name (the CLI's and the registry's key).
        title: One line for figure titles.
        start: Default start point (x, y).
        minima: Known minima, global first, then local ones.
        bounds: ((x_min, x_max), (y_min, y_max)) for contour maps.
        saddles: Known saddle points (x, y), marked on contour maps.
    """

    name: str = "surface"
    title: str = "a 2-D error surface"
    start: tuple[float, float] = (0.0, 0.0)
    minima: tuple[Minimum, ...] = ()
    bounds: Bounds = ((-2.0, 2.0), (-2.0, 2.0))
    saddles: tuple[tuple[float, float], ...] = ()

    @abc.abstractmethod
    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """L at each point: shape (..., 2) -> (...)."""

    def gradient(self, theta: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """∇L at each point, shape (..., 2); written into ``out`` when given (the runner's fast path)."""
        grad = autograd_gradient(self.loss, theta, where=f"surface {self.name!r}")
        if out is None:
            return grad
        return out.copy_(grad)

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        check_points(theta, where=f"surface {self.name!r}")
        return self.loss(theta)

    @property
    def global_minima(self) -> tuple[Minimum, ...]:
        """The global minima among :attr:`minima`."""
        return tuple(m for m in self.minima if m.kind == "global")

    @property
    def min_value(self) -> float:
        """The lowest known loss (0.0 when no minimum is known)."""
        return min((m.value for m in self.minima), default=0.0)

    def start_tensor(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """:attr:`start` as a (2,) tensor."""
        return torch.tensor(self.start, dtype=dtype)

    def __repr__(self) -> str:
        return f"<Surface {self.name}: {self.title}>"


def autograd_gradient(
    fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, *, where: str
) -> torch.Tensor:
    """∇fn at each point by autograd; checks that fn gives one scalar per point."""
    with torch.enable_grad():
        point = theta.detach().clone().requires_grad_(True)
        value = fn(point)
        _check_values(value, theta, where=where)
        (grad,) = torch.autograd.grad(value.sum(), point, allow_unused=True, materialize_grads=True)
    return grad.detach()


def _check_values(value: object, theta: torch.Tensor, *, where: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{where}: the function must return a torch.Tensor, got {type(value).__name__}")
    expected = tuple(theta.shape[:-1])
    if tuple(value.shape) != expected:
        raise DataError(
            f"{where}: the function must return one scalar per point, i.e. shape {expected} for points of "
            f"shape {tuple(theta.shape)}, got shape {tuple(value.shape)}; reduce over the last axis only "
            "(e.g. use theta[..., 0] and theta[..., 1])"
        )


class CallableSurface(Surface):
    """Wrap a user's function ``f(theta) -> loss``, theta of shape (..., 2), loss of shape (...).

    The gradient comes from autograd. The function must be written with torch operations on
    ``theta[..., 0]`` and ``theta[..., 1]`` so that it works on any batch of points.

    Example:
        >>> import torch
        >>> s = CallableSurface(lambda t: (t**2).sum(-1), name="sphere", start=(1.0, 2.0))
        >>> s.gradient(torch.tensor([[1.0, 2.0]], dtype=torch.float64)).tolist()
        [[2.0, 4.0]]
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        name: str = "custom",
        title: str | None = None,
        start: Sequence[float] = (0.0, 0.0),
        minima: Sequence[Minimum] = (),
        bounds: Bounds | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"CallableSurface: fn must be callable, got {type(fn).__name__}")
        if len(start) != 2:
            raise DataError(f"CallableSurface {name!r}: start must be (x, y), got {tuple(start)}")
        self.fn = fn
        self.name = name
        self.title = title or f"user surface {name}"
        self.start = (float(start[0]), float(start[1]))
        self.minima = tuple(minima)
        if bounds is None:
            xs = [self.start[0], *(m.point[0] for m in self.minima)]
            ys = [self.start[1], *(m.point[1] for m in self.minima)]
            bounds = (_padded(min(xs), max(xs)), _padded(min(ys), max(ys)))
        self.bounds = bounds

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        value = self.fn(theta)
        _check_values(value, theta, where=f"surface {self.name!r}")
        return value

    def gradient(self, theta: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        grad = autograd_gradient(self.fn, theta, where=f"surface {self.name!r}")
        if out is None:
            return grad
        return out.copy_(grad)


def _padded(low: float, high: float) -> tuple[float, float]:
    span = max(high - low, 1.0)
    return (low - 0.3 * span, high + 0.3 * span)


def as_surface(obj: Surface | str | Callable[[torch.Tensor], torch.Tensor]) -> Surface:
    """A :class:`Surface` from a surface, a registered name, or a callable (wrapped, autograd gradient)."""
    if isinstance(obj, Surface):
        return obj
    if isinstance(obj, str):
        from ravine.surfaces._library import get_surface

        return get_surface(obj)
    if callable(obj):
        return CallableSurface(obj)
    raise ConfigError(
        f"as_surface: expected a Surface, a surface name or a callable, got {type(obj).__name__}"
    )
