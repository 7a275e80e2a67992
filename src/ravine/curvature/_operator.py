"""The Hessian (and Gauss-Newton) of a model's mean loss over a whole data set, as a linear operator.

H v is computed forward-over-reverse with :mod:`torch.func` (``jvp`` of ``grad`` of a ``functional_call``),
batch by batch, each batch weighted by its size, so that the result is the Hessian of the mean loss over all
samples. Under :mod:`torch.distributed` each rank holds a shard of the data and the sums are all-reduced.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, jvp, vjp, vmap

from ravine.curvature._data import DataLike, batch_size, check_data, iter_batches, move_batch
from ravine.curvature._warnings import RavineWarning
from ravine.errors import (
    ConfigError,
    CurvatureError,
    DataError,
    MemoryBudgetError,
    NonFiniteError,
    RavineError,
)

__all__ = ["GGNOperator", "HessianOperator", "human_bytes"]

LossFn = Callable[[Any, Any], Tensor]
_MODE_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd, nn.GroupNorm, nn.LayerNorm)
_STOCHASTIC = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def human_bytes(num_bytes: float) -> str:
    """``1536`` → ``'1.5 KiB'``."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


def _jvp_with_targets(fn: Callable[[Any, Any], Any], primal: Any, tangent: Any, targets: Any) -> Any:
    """``jvp`` of ``fn(·, targets)``; floating targets get an explicit zero tangent.

    torch's forward-mode formula of ``mse_loss``'s backward writes into the (implicit, immutable) zero
    tangent of a constant target ("ZeroTensors are immutable"); a materialised zero tangent avoids it.
    """
    if isinstance(targets, Tensor) and targets.is_floating_point():
        return jvp(fn, (primal, targets), (tangent, torch.zeros_like(targets)))[1]
    return jvp(lambda p: fn(p, targets), (primal,), (tangent,))[1]


class _CurvatureOperator:
    """Shared machinery: parameter selection, data passes, train/eval mode, distributed reduction."""

    _what = "curvature"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: DataLike,
        *,
        params: Sequence[str] | Sequence[nn.Parameter] | None = None,
        dtype: torch.dtype | None = None,
        train_mode: bool = False,
        distributed: bool | None = None,
        process_group: Any = None,
        max_dense_bytes: int = 2**30,
        chunk_size: int | None = 64,
        allow_zero: bool = False,
        seed: int = 0,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError(f"curvature: model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise ConfigError(f"curvature: loss_fn must be callable, got {type(loss_fn).__name__}")
        if max_dense_bytes <= 0:
            raise ConfigError(f"curvature: max_dense_bytes must be positive, got {max_dense_bytes=}")
        check_data(data)
        self.model = model
        self.loss_fn = loss_fn
        self.data = data
        self.train_mode = train_mode
        self.max_dense_bytes = int(max_dense_bytes)
        self.chunk_size = chunk_size
        self.allow_zero = allow_zero
        self.seed = seed
        self.num_hvps = 0
        self._names = self._select(params)
        named = dict(model.named_parameters())
        first = named[self._names[0]]
        if dtype is not None and not dtype.is_floating_point:
            raise ConfigError(f"curvature: dtype must be a floating dtype, got {dtype=}")
        self.dtype: torch.dtype = dtype or first.dtype
        self.device: torch.device = first.device
        self._shapes = [named[name].shape for name in self._names]
        self._numels = [named[name].numel() for name in self._names]
        self._numel = sum(self._numels)
        if distributed is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        elif distributed and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            raise ConfigError(
                "curvature: distributed=True needs an initialised torch.distributed process group"
            )
        self.distributed = bool(distributed)
        self.process_group = process_group
        self._num_samples: int | None = None
        self._checked_nonzero = False
        self._warn_about_layers()

    # ----------------------------------------------------------------------------------------- set-up
    def _select(self, params: Sequence[str] | Sequence[nn.Parameter] | None) -> list[str]:
        named = dict(self.model.named_parameters())
        if params is None:
            names = [name for name, p in named.items() if p.requires_grad]
            if not names:
                raise ConfigError(
                    f"curvature: none of the model's {len(named)} parameters requires grad (all frozen); "
                    "unfreeze some with p.requires_grad_(True) or pass params=[...]"
                )
            return names
        if isinstance(params, str | nn.Parameter | Tensor):
            params = [params]
        if len(params) == 0:
            raise ConfigError("curvature: params is empty; pass None for all parameters or some names")
        by_id = {id(p): name for name, p in named.items()}
        selected: list[str] = []
        for item in params:
            if isinstance(item, str):
                if item not in named:
                    raise ConfigError(
                        f"curvature: no parameter named {item!r}; the model has {sorted(named)[:12]}"
                    )
                selected.append(item)
            elif isinstance(item, Tensor) and id(item) in by_id:
                selected.append(by_id[id(item)])
            else:
                raise ConfigError(
                    f"curvature: params must hold parameter names or the model's parameters, got {item!r}"
                )
        frozen = [name for name in selected if not named[name].requires_grad]
        if frozen:
            raise ConfigError(
                f"curvature: selected parameters do not require grad: {frozen}; "
                "call requires_grad_(True) on them or leave them out of params"
            )
        if len(set(selected)) != len(selected):
            raise ConfigError(f"curvature: params lists a parameter twice: {selected}")
        return selected

    def _warn_about_layers(self) -> None:
        found = [
            name or type(m).__name__ for name, m in self.model.named_modules() if isinstance(m, _STOCHASTIC)
        ]
        if not found:
            return
        if self.train_mode:
            message = (
                f"curvature: model has BatchNorm/Dropout layers ({', '.join(found[:4])}); train_mode=True "
                "uses batch statistics and a dropout mask fixed per batch (seeded), so H is one fixed "
                "matrix; running statistics are left untouched"
            )
        else:
            message = (
                f"curvature: model has BatchNorm/Dropout layers ({', '.join(found[:4])}); the Hessian is "
                "evaluated in eval mode (running statistics, no dropout) and the model's mode is restored "
                "afterwards; pass train_mode=True to keep train-mode behaviour"
            )
        warnings.warn(message, RavineWarning, stacklevel=4)

    # ------------------------------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, int]:
        """``(n, n)`` with n the number of selected parameters."""
        return (self._numel, self._numel)

    @property
    def parameter_names(self) -> list[str]:
        """Names of the selected parameters, in the order of the flat vector."""
        return list(self._names)

    @property
    def num_samples(self) -> int:
        """Number of samples over all batches (and all ranks); computed by the first pass."""
        if self._num_samples is None:
            self.loss()
        assert self._num_samples is not None
        return self._num_samples

    def parameters_flat(self) -> Tensor:
        """The selected parameters' current values as one flat vector in the operator's dtype."""
        named = dict(self.model.named_parameters())
        return torch.cat([named[name].detach().reshape(-1).to(self.dtype) for name in self._names])

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Split a flat vector (or a ``(k, n)`` batch of them) into ``{name: tensor}`` shaped like the params."""
        lead = flat.shape[:-1]
        if flat.shape[-1] != self._numel:
            raise ConfigError(
                f"curvature: expected vectors of length {self._numel}, got shape {tuple(flat.shape)}"
            )
        pieces = torch.split(flat, self._numels, dim=-1)
        return {
            name: piece.reshape(*lead, *shape)
            for name, piece, shape in zip(self._names, pieces, self._shapes, strict=False)
        }

    def _flatten(self, tensors: dict[str, Tensor], lead: int = 0) -> Tensor:
        return torch.cat(
            [tensors[name].reshape(*tensors[name].shape[:lead], -1) for name in self._names], dim=-1
        )

    # ----------------------------------------------------------------------------------------- passes
    def _constants(self) -> dict[str, Tensor]:
        chosen = set(self._names)
        out: dict[str, Tensor] = {}
        for name, p in self.model.named_parameters():
            if name not in chosen:
                out[name] = p.detach().to(self.dtype) if p.is_floating_point() else p.detach()
        for name, buffer in self.model.named_buffers():
            value = buffer.detach()
            if value.is_floating_point():
                value = value.to(self.dtype)
            # train-mode BatchNorm updates its running statistics in place: give it copies
            out[name] = value.clone() if self.train_mode else value
        return out

    @contextmanager
    def _mode(self) -> Iterator[None]:
        saved = [(module, module.training) for module in self.model.modules()]
        self.model.train(self.train_mode)
        try:
            yield
        finally:
            for module, training in saved:
                module.training = training

    def _loss_of(
        self, variables: dict[str, Tensor], constants: dict[str, Tensor], args: Any, targets: Any
    ) -> Tensor:
        outputs = functional_call(self.model, (variables, constants), args)
        return self._loss_of_outputs(outputs, targets)

    def _loss_of_outputs(self, outputs: Any, targets: Any) -> Tensor:
        loss = self.loss_fn(outputs, targets)
        if not isinstance(loss, Tensor):
            raise CurvatureError(f"curvature: loss_fn must return a tensor, got {type(loss).__name__}")
        if loss.dim() != 0:
            raise CurvatureError(
                f"curvature: loss_fn must return a scalar (the mean loss of the batch), got shape "
                f"{tuple(loss.shape)}; use reduction='mean' or call .mean()"
            )
        return loss

    def _pass(
        self,
        what: str,
        per_batch: Callable[[dict[str, Tensor], dict[str, Tensor], Any, Any], Tensor],
        empty: tuple[tuple[int, ...], torch.dtype],
        params: Tensor | None = None,
    ) -> Tensor:
        """Size-weighted mean over all batches (and ranks) of ``per_batch``'s flat result."""
        variables = (
            self.unflatten(params.to(self.dtype))
            if params is not None
            else self.unflatten(self.parameters_flat())
        )
        constants = self._constants()
        total: Tensor | None = None
        count = 0
        try:
            with self._mode():
                for index, batch in enumerate(iter_batches(self.data)):
                    size = batch_size(batch)
                    if size == 0:
                        continue
                    args, targets = move_batch(batch, self.dtype, self.device)
                    if self.train_mode:
                        with torch.random.fork_rng(devices=[]):
                            torch.manual_seed(self.seed * 1_000_003 + index)
                            value = per_batch(variables, constants, args, targets)
                    else:
                        value = per_batch(variables, constants, args, targets)
                    value = value.detach() * size
                    total = value if total is None else total + value
                    count += size
        except RavineError:
            raise
        except (RuntimeError, NotImplementedError, TypeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CurvatureError(
                f"curvature: torch.func could not compute the {what} ({type(error).__name__}: {first}); every "
                "operation of the model and loss must be twice differentiable with torch.func (forward-mode "
                "AD over reverse mode) — custom autograd.Functions need setup_context and jvp"
            ) from error
        if self.distributed:
            packed = torch.zeros(1, dtype=torch.float64, device=self.device)
            packed[0] = count
            torch.distributed.all_reduce(packed, group=self.process_group)
            if total is None:
                total = torch.zeros(empty[0], dtype=empty[1], device=self.device)
            torch.distributed.all_reduce(total, group=self.process_group)
            count = int(packed.item())
        if count == 0 or total is None:
            raise DataError("curvature: data is empty (no samples in any batch)")
        self._num_samples = count
        return total / count

    # ------------------------------------------------------------------------------ value, gradient
    def loss(self, params: Tensor | None = None) -> float:
        """Mean loss over all the data, at the current parameters or at a flat vector ``params``."""

        def per_batch(v: dict[str, Tensor], c: dict[str, Tensor], args: Any, targets: Any) -> Tensor:
            with torch.no_grad():
                return self._loss_of(v, c, args, targets).reshape(1).to(torch.float64)

        value = float(self._pass("loss", per_batch, ((1,), torch.float64), params)[0].item())
        if not math.isfinite(value):
            raise NonFiniteError(
                f"curvature: the loss is {value} at the given parameters; check the inputs and model"
            )
        return value

    def gradient(self) -> Tensor:
        """The full-data gradient ∇L as a flat vector (in the operator's dtype)."""

        def per_batch(v: dict[str, Tensor], c: dict[str, Tensor], args: Any, targets: Any) -> Tensor:
            g, value = grad_and_value(lambda p: self._loss_of(p, c, args, targets))(v)
            if not torch.isfinite(value):
                raise NonFiniteError(
                    f"curvature: the loss of a batch is {value.item()}; check the data and model"
                )
            return self._flatten(g)

        g = self._pass("gradient", per_batch, ((self._numel,), self.dtype))
        if not torch.isfinite(g).all():
            raise NonFiniteError("curvature: the gradient has NaN/inf entries; check the data and model")
        return g

    # ----------------------------------------------------------------------------------- products
    def _batch_products(
        self, v: dict[str, Tensor], c: dict[str, Tensor], args: Any, targets: Any, vectors: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def matmat(self, V: Tensor) -> Tensor:
        """Product with the columns of ``V`` (shape ``(n, k)``); counts k products in :attr:`num_hvps`."""
        if V.dim() != 2 or V.shape[0] != self._numel:
            raise ConfigError(f"curvature: matmat expects shape ({self._numel}, k), got {tuple(V.shape)}")
        k = V.shape[1]
        rows = V.T.to(device=self.device, dtype=self.dtype).contiguous()

        def per_batch(v: dict[str, Tensor], c: dict[str, Tensor], args: Any, targets: Any) -> Tensor:
            outs = []
            step = k if self.chunk_size is None else max(1, self.chunk_size)
            for start in range(0, k, step):
                block = rows[start : start + step]
                if block.shape[0] == 1:
                    single = self._batch_products(v, c, args, targets, self.unflatten(block[0]))
                    outs.append(self._flatten(single)[None])
                else:
                    fn = vmap(
                        lambda u: self._flatten(self._batch_products(v, c, args, targets, self.unflatten(u))),
                        randomness="same",
                    )
                    outs.append(fn(block))
            return torch.cat(outs)

        result = self._pass(f"{self._what}-vector product", per_batch, ((k, self._numel), self.dtype))
        self.num_hvps += k
        if not torch.isfinite(result).all():
            raise NonFiniteError(
                f"curvature: the {self._what}-vector product has NaN/inf entries; the loss or its derivatives "
                "are not finite at these parameters"
            )
        if not self._checked_nonzero and k > 0:
            self._checked_nonzero = True
            if not self.allow_zero and bool((result == 0).all()) and bool((rows != 0).any()):
                self._check_not_identically_zero()
        return result.T

    def _check_not_identically_zero(self) -> None:
        probe = torch.randn(
            self._numel,
            1,
            dtype=self.dtype,
            device=self.device,
            generator=torch.Generator(device=self.device).manual_seed(12345),
        )
        self.num_hvps -= 1  # the probe is ravine's, not the caller's
        if bool((self.matmat(probe) == 0).all()):
            raise CurvatureError(
                f"curvature: the {self._what}-vector product is identically zero, so second derivatives do not "
                "reach the selected parameters: an operation is not twice differentiable (e.g. round, sign, "
                "argmax, detach, a custom autograd.Function with a non-differentiable backward) or the loss is "
                "piecewise linear in them. Pass allow_zero=True if a zero matrix is expected"
            )

    def matvec(self, v: Tensor) -> Tensor:
        """The product with one flat vector ``v`` of length n."""
        if v.dim() != 1:
            raise ConfigError(
                f"curvature: matvec expects a flat vector of length {self._numel}, got {tuple(v.shape)}"
            )
        return self.matmat(v[:, None])[:, 0]

    def __matmul__(self, other: Tensor) -> Tensor:
        return self.matvec(other) if other.dim() == 1 else self.matmat(other)

    def dense(self) -> Tensor:
        """The whole n × n matrix (for small models); raises :class:`MemoryBudgetError` if it would not fit."""
        n = self._numel
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        needed = n * n * itemsize
        if needed > self.max_dense_bytes:
            raise MemoryBudgetError(
                f"curvature: the dense {n:,} × {n:,} {self._what} matrix in {self.dtype} needs "
                f"{human_bytes(needed)}, over the limit max_dense_bytes={human_bytes(self.max_dense_bytes)}; use "
                "lanczos() / spectral_density() on the operator, select fewer params, or raise max_dense_bytes"
            )
        columns = [
            self.matmat(torch.eye(n, dtype=self.dtype, device=self.device)[:, s : s + 256])
            for s in range(0, n, 256)
        ]
        H = torch.cat(columns, dim=1)
        return (H + H.T) / 2

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={self._numel:,}, dtype={self.dtype}, params={len(self._names)} tensors)"
        )


class HessianOperator(_CurvatureOperator):
    """The Hessian H = ∇²L(θ) of the mean loss over all the data, as a linear operator.

    L(θ) = (1/N) Σ_b n_b · loss_fn(model(x_b; θ), y_b): every batch is weighted by its size, so any split of
    the data into batches (of equal or unequal sizes) gives the Hessian of the full-batch mean loss.
    H v is forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad``): about 2–3 gradients' cost.

    Args:
        model: The network; its parameters are read afresh on every product.
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's *mean* loss as a scalar.
        data: ``(inputs, targets)``, a list of such batches, or a ``DataLoader``. Inputs may be a tuple of
            tensors (passed as ``model(*inputs)``). Under torch.distributed, this rank's shard.
        params: Parameter names or parameters to differentiate (default: all that require grad).
        dtype: Working dtype (default: the model's); ``torch.float64`` for checks.
        train_mode: Keep BatchNorm/Dropout in train mode (default: eval mode, the model's mode restored).
        distributed: All-reduce over the default process group (default: if one is initialised).
        process_group: The group to reduce over (default: the world).
        max_dense_bytes: Largest matrix :meth:`dense` may build (default 1 GiB).
        chunk_size: Vectors per ``vmap`` call in :meth:`matmat` (memory vs speed).
        allow_zero: Accept an identically-zero Hessian instead of raising :class:`CurvatureError`.
        seed: Seed of dropout masks in train mode.

    Example:
        >>> import torch
        >>> from ravine.curvature import HessianOperator
        >>> model = torch.nn.Linear(2, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = model.weight.fill_(0.5)
        >>> x, y = torch.eye(2), torch.zeros(2, 1)
        >>> H = HessianOperator(model, torch.nn.functional.mse_loss, (x, y))
        >>> H.shape, (H @ torch.tensor([1.0, 0.0])).tolist()
        ((2, 2), [1.0, 0.0])
    """

    _what = "Hessian"

    def _batch_products(
        self, v: dict[str, Tensor], c: dict[str, Tensor], args: Any, targets: Any, vectors: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        def gradient(p: dict[str, Tensor], t: Any) -> dict[str, Tensor]:
            return grad(lambda q: self._loss_of(q, c, args, t))(p)  # type: ignore[no-any-return]

        products: dict[str, Tensor] = _jvp_with_targets(gradient, v, vectors, targets)
        return products


class GGNOperator(_CurvatureOperator):
    """The generalised Gauss-Newton matrix G = Jᵀ H_out J of the mean loss (positive semi-definite for convex losses).

    J is the Jacobian of the model's outputs with respect to the parameters and H_out the Hessian of the loss
    with respect to the outputs. G drops the second-order term Σ (∂loss/∂out)·∇²out of the Hessian, which is
    the term that carries negative curvature. Same arguments as :class:`HessianOperator`.
    """

    _what = "Gauss-Newton"

    def _batch_products(
        self, v: dict[str, Tensor], c: dict[str, Tensor], args: Any, targets: Any, vectors: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        def outputs_of(p: dict[str, Tensor]) -> Any:
            return functional_call(self.model, (p, c), args)

        forward = jvp(outputs_of, (v,), (vectors,))
        outputs, jv = forward[0], forward[1]

        def loss_gradient(o: Any, t: Any) -> Any:
            return grad(lambda q: self._loss_of_outputs(q, t))(o)

        hjv = _jvp_with_targets(loss_gradient, outputs, jv, targets)
        pullback = vjp(outputs_of, v)[1]
        products: dict[str, Tensor] = pullback(hjv)[0]
        return products
