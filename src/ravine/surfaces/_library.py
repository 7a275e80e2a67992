"""The built-in surfaces: the lecture's ravine (two versions), the crescent, the saddle, a valley with a
local dip that momentum rolls through, and Rosenbrock. Each has a closed-form gradient and known minima."""

from __future__ import annotations

import math

import torch

from ravine.errors import ConfigError
from ravine.surfaces._base import Minimum, Surface

__all__ = [
    "Crescent",
    "DipValley",
    "LogCoshRavine",
    "Ravine",
    "Rosenbrock",
    "Saddle",
    "get_surface",
    "surface_names",
]


def _write(out: torch.Tensor | None, gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    if out is None:
        return torch.stack((gx, gy), dim=-1)
    return torch.stack((gx, gy), dim=-1, out=out)


class Ravine(Surface):
    """The lecture's elongated convex bowl: L = a·u² + b·v², (u, v) = (x, y) rotated by ``angle``.

    u = cos φ·x + sin φ·y is the long flat axis, v = −sin φ·x + cos φ·y the short steep one. With the
    defaults (a=1, b=100, φ=0.02, start (30, 3)) plain GD at η=1e-2 has curvature×η = 2b·η = 2 on the steep
    axis and bounces between the walls forever (loss flat ≈ 576, ‖g‖ ≈ 480), while η=1e-7 crawls (loss
    1480 → 878 in 10⁵ steps). Minimum 0 at the origin.

    Example:
        >>> import torch
        >>> s = Ravine()
        >>> round(float(s.loss(s.start_tensor())), 1)
        1479.0
    """

    name = "ravine"
    bounds = ((-6.0, 34.0), (-5.0, 5.0))

    def __init__(self, *, a: float = 1.0, b: float = 100.0, angle: float = 0.02) -> None:
        if a <= 0 or b <= 0:
            raise ConfigError(f"Ravine: curvatures must be positive, got {a=}, {b=}")
        self.a, self.b, self.angle = float(a), float(b), float(angle)
        self.title = f"ravine: u² + {b:g}·v², rotated {angle:g} rad"
        self.start = (30.0, 3.0)
        self.minima = (Minimum((0.0, 0.0), 0.0),)
        c, s = math.cos(angle), math.sin(angle)
        self._cs = (c, s)
        # ∇L = θ·M with M = 2 Rᵀ diag(a, b) R (symmetric); cached per dtype for the fast path.
        self._m = torch.tensor(
            [
                [2 * (a * c * c + b * s * s), 2 * (a - b) * c * s],
                [2 * (a - b) * c * s, 2 * (a * s * s + b * c * c)],
            ],
            dtype=torch.float64,
        )
        self._m_cache: dict[torch.dtype, torch.Tensor] = {}
        self._loss_cache: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}

    def uv(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotated coordinates (u along the flat axis, v along the steep one)."""
        c, s = self._cs
        x, y = theta[..., 0], theta[..., 1]
        return c * x + s * y, -s * x + c * y

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        # a·u² + b·v² as three operations on any batch of points (the lab evaluates a chunk at once).
        rotation, curvatures = self._loss_consts(theta.dtype)
        uv = torch.mm(theta.reshape(-1, 2), rotation)
        return torch.mv(uv.square_(), curvatures).reshape(theta.shape[:-1])

    def _loss_consts(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        consts = self._loss_cache.get(dtype)
        if consts is None:
            c, s = self._cs
            rotation = torch.tensor([[c, -s], [s, c]], dtype=dtype)  # (x, y) @ rotation = (u, v)
            consts = self._loss_cache[dtype] = (rotation, torch.tensor([self.a, self.b], dtype=dtype))
        return consts

    def gradient(self, theta: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        m = self._m_cache.get(theta.dtype)
        if m is None:
            m = self._m_cache[theta.dtype] = self._m.to(theta.dtype)
        if theta.ndim == 2:
            return torch.mm(theta, m) if out is None else torch.mm(theta, m, out=out)
        grad = torch.matmul(theta, m)
        return grad if out is None else out.copy_(grad)


def _logcosh(z: torch.Tensor) -> torch.Tensor:
    a = z.abs()
    return a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0)


class LogCoshRavine(Surface):
    """The ravine's log-cosh twin: L = a·u² + b·logcosh(k·v), (u, v) rotated by ``angle``.

    Near v = 0 it is the quadratic bowl (curvature b·k² on the steep axis); far from it the steep wall is a
    plane of slope b·k. So GD at η=1e-2 bounces between the walls with a bounded step (the quadratic bowl
    cannot show that together with the next point), and GD at η=1e-7 slides down the wall and then crawls
    along the flat axis. Minimum 0 at the origin.
    """

    name = "logcosh"
    bounds = ((-6.0, 34.0), (-8.0, 8.0))

    def __init__(self, *, a: float = 1.0, b: float = 100.0, k: float = 10.0, angle: float = 0.05) -> None:
        if a <= 0 or b <= 0 or k <= 0:
            raise ConfigError(f"LogCoshRavine: a, b, k must be positive, got {a=}, {b=}, {k=}")
        self.a, self.b, self.k, self.angle = float(a), float(b), float(k), float(angle)
        self.title = f"log-cosh ravine: u² + {b:g}·logcosh({k:g}·v), rotated {angle:g} rad"
        self.start = (30.0, 3.0)
        self.minima = (Minimum((0.0, 0.0), 0.0),)
        c, s = math.cos(angle), math.sin(angle)
        self._cs = (c, s)
        # ∇L = Rᵀ·(2a·u, b·k·tanh(k·v)) with (u, v) = R·θ; as row vectors: θ·A + tanh(θ·P)·B with
        # A = Rᵀ diag(2a, 0) R, P = Rᵀ diag(0, k) and B = diag(0, b·k) R — four tensor operations a step.
        rot = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
        self._consts: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {
            torch.float64: (
                rot.T @ torch.diag(torch.tensor([2 * a, 0.0], dtype=torch.float64)) @ rot,
                rot.T @ torch.diag(torch.tensor([0.0, k], dtype=torch.float64)),
                torch.diag(torch.tensor([0.0, b * k], dtype=torch.float64)) @ rot,
            )
        }

    def uv(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotated coordinates (u along the flat axis, v along the steep one)."""
        c, s = self._cs
        x, y = theta[..., 0], theta[..., 1]
        return c * x + s * y, -s * x + c * y

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        u, v = self.uv(theta)
        return self.a * u * u + self.b * _logcosh(self.k * v)

    def gradient(self, theta: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        consts = self._consts.get(theta.dtype)
        if consts is None:
            f64 = self._consts[torch.float64]
            consts = self._consts[theta.dtype] = (
                f64[0].to(theta.dtype),
                f64[1].to(theta.dtype),
                f64[2].to(theta.dtype),
            )
        lin, inner, outer = consts
        if theta.ndim == 2:
            slope = torch.mm(theta, inner).tanh_()
            grad = torch.mm(theta, lin) if out is None else torch.mm(theta, lin, out=out)
            return grad.addmm_(slope, outer)
        grad = torch.matmul(theta, lin) + torch.matmul(torch.matmul(theta, inner).tanh_(), outer)
        return grad if out is None else out.copy_(grad)


class Crescent(Surface):
    """Distill's banana: f = (1 − x)² + 20·(3y − x²)², minimum 0 at (1, 1/3), start (−1.21, 0.853).

    The valley bends, so the slope along one coordinate changes over time: RMSProp's moving average adapts,
    Adagrad's all-time mean does not.
    """

    name = "crescent"
    title = "crescent: (1 − x)² + 20·(3y − x²)²"
    start = (-1.21, 0.853)
    minima = (Minimum((1.0, 1.0 / 3.0), 0.0),)
    bounds = ((-1.6, 1.6), (-0.4, 1.1))

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        x, y = theta[..., 0], theta[..., 1]
        return (1 - x) ** 2 + 20 * (3 * y - x * x) ** 2

    def gradient(self, theta: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        x, y = theta[..., 0], theta[..., 1]
        r = 3 * y - x * x
        return _write(out, -2 * (1 - x) - 80 * x * r, 120 * r)


class Saddle(Surface):
    """L = (1 − w₁w₂)²: a saddle at the origin (Hessian [[0, −2], [−2, 0]], eigenvalue −2 along [1, 1]) and
    a valley of minima (loss 0) on the hyperbola w₁w₂ = 1; (1, 1) and (−1, −1) are listed."""

    name = "saddle"
    title = "saddle: (1 − w₁w₂)²"
    start = (0.01, -0.008)
    minima = (Minimum((1.0, 1.0), 0.0), Minimum((-1.0, -1.0), 0.0))
    bounds = ((-1.6, 1.6), (-1.6, 1.6))
    saddle_point = (0.0, 0.0)
    saddles = ((0.0, 0.0),)
    escape_direction = (math.sqrt(0.5), math.sqrt(0.5))

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        return (1 - theta[..., 0] * theta[..., 1]) ** 2

    def gradient(self, theta: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        x, y = theta[..., 0], theta[..., 1]
        r = 1 - x * y
        return _write(out, -2 * y * r, -2 * x * r)


class DipValley(Surface):
    """A valley that descends towards a global minimum, with a shallow local dip on the way.

    L = h(x) + c·y², h(x) = s·(x − 4)² − depth·exp(−2·(x + 2)²). The dip near x ≈ −2 is a local minimum
    (plain GD started up the slope stops there); heavy-ball momentum carries enough speed into the dip to
    roll over its rim and on to the global minimum near (4, 0).
    """

    name = "momentum"
    bounds = ((-6.5, 6.5), (-1.5, 1.5))

    def __init__(self, *, slope: float = 0.1, depth: float = 1.5, c: float = 2.0) -> None:
        if slope <= 0 or depth <= 0 or c <= 0:
            raise ConfigError(f"DipValley: slope, depth, c must be positive, got {slope=}, {depth=}, {c=}")
        self.s, self.depth, self.c = float(slope), float(depth), float(c)
        self.title = f"dip valley: {slope:g}·(x − 4)² − {depth:g}·exp(−2(x + 2)²) + {c:g}·y²"
        self.start = (-6.0, 1.0)
        critical = sorted({round(x, 12) for x in (self._newton(x0) for x0 in (-2.2, -1.9, -1.6, 4.0)) if x})
        minima = [x for x in critical if self._h2(x) > 0]
        if len(minima) < 2:
            raise ConfigError(
                f"DipValley: no local dip with {slope=}, {depth=}; deepen it or flatten the slope"
            )
        glob = min(minima, key=self._h)
        locals_ = [Minimum((x, 0.0), self._h(x), "local") for x in minima if x != glob]
        self.minima = (Minimum((glob, 0.0), self._h(glob)), *locals_)

    def _h(self, x: float) -> float:
        return self.s * (x - 4) ** 2 - self.depth * math.exp(-2 * (x + 2) ** 2)

    def _h1(self, x: float) -> float:
        return 2 * self.s * (x - 4) + 4 * self.depth * (x + 2) * math.exp(-2 * (x + 2) ** 2)

    def _h2(self, x: float) -> float:
        e = math.exp(-2 * (x + 2) ** 2)
        return 2 * self.s + 4 * self.depth * e * (1 - 4 * (x + 2) ** 2)

    def _newton(self, x: float) -> float | None:
        for _ in range(100):
            h2 = self._h2(x)
            if h2 == 0:
                return None
            step = self._h1(x) / h2
            x -= step
            if abs(step) < 1e-15:
                return x
        return x if abs(self._h1(x)) < 1e-10 else None

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        x, y = theta[..., 0], theta[..., 1]
        return self.s * (x - 4) ** 2 - self.depth * torch.exp(-2 * (x + 2) ** 2) + self.c * y * y

    def gradient(self, theta: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        x, y = theta[..., 0], theta[..., 1]
        gx = 2 * self.s * (x - 4) + 4 * self.depth * (x + 2) * torch.exp(-2 * (x + 2) ** 2)
        return _write(out, gx, 2 * self.c * y)


class Rosenbrock(Surface):
    """Rosenbrock's valley: (1 − x)² + 100·(y − x²)², minimum 0 at (1, 1), start (−1.2, 1)."""

    name = "rosenbrock"
    title = "Rosenbrock: (1 − x)² + 100·(y − x²)²"
    start = (-1.2, 1.0)
    minima = (Minimum((1.0, 1.0), 0.0),)
    bounds = ((-2.0, 2.0), (-1.0, 3.0))

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        x, y = theta[..., 0], theta[..., 1]
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2

    def gradient(self, theta: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        x, y = theta[..., 0], theta[..., 1]
        r = y - x * x
        return _write(out, -2 * (1 - x) - 400 * x * r, 200 * r)


_REGISTRY: dict[str, type[Surface]] = {
    "ravine": Ravine,
    "logcosh": LogCoshRavine,
    "crescent": Crescent,
    "saddle": Saddle,
    "momentum": DipValley,
    "rosenbrock": Rosenbrock,
}


def surface_names() -> tuple[str, ...]:
    """Names accepted by :func:`get_surface`."""
    return tuple(_REGISTRY)


def get_surface(name: str) -> Surface:
    """A built-in surface by name (see :func:`surface_names`) with its default parameters.

    Raises:
        ConfigError: If the name is unknown; the message lists the known names.
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown surface {name!r}; choose from {', '.join(_REGISTRY)}") from None
    return cls()
