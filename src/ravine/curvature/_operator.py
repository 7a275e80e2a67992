"""The Hessian (and Gauss-Newton) of a model's mean loss over a whole data set, as a linear operator.

H v is computed forward-over-reverse with :mod:`torch.func` (``jvp`` of ``grad`` of a ``functional_call``),
batch by batch, each batch weighted by its size, so that the result is the Hessian of the mean loss over all
samples. Under :mod:`torch.distributed` each rank holds a shard of the data and the sums are all-reduced.
The shared machinery (data passes, modes, ``dense()``) lives in :mod:`ravine.curvature._base`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, grad, jvp, vjp

from ravine.curvature._base import CurvatureOperator, LossFn
from ravine.curvature._model import human_bytes

__all__ = ["GGNOperator", "HessianOperator", "LossFn", "human_bytes"]


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
    H v is forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad``): about 2–3 gradients' cost.

    Args:
        model: The network; its parameters are read afresh on every product.
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's *mean* loss as a scalar.
        data: ``(inputs, targets)``, a list of such batches, or a ``DataLoader`` (re-iterable: every product
            passes over it again, so not a generator). Inputs may be a tuple of tensors (passed as
            ``model(*inputs)``). Under torch.distributed, this rank's shard, which may be empty.
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


class GGNOperator(CurvatureOperator):
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
