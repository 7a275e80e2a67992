"""The machinery shared by the Hessian and Gauss-Newton operators: data passes, products, dense().

A pass evaluates a per-batch function at the selected parameters for every batch, weights it by the batch
size and divides by the number of samples, so any split of the data gives the full-batch mean. Under
:mod:`torch.distributed` each rank holds a shard and the weighted sums (and sample counts) are all-reduced.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from ravine._rng import PrivateGenerators, private_randomness
from ravine.curvature._data import DataLike, Prepared, Weighting, check_data, iter_batches, prepare
from ravine.curvature._forward_ad import load_forward_ad
from ravine.curvature._kernels import explain, twice_differentiable
from ravine.curvature._losses import (
    call_loss_fn,
    check_loss_signature,
    check_reduction,
    model_loss,
    shifts_labels,
    warn_lower_precision,
)
from ravine.curvature._model import (
    check_embeddings,
    evaluation_mode,
    frozen_entries,
    human_bytes,
    select_parameters,
    warn_about_layers,
)
from ravine.errors import (
    ConfigError,
    CurvatureError,
    DataError,
    MemoryBudgetError,
    NonFiniteError,
    RavineError,
)

__all__ = ["CurvatureOperator", "LossFn"]

LossFn = Callable[[Any, Any], Tensor]
Reduction = Literal["mean", "sum"]
PerBatch = Callable[[dict[str, Tensor], dict[str, Tensor], Prepared], Tensor]
BatchFn = Callable[[float, dict[str, Tensor], dict[str, Tensor], Prepared], Tensor | None]


class CurvatureOperator:
    """Shared machinery: parameter selection, data passes, train/eval mode, distributed reduction.

    Subclasses define :meth:`_batch_products`, the product of one batch's matrix with one vector.
    """

    _what = "curvature"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn | None = None,
        data: DataLike | None = None,
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
        reduction: Reduction = "mean",
        weighting: Weighting = "auto",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError(f"curvature: model must be a torch.nn.Module, got {type(model).__name__}")
        if loss_fn is not None and not callable(loss_fn):
            raise ConfigError(
                f"curvature: loss_fn must be callable (or None for the model's own outputs.loss), got "
                f"{type(loss_fn).__name__}"
            )
        if loss_fn is not None:
            check_loss_signature(loss_fn)
        check_reduction(loss_fn, reduction, weighting)
        if max_dense_bytes <= 0:
            raise ConfigError(f"curvature: max_dense_bytes must be positive, got {max_dense_bytes=}")
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"curvature: chunk_size must be a positive int or None, got {chunk_size=}")
        if dtype is not None and not dtype.is_floating_point:
            raise ConfigError(f"curvature: dtype must be a floating dtype, got {dtype=}")
        available = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed and not available:
            raise ConfigError(
                "curvature: distributed=True needs an initialised torch.distributed process group; call "
                "torch.distributed.init_process_group(...) first or leave distributed=None"
            )
        self.distributed = bool(available if distributed is None else distributed)
        check_data(data, allow_empty=self.distributed)
        self.model = model
        self.loss_fn = loss_fn
        self.data = data
        self.reduction: Reduction = reduction
        self.weighting: Weighting = weighting
        self._shift = loss_fn is None and shifts_labels(model)
        self._warned_dtype = False
        self.train_mode = train_mode
        self.max_dense_bytes = int(max_dense_bytes)
        self.chunk_size = chunk_size
        self.allow_zero = allow_zero
        self.seed = seed
        self.num_hvps = 0
        self._names = select_parameters(model, params)
        named = dict(model.named_parameters())
        first = named[self._names[0]]
        self.dtype: torch.dtype = dtype or first.dtype
        self.device: torch.device = first.device
        check_embeddings(model, self._names)
        self._shapes = [named[name].shape for name in self._names]
        self._numels = [named[name].numel() for name in self._names]
        self._numel = sum(self._numels)
        self.process_group = process_group
        self._num_samples: int | None = None
        self._checked_nonzero = False
        self._batch_seed = 0
        self._keep = frozen_entries(model, self._names, self.device)
        warn_about_layers(model, train_mode)

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
        if flat.dim() == 0 or flat.shape[-1] != self._numel:
            raise ConfigError(
                f"curvature: expected vectors of length {self._numel} (the number of selected parameters), "
                f"got shape {tuple(flat.shape)}"
            )
        pieces = torch.split(flat, self._numels, dim=-1)
        return {
            name: piece.reshape(*lead, *shape)
            for name, piece, shape in zip(self._names, pieces, self._shapes, strict=True)
        }

    def _flatten(self, tensors: dict[str, Tensor]) -> Tensor:
        return torch.cat([tensors[name].reshape(-1) for name in self._names])

    # ----------------------------------------------------------------------------------------- passes
    def _constants(self) -> dict[str, Tensor]:
        """Parameters that are not selected, and buffers, cast to the working dtype (not differentiated)."""
        chosen = set(self._names)
        out: dict[str, Tensor] = {}
        for name, p in self.model.named_parameters():
            if name not in chosen:
                out[name] = p.detach().to(self.dtype) if p.is_floating_point() else p.detach()
        for name, buffer in self.model.named_buffers():
            value = buffer.detach()
            out[name] = value.to(self.dtype) if value.is_floating_point() else value
        return out

    def _loss_of(self, variables: dict[str, Tensor], constants: dict[str, Tensor], batch: Prepared) -> Tensor:
        outputs = functional_call(self.model, (variables, constants), batch.args, batch.kwargs)
        return self._loss_of_outputs(outputs, batch.targets)

    def _loss_of_outputs(self, outputs: Any, targets: Any) -> Tensor:
        loss = model_loss(outputs) if self.loss_fn is None else call_loss_fn(self.loss_fn, outputs, targets)
        if not isinstance(loss, Tensor):
            raise CurvatureError(f"curvature: loss_fn must return a tensor, got {type(loss).__name__}")
        if loss.dim() != 0:
            raise CurvatureError(
                f"curvature: loss_fn must return a scalar (the mean loss of the batch), got shape "
                f"{tuple(loss.shape)}; use reduction='mean' or call .mean()"
            )
        if loss.dtype != self.dtype and self.dtype == torch.float64 and not self._warned_dtype:
            self._warned_dtype = True
            warn_lower_precision(loss.dtype)
        return loss

    def _reseed(self) -> None:
        """Restart the random stream of the current batch: one dropout mask per batch, whatever the pass."""
        self._rng.reseed(self._batch_seed)

    def _pass(
        self,
        what: str,
        per_batch: PerBatch,
        empty: tuple[tuple[int, ...], torch.dtype],
        params: Tensor | None = None,
    ) -> Tensor:
        """Size-weighted mean over all batches (and ranks) of ``per_batch``'s result."""

        def weighted(size: float, v: Any, c: Any, batch: Prepared) -> Tensor:
            return per_batch(v, c, batch).detach() * size

        total, count = self._run_batches(what, weighted, params)
        return self._reduce(total, count, empty)

    def _run_batches(self, what: str, fn: BatchFn, params: Tensor | None = None) -> tuple[Tensor | None, int]:
        """Call ``fn(scale, variables, constants, batch)`` on every non-empty batch; sum the results.

        ``scale`` is the batch's weight (its rows or counted targets) for a mean loss, 1 for a summed one.
        Runs in the operator's mode (train/eval) with the batch's seed and twice-differentiable kernels,
        draws its random numbers (dropout in train mode) from private generators seeded per batch (never the
        global one, a module's own or another thread's: :mod:`ravine._rng`) — once a pass in this mode drew
        nothing, the next ones skip that block's per-operation cost —, leaves the user's kernel settings as they
        were and turns torch's errors into :class:`CurvatureError`. Returns the local sum and the total weight.
        """
        flat = self.parameters_flat() if params is None else params.to(device=self.device, dtype=self.dtype)
        variables = self.unflatten(flat)
        constants = self._constants()
        total: Tensor | None = None
        count, index = 0, -1
        self._rng = PrivateGenerators(self.seed)
        quiet = getattr(self, "_quiet_mode", None) is self.train_mode  # an earlier pass drew nothing
        try:
            with (
                evaluation_mode(self.model, self.train_mode),
                contextlib.nullcontext() if quiet else private_randomness(self._rng, "curvature") as draws,
                twice_differentiable(self.model),
            ):
                for index, raw in enumerate(iter_batches(self.data)):
                    batch = self._prepare(raw, index)
                    if batch.weight == 0:
                        continue
                    self._batch_seed = self.seed * 1_000_003 + index
                    self._reseed()
                    scale = float(batch.weight) if self.reduction == "mean" else 1.0
                    value = fn(scale, variables, constants, batch)
                    if value is not None:
                        total = value if total is None else total + value
                    count += batch.weight
            if draws is not None and draws.count == 0:
                self._quiet_mode = self.train_mode
        except RavineError:
            raise
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
            raise self._torch_func_error(what, index, error) from error
        return total, count

    def _prepare(self, raw: Any, index: int) -> Prepared:
        return prepare(
            raw,
            index,
            dtype=self.dtype,
            device=self.device,
            model_loss=self.loss_fn is None,
            weighting=self.weighting,
            shift=self._shift,
        )

    def _torch_func_error(self, what: str, index: int, error: Exception) -> CurvatureError:
        return CurvatureError(explain(what, index, error))

    def _reduce(self, total: Tensor | None, count: int, empty: tuple[tuple[int, ...], torch.dtype]) -> Tensor:
        """The mean: all-reduce the sum and the count over the ranks (if distributed), then divide."""
        if self.distributed:
            packed = torch.tensor([float(count)], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(packed, group=self.process_group)
            if total is None:
                total = torch.zeros(empty[0], dtype=empty[1], device=self.device)
            torch.distributed.all_reduce(total, group=self.process_group)
            count = int(packed.item())
        if count == 0 or total is None:
            raise DataError(
                "curvature: data is empty (no samples in any batch); pass (inputs, targets) with at least one "
                "row, a list of such batches or a DataLoader over a non-empty dataset"
            )
        self._num_samples = count
        return total / count if self.reduction == "mean" else total

    # ------------------------------------------------------------------------------ value, gradient
    def loss(self, params: Tensor | None = None) -> float:
        """Mean loss over all the data, at the current parameters or at a flat vector ``params``."""

        def per_batch(v: dict[str, Tensor], c: dict[str, Tensor], batch: Prepared) -> Tensor:
            with torch.no_grad():
                return self._loss_of(v, c, batch).reshape(1).to(torch.float64)

        value = float(self._pass("loss", per_batch, ((1,), torch.float64), params)[0].item())
        if not math.isfinite(value):
            raise NonFiniteError(
                f"curvature: the mean loss is {value} at the given parameters; check the data (NaN/inf inputs or "
                "targets), the model and the loss function (e.g. log of 0)"
            )
        return value

    def gradient(self) -> Tensor:
        """The full-data gradient ∇L as a flat vector (in the operator's dtype)."""
        return self._gradient_at(None)

    def _gradient_at(self, params: Tensor | None) -> Tensor:
        def per_batch(v: dict[str, Tensor], c: dict[str, Tensor], batch: Prepared) -> Tensor:
            g, value = grad_and_value(lambda p: self._loss_of(p, c, batch))(v)
            if not torch.isfinite(value):
                raise NonFiniteError(
                    f"curvature: the loss of a batch is {value.item()}; check the data (NaN/inf inputs or "
                    "targets), the model and the loss function"
                )
            return self._flatten(g)

        g = self._pass("gradient", per_batch, ((self._numel,), self.dtype), params)
        if not torch.isfinite(g).all():
            raise NonFiniteError("curvature: the gradient has NaN/inf entries; check the data and model")
        return g

    # ----------------------------------------------------------------------------------- products
    def _batch_products(
        self, v: dict[str, Tensor], c: dict[str, Tensor], batch: Prepared, vectors: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def _products(self, V: Tensor, params: Tensor | None = None) -> Tensor:
        """``(n, k)`` products with the columns of V, at the current parameters or at ``params``."""
        load_forward_ad()
        k = V.shape[1]
        rows = V.T.to(device=self.device, dtype=self.dtype).contiguous()
        step = k if self.chunk_size is None else self.chunk_size

        def one(v: dict[str, Tensor], c: dict[str, Tensor], batch: Prepared, u: Tensor) -> Tensor:
            return self._flatten(self._batch_products(v, c, batch, self.unflatten(u)))

        def per_batch(v: dict[str, Tensor], c: dict[str, Tensor], batch: Prepared) -> Tensor:
            outs = []
            for start in range(0, k, step):
                block = rows[start : start + step]
                self._reseed()  # the same dropout mask for every chunk of vectors
                if block.shape[0] == 1:
                    outs.append(one(v, c, batch, block[0])[None])
                else:
                    outs.append(vmap(lambda u: one(v, c, batch, u), randomness="same")(block))
            return torch.cat(outs)

        result = self._pass(f"{self._what}-vector product", per_batch, ((k, self._numel), self.dtype), params)
        return result.T

    def matmat(self, V: Tensor) -> Tensor:
        """Product with the columns of ``V`` (shape ``(n, k)``); counts k products in :attr:`num_hvps`."""
        if not isinstance(V, Tensor) or V.dim() != 2 or V.shape[0] != self._numel:
            got = tuple(V.shape) if isinstance(V, Tensor) else type(V).__name__
            raise ConfigError(
                f"curvature: matmat expects a tensor of shape ({self._numel}, k) (one column per vector), got {got}"
            )
        if self._keep is not None:  # frozen entries (padding rows): the operator is P H P
            V = V * self._keep[:, None].to(V.dtype)
        result = self._products(V)
        if self._keep is not None:
            result = result * self._keep[:, None].to(result.dtype)
        self.num_hvps += V.shape[1]
        if not torch.isfinite(result).all():
            raise NonFiniteError(
                f"curvature: the {self._what}-vector product has NaN/inf entries; the loss or its derivatives "
                "are not finite at these parameters (check loss(): NaN/inf data, log of 0, overflow)"
            )
        if not self._checked_nonzero and bool((V != 0).any()):
            self._checked_nonzero = True
            if not self.allow_zero and bool((result == 0).all()):
                self._check_not_identically_zero()
        return result

    def _check_not_identically_zero(self) -> None:
        """Raise if the products vanish for a random vector both here and at a perturbed point.

        A genuinely zero matrix at this point (e.g. a deep linear network at all-zero weights, a
        higher-order saddle) becomes non-zero nearby; an operation without second derivatives (round,
        sign, detach) or a loss piecewise linear in the parameters gives zero everywhere.
        """
        generator = torch.Generator(device="cpu").manual_seed(12345)
        probe = torch.randn(self._numel, 1, dtype=torch.float64, generator=generator)
        if bool((self._products(probe) != 0).any()):
            return
        theta = self.parameters_flat().to(torch.float64)
        spread = float(theta.abs().mean()) or 1.0
        nearby = theta + 0.1 * spread * torch.randn(self._numel, dtype=torch.float64, generator=generator)
        try:
            zero_nearby = bool((self._products(probe, nearby) == 0).all())
        except RavineError:
            zero_nearby = True
        if zero_nearby:
            raise CurvatureError(
                f"curvature: the {self._what}-vector product is identically zero (here and at a nearby point), so "
                "second derivatives do not reach the selected parameters: an operation is not twice "
                "differentiable (e.g. round, sign, argmax, detach, a custom autograd.Function with a "
                "non-differentiable backward) or the loss is piecewise linear in them. Pass allow_zero=True if "
                "a zero matrix is expected"
            )

    def matvec(self, v: Tensor) -> Tensor:
        """The product with one flat vector ``v`` of length n."""
        if not isinstance(v, Tensor) or v.dim() != 1 or v.shape[0] != self._numel:
            got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ConfigError(
                f"curvature: matvec expects a flat vector of shape ({self._numel},) (one entry per selected "
                f"parameter; see unflatten/parameters_flat), got {got}"
            )
        return self.matmat(v[:, None])[:, 0]

    def __matmul__(self, other: Tensor) -> Tensor:
        return self.matvec(other) if isinstance(other, Tensor) and other.dim() == 1 else self.matmat(other)

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
        eye = torch.eye(n, dtype=self.dtype, device=self.device)
        H = torch.cat([self.matmat(eye[:, s : s + 256]) for s in range(0, n, 256)], dim=1)
        return (H + H.T) / 2

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={self._numel:,}, dtype={self.dtype}, params={len(self._names)} tensors)"
        )
