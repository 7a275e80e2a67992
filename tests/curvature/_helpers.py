"""Small problems and independent dense references (``torch.func.hessian`` of a flat-parameter loss)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor, nn
from torch.func import functional_call

LossFn = Callable[[Tensor, Tensor], Tensor]
F64 = torch.float64


@contextmanager
def torch_jit_quiet() -> Iterator[None]:
    """torch's first ``jvp`` scripts its decompositions and warns (DeprecationWarning); not ours to fix here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is", category=DeprecationWarning)
        yield


@dataclass(frozen=True)
class Problem:
    """A model, a loss, full-batch data and the dense truth computed without ravine."""

    name: str
    model: nn.Module
    loss_fn: LossFn
    x: Tensor
    y: Tensor
    hessian: Tensor
    eigenvalues: Tensor
    eigenvectors: Tensor

    @property
    def n(self) -> int:
        return int(self.hessian.shape[0])


def flat_loss(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor
) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """The model's parameters as one flat vector and the full-batch loss as a function of it."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def loss_of(flat: Tensor) -> Tensor:
        pieces = torch.split(flat, sizes)
        values = {
            name: piece.reshape(shape) for name, piece, shape in zip(names, pieces, shapes, strict=True)
        }
        return loss_fn(functional_call(model, values, (x,)), y)

    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return theta, loss_of


def dense_hessian(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor) -> Tensor:
    """∇²L by ``torch.func.hessian`` (forward-over-reverse of the whole flat function), independent of ravine."""
    theta, loss_of = flat_loss(model, loss_fn, x, y)
    with torch_jit_quiet():
        hessian: Tensor = torch.func.hessian(loss_of)(theta)
    return hessian


def dense_gauss_newton(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor) -> Tensor:
    """Jᵀ H_out J with J the Jacobian of all outputs and H_out the Hessian of the loss in the outputs."""
    theta, _ = flat_loss(model, loss_fn, x, y)
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def outputs_of(flat: Tensor) -> Tensor:
        pieces = torch.split(flat, sizes)
        values = {
            name: piece.reshape(shape) for name, piece, shape in zip(names, pieces, shapes, strict=True)
        }
        out: Tensor = functional_call(model, values, (x,))
        return out

    outputs = outputs_of(theta).detach()
    J = torch.func.jacrev(outputs_of)(theta).reshape(outputs.numel(), -1)
    with torch_jit_quiet():
        H_out = torch.func.hessian(lambda o: loss_fn(o.reshape(outputs.shape), y))(outputs.reshape(-1))
    gn: Tensor = J.T @ H_out @ J
    return gn


def _data(
    seed: int, inputs: tuple[int, ...], count: int, classes: int | None, outputs: int = 1
) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, *inputs, generator=generator, dtype=F64)
    if classes is None:
        return x, torch.randn(count, outputs, generator=generator, dtype=F64)
    return x, torch.randint(0, classes, (count,), generator=generator)


def build(name: str) -> tuple[nn.Module, LossFn, Tensor, Tensor]:
    """A fresh, seeded model, its loss and full-batch data (no reference computed)."""
    torch.manual_seed(7)
    if name == "mlp-mse":
        model: nn.Module = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))
        x, y = _data(1, (3,), 40, None, 2)
        loss_fn: LossFn = nn.functional.mse_loss
    elif name == "mlp-ce":
        model = nn.Sequential(nn.Linear(4, 5), nn.Softplus(), nn.Linear(5, 5), nn.GELU(), nn.Linear(5, 3))
        x, y = _data(2, (4,), 36, 3)
        loss_fn = nn.functional.cross_entropy
    elif name == "cnn-ce":
        model = nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3)
        )
        x, y = _data(3, (1, 4, 4), 30, 3)
        loss_fn = nn.functional.cross_entropy
    else:  # pragma: no cover
        raise KeyError(name)
    return model.to(F64), loss_fn, x, y


@cache
def problem(name: str) -> Problem:
    """One of ``"mlp-mse"`` (n = 38), ``"mlp-ce"`` (n = 73), ``"cnn-ce"`` (n = 47), with its dense truth."""
    model, loss_fn, x, y = build(name)
    hessian = dense_hessian(model, loss_fn, x, y)
    values, vectors = torch.linalg.eigh(hessian)
    return Problem(name, model, loss_fn, x, y, hessian, values, vectors)


PROBLEMS = ("mlp-mse", "mlp-ce", "cnn-ce")


def split(x: Tensor, y: Tensor, sizes: list[int]) -> list[tuple[Tensor, Tensor]]:
    """``(x, y)`` cut into consecutive batches of the given (unequal) sizes."""
    assert sum(sizes) == x.shape[0]
    return list(zip(torch.split(x, sizes), torch.split(y, sizes), strict=True))


def relative_error(a: Tensor, b: Tensor) -> float:
    """max |a − b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max())
