"""The Hessian (and Gauss-Newton) of a model's mean loss over a whole data set, as a linear operator.

H v is computed forward-over-reverse with :mod:`torch.func` (``jvp`` of ``grad`` of a ``functional_call``),
batch by batch, each batch weighted by its size, so that the result is the Hessian of the mean loss over all
samples. Under :mod:`torch.distributed` each rank holds a shard of the data and the sums are all-reduced.
The shared machinery (data passes, modes, ``dense()``) lives in :mod:`ravine.curvature._base`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeAlias

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vjp

from ravine.curvature._base import CurvatureOperator, LossFn, Reduction
from ravine.curvature._cache import (
    CacheSetting,
    PullbackCache,
    _tensors,
    activation_meter,
    apply_pullback,
    estimate_graph_bytes,
    fingerprint,
    param_bytes,
)
from ravine.curvature._data import DataLike, Prepared, Weighting, iter_batches
from ravine.curvature._kernels import needs_reverse_over_reverse
from ravine.curvature._model import evaluation_mode, human_bytes
from ravine.curvature._sharded import is_sharded, sharded_gradient
from ravine.errors import ConfigError, CurvatureError, RavineError

__all__ = ["GGNOperator", "HessianOperator", "HvpMethod", "LossFn", "human_bytes"]

HvpMethod: TypeAlias = Literal["autograd", "finite-difference"]


def _jvp_with_targets(fn: Callable[[Any, Any], Any], primal: Any, tangent: Any, targets: Any) -> Any:
    """``jvp`` of ``fn(·, targets)``; floating targets get an explicit zero tangent.

    torch's forward-mode formula of ``mse_loss``'s backward writes into the (implicit, immutable) zero
    tangent of a constant target ("ZeroTensors are immutable"); a materialised zero tangent avoids it.
    """
    if isinstance(targets, Tensor) and targets.is_floating_point():
        return jvp(fn, (primal, targets), (tangent, torch.zeros_like(targets)))[1]
    return jvp(lambda p: fn(p, targets), (primal,), (tangent,))[1]


class HessianOperator(CurvatureOperator):
    """The Hessian H = ∇²L(θ) of the mean loss over all the data, as a linear operator.

    L(θ) = (1/N) Σ_b n_b · loss_fn(model(x_b; θ), y_b): every batch is weighted by its size, so any split of
    the data into batches (of equal or unequal sizes) gives the Hessian of the full-batch mean loss.
    H v is forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad``), about 3 gradients' cost; with
    the cache (below) it is one backward pass through each batch's linearised gradient, about 2.

    **Cache.** With ``cache`` on, the first product at given parameters keeps, per batch, the pullback of
    ``torch.func.vjp(grad(L_b), θ)`` (the pullback of v is H_b v, H_b being symmetric), and further products
    at the same parameters reuse it instead of recomputing the forward and backward passes. A change of the
    parameters (an optimizer step, ``load_state_dict``, ``p.data.copy_``, a new dtype or device), of the
    buffers, of the data tensors (in place) or of ``seed``/``train_mode`` is detected and the cache rebuilt.
    Memory: each batch's forward/backward graph, estimated from the modules' output sizes (about 4× the
    activations plus 2× the parameters per batch) and kept within ``max_cache_bytes``. ``"auto"`` (the
    default) caches a single ``(inputs, targets)`` batch or a list/tuple of at most 8 batches when the
    estimate fits, and otherwise recomputes every product; ``True`` caches any data, a ``DataLoader``
    included (its batches as read by the first product, later reads are skipped; in-place changes of the
    loader's data are not seen), and raises :class:`MemoryBudgetError` over the budget; ``False`` never
    caches. Under ``train_mode`` the dropout masks are those of each batch's seed either way, and under
    torch.distributed the products are all-reduced either way. :meth:`clear_cache` frees the memory.

    **Any model.** Inside its passes the operator selects twice-differentiable kernels (the math backend of
    ``scaled_dot_product_attention``, mkldnn off for RNNs, the MultiheadAttention fast path off) and restores
    the user's settings afterwards; where an operation has no forward-mode derivative it falls back to
    reverse-over-reverse. Embedding rows at ``padding_idx`` get no gradient from autograd; they count as
    frozen parameters (the operator is P H P with P the projection off them: symmetric, zero on them).

    **Hugging Face.** A batch may be a dict (``model(**batch)``) or ``(dict, labels)``. With ``loss_fn=None``
    the loss is the model's own ``outputs.loss`` (labels passed as ``labels=``), and batches are weighted by
    their counted targets — labels ≠ -100, after the one-token shift of a causal LM — so the result is the
    Hessian of the token mean over the whole data set. One line: ``HessianOperator(model, data=loader)``.

    **Finite differences.** ``hvp="finite-difference"`` needs only gradients (FSDP-sharded models, fused
    kernels without a second derivative): H v ≈ (∇L(θ + h v̂) − ∇L(θ − h v̂)) ‖v‖ / (2h), v̂ = v/‖v‖,
    h = ε^(1/3)·max(1, ‖θ‖/√n), ε the dtype's machine epsilon; two gradient passes per vector. Its relative
    error is O(ε^(2/3)): about 1e-10 in float64, 1e-4–1e-5 in float32 (truncation h²‖∇³L‖/6 plus round-off
    ε‖∇L‖/h); :attr:`finite_difference_step` gives h. The cache does not apply.

    **FSDP.** With parameters sharded by FSDP2 (``torch.distributed.fsdp.fully_shard``: DTensors) the only
    option is ``hvp="finite-difference"`` (with ``reduction="mean"``); anything else is refused, because
    torch.func cannot trace FSDP's collectives and a double backward through its reduce-scatter does not reach
    the sharded parameters. Vectors are whole (length n, the same on every rank, as :func:`lanczos` gives
    them); each gradient is the model's own forward and backward on this rank's batches with the local
    shards shifted in place, weighted into the mean over all ranks' data, and the shards and ``.grad`` are
    restored after. Every rank needs at least one batch. Tested on CPU with gloo (2 processes): equal to the
    unsharded model's exact H v to < 1e-8 in float64. The older ``FullyShardedDataParallel`` wrapper does not
    run on CPU ("FSDP needs a non-CPU accelerator device") and is not tested.

    Args:
        model: The network; its parameters are read afresh on every product.
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's *mean* loss as a scalar (the sum with
            ``reduction="sum"``), or None for the model's own ``outputs.loss``.
        data: ``(inputs, targets)``, a dict batch, a list of batches, or a ``DataLoader`` (re-iterable: every
            product passes over it again, so not a generator). Inputs may be a tuple of tensors (passed as
            ``model(*inputs)``) or a dict (``model(**inputs)``). Under torch.distributed, this rank's shard,
            which may be empty.
        params: Parameter names or parameters to differentiate (default: all that require grad).
        dtype: Working dtype (default: the model's); ``torch.float64`` for checks.
        train_mode: Keep BatchNorm/Dropout in train mode: batch statistics (running ones untouched) and one
            dropout mask per batch, the same for every product. Default: eval mode. Either way a
            :class:`RavineWarning` says which when the model has such layers, and every module's mode is
            restored afterwards.
        distributed: All-reduce over the default process group (default: if one is initialised).
        process_group: The group to reduce over (default: the world).
        max_dense_bytes: Largest matrix :meth:`dense` may build (default 1 GiB).
        chunk_size: Vectors per ``vmap`` call in :meth:`matmat` (memory vs speed).
        allow_zero: Accept an identically-zero Hessian instead of raising :class:`CurvatureError`.
        seed: Seed of the dropout masks in train mode (the global RNG is left as it was).
        cache: ``"auto"``, ``True`` or ``False``: keep each batch's linearised gradient between products
            at unchanged parameters (see above).
        max_cache_bytes: Budget of the cache's estimated memory (default 1 GiB).
        reduction: ``"mean"`` (the Hessian of the weighted mean over the data) or ``"sum"`` (each batch's loss
            is a sum; the Hessian of the total). A ``loss_fn`` declaring another ``reduction`` is refused.
        weighting: Batch weights in the mean: ``"samples"`` (rows), ``"targets"`` (integer targets ≠ -100)
            or ``"auto"`` (targets when the model computes its loss, samples otherwise).
        hvp: ``"autograd"`` (exact) or ``"finite-difference"`` (see above).

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
        cache: CacheSetting = "auto",
        max_cache_bytes: int = 2**30,
        reduction: Reduction = "mean",
        weighting: Weighting = "auto",
        hvp: HvpMethod = "autograd",
    ) -> None:
        if hvp not in ("autograd", "finite-difference"):
            raise ConfigError(f"curvature: hvp must be 'autograd' or 'finite-difference', got {hvp=}")
        self.hvp: HvpMethod = hvp
        self._reverse = False  # reverse-over-reverse where forward-mode AD is missing
        self._cache = PullbackCache(cache if hvp == "autograd" else False, max_cache_bytes)
        super().__init__(
            model,
            loss_fn,
            data,
            params=params,
            dtype=dtype,
            train_mode=train_mode,
            distributed=distributed,
            process_group=process_group,
            max_dense_bytes=max_dense_bytes,
            chunk_size=chunk_size,
            allow_zero=allow_zero,
            seed=seed,
            reduction=reduction,
            weighting=weighting,
        )
        named = dict(self.model.named_parameters())
        self._sharded = any(is_sharded(named[name]) for name in self._names)
        if self._sharded and (hvp != "finite-difference" or reduction != "mean"):
            raise ConfigError(
                "curvature: the model's parameters are sharded (DTensors, e.g. FSDP2's fully_shard); "
                "torch.func cannot differentiate through FSDP's collectives and a double backward through them "
                f'is not possible: pass hvp="finite-difference" with reduction="mean" (got {hvp=}, {reduction=})'
            )

    def parameters_flat(self) -> Tensor:
        """The selected parameters' current values as one flat vector (gathered whole when sharded)."""
        if not self._sharded:
            return super().parameters_flat()
        named: dict[str, Any] = dict(self.model.named_parameters())  # DTensors
        return torch.cat(
            [named[name].detach().full_tensor().reshape(-1).to(self.dtype) for name in self._names]
        )

    @property
    def finite_difference_step(self) -> float:
        """The step h of ``hvp="finite-difference"``: ε^(1/3)·max(1, ‖θ‖/√n) (along a unit vector)."""
        theta = self.parameters_flat()
        spread = float(theta.norm()) / math.sqrt(max(self._numel, 1))
        return float(torch.finfo(self.dtype).eps ** (1 / 3) * max(1.0, spread))

    @property
    def cache_active(self) -> bool:
        """Whether products at the current state would use cached pullbacks (none held counts as no)."""
        return self._cache.holds and self._cache.valid(self.parameters_flat(), self._fingerprint())

    @property
    def cache_bytes(self) -> int:
        """Estimated memory held by the cached pullbacks (0 when none is held)."""
        return self._cache.estimated_bytes if self._cache.holds else 0

    def clear_cache(self) -> None:
        """Free the cached pullbacks; the next product rebuilds them (if the cache is on)."""
        self._cache.clear()

    def _fingerprint(self) -> tuple[Any, ...]:
        return fingerprint(self.model, self.data, (self.dtype, self.device, self.train_mode, self.seed))

    def _batch_products(
        self, v: dict[str, Tensor], c: dict[str, Tensor], batch: Prepared, vectors: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        def gradient(p: dict[str, Tensor], t: Any) -> dict[str, Tensor]:
            return grad(lambda q: self._loss_of(q, c, Prepared(batch.args, batch.kwargs, t, batch.weight)))(p)  # type: ignore[no-any-return]

        products: dict[str, Tensor] = _jvp_with_targets(gradient, v, vectors, batch.targets)
        return products

    def _finite_difference(self, V: Tensor) -> Tensor:
        """Central differences of the full-data gradient along each column of V (see the class docs)."""
        theta = self.parameters_flat()
        step = self.finite_difference_step
        at = self._sharded_gradients() if self._sharded else None
        columns = []
        for v in V.to(device=self.device, dtype=self.dtype).unbind(1):
            norm = float(v.norm())
            if norm == 0:
                columns.append(torch.zeros_like(v))
                continue
            u = v / norm
            if at is None:
                ahead, behind = self._gradient_at(theta + step * u), self._gradient_at(theta - step * u)
            else:
                ahead, behind = at(step * u), at(-step * u)
            columns.append((ahead - behind) * (norm / (2 * step)))
        return torch.stack(columns, 1)

    def _sharded_gradients(self) -> Callable[[Tensor], Tensor]:
        """``shift ↦ ∇L(θ + shift)`` for sharded parameters, by the model's own forward and backward."""
        named = dict(self.model.named_parameters())
        params = [named[name] for name in self._names]
        batches = [self._prepare(raw, index) for index, raw in enumerate(iter_batches(self.data))]
        batches = [b for b in batches if b.weight > 0]
        if not batches:
            raise ConfigError(
                "curvature: with sharded parameters every rank needs at least one non-empty batch (FSDP's "
                "collectives run in each backward), but this rank has none"
            )

        def loss_of(batch: Prepared) -> Tensor:
            return self._loss_of_outputs(self.model(*batch.args, **batch.kwargs), batch.targets)

        def gradient(shift: Tensor) -> Tensor:
            shifts = [t.to(p.dtype) for t, p in zip(self.unflatten(shift).values(), params, strict=True)]
            with evaluation_mode(self.model, self.train_mode):
                weights = [float(b.weight) for b in batches]
                g = sharded_gradient(
                    params, shifts, batches, loss_of=loss_of, weights=weights, group=self.process_group
                )
            return g.to(self.dtype)

        return gradient

    def _products(self, V: Tensor, params: Tensor | None = None) -> Tensor:
        if self.hvp == "finite-difference" and params is None:
            return self._finite_difference(V)
        rows = V.T.to(device=self.device, dtype=self.dtype).contiguous()
        what = f"{self._what}-vector product"
        if params is not None or not self._cache.wanted(self.data):
            if self._reverse:
                flat = self.parameters_flat() if params is None else params
                summed, weight = self._build(what, rows, flat, None)
                return self._reduce(summed, weight, ((V.shape[1], self._numel), self.dtype)).T
            try:
                return super()._products(V, params)
            except CurvatureError as error:
                if not needs_reverse_over_reverse(error.__cause__ or error):
                    raise
                self._reverse = True  # forward-mode AD is missing for an operation: reverse over reverse
                return self._products(V, params)
        k = V.shape[1]
        flat = self.parameters_flat()
        key = self._fingerprint()
        if self._cache.holds and self._cache.valid(flat, key):
            total: Tensor | None = None
            index = -1
            try:
                for size, pullback in self._cache.entries:
                    index += 1
                    value = apply_pullback(pullback, rows, self.unflatten, self._flatten) * size
                    total = value if total is None else total + value
            except RavineError:
                raise
            except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
                raise self._torch_func_error(what, index, error) from error
            count = self._cache.count
        else:
            total, count = self._build(what, rows, flat, key)
        return self._reduce(total, count, ((k, self._numel), self.dtype)).T

    def _build(
        self, what: str, rows: Tensor, flat: Tensor, key: tuple[Any, ...] | None
    ) -> tuple[Tensor | None, int]:
        """One pass that linearises every batch's gradient and applies it to ``rows``.

        With a fingerprint ``key`` the pullbacks are cached (if they fit); without, they are dropped after
        each batch (the reverse-over-reverse path for models without forward-mode AD).
        """
        cache = self._cache
        if key is not None:
            cache.start(flat, key)
        shared = param_bytes([flat])

        def per_batch(scale: float, v: dict[str, Tensor], c: dict[str, Tensor], batch: Prepared) -> Tensor:
            def gradient(p: dict[str, Tensor]) -> dict[str, Tensor]:
                return grad(lambda q: self._loss_of(q, c, batch))(p)  # type: ignore[no-any-return]

            with activation_meter(self.model) as outputs:
                pullback = vjp(gradient, v)[1]
            value = apply_pullback(pullback, rows, self.unflatten, self._flatten).detach() * scale
            if key is not None:
                inputs = param_bytes(list(_tensors((batch.args, batch.kwargs))))
                cache.offer(scale, batch.weight, pullback, estimate_graph_bytes(outputs[0], inputs, shared))
            return value

        if key is None:
            return self._run_batches(what, per_batch, flat)
        try:
            return self._run_batches(what, per_batch, flat)
        except BaseException:
            cache.clear()
            raise
        finally:
            cache.finish()


class GGNOperator(CurvatureOperator):
    """The generalised Gauss-Newton matrix G = Jᵀ H_out J of the mean loss (positive semi-definite for convex losses).

    J is the Jacobian of the model's outputs with respect to the parameters and H_out the Hessian of the loss
    with respect to the outputs. G drops the second-order term Σ (∂loss/∂out)·∇²out of the Hessian, which is
    the term that carries negative curvature. Same arguments as :class:`HessianOperator`.
    """

    _what = "Gauss-Newton"

    def __init__(
        self, model: nn.Module, loss_fn: LossFn | None = None, data: DataLike | None = None, **options: Any
    ) -> None:
        if loss_fn is None:
            raise ConfigError(
                "curvature: the Gauss-Newton matrix needs loss_fn(outputs, targets) (the loss as a function of "
                "the outputs); the model's own outputs.loss hides them"
            )
        super().__init__(model, loss_fn, data, **options)

    def _batch_products(
        self, v: dict[str, Tensor], c: dict[str, Tensor], batch: Prepared, vectors: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        targets = batch.targets

        def outputs_of(p: dict[str, Tensor]) -> Any:
            return functional_call(self.model, (p, c), batch.args, batch.kwargs)

        forward = jvp(outputs_of, (v,), (vectors,))
        outputs, jv = forward[0], forward[1]

        def loss_gradient(o: Any, t: Any) -> Any:
            return grad(lambda q: self._loss_of_outputs(q, t))(o)

        hjv = _jvp_with_targets(loss_gradient, outputs, jv, targets)
        pullback = vjp(outputs_of, v)[1]
        products: dict[str, Tensor] = pullback(hjv)[0]
        return products
