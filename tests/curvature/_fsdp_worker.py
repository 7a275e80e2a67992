"""The FSDP2 part of a gloo rank (run by ``_distributed_worker`` in the same processes, after its own part).

The model is sharded by ``torch.distributed.fsdp.fully_shard`` (DTensor parameters, CPU, gloo); rank 0 holds
two unequal batches (one of them a dict batch), rank 1 one. Each rank saves its finite-difference products, a
Lanczos result on them, and whether its shards and ``.grad`` were left as they were.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from ravine.curvature import HessianOperator, lanczos

from ._helpers import F64, build, split


class _Keyed(nn.Module):
    """The model, called as ``model(input=x)`` for dict batches."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input: Tensor) -> Tensor:
        out: Tensor = self.inner(input)
        return out


def fsdp_results(rank: int, world: int, cuts: list[int]) -> dict[str, Any]:
    """This rank's results on the sharded model, the data cut as ``cuts`` (the default process group is up)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model, loss_fn, x, y = build("mlp-ce")
    model = _Keyed(copy.deepcopy(model).to(F64))
    batches = split(x, y, cuts)
    shard = [({"input": batches[0][0]}, batches[0][1]), batches[1]] if rank == 0 else batches[2:]
    mesh = init_device_mesh("cpu", (world,))
    inner: Any = model.inner
    for layer in inner:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    shards: list[Any] = list(model.parameters())  # DTensors
    before = [p.to_local().detach().clone() for p in shards]
    H = HessianOperator(model, loss_fn, shard, hvp="finite-difference")
    V = torch.randn(H.shape[0], 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    products = H @ V
    top = lanczos(H, 2, tol=1e-6)
    try:
        HessianOperator(model, loss_fn, shard)
        refused = ""
    except Exception as error:
        refused = f"{type(error).__name__}: {error}"
    after = [p.to_local().detach() for p in shards]
    return {
        "n": H.shape[0],
        "products": products,
        "eigenvalues": top.eigenvalues,
        "converged": top.all_converged,
        "parameters_flat": H.parameters_flat(),
        "untouched": all(torch.equal(a, b) for a, b in zip(before, after, strict=True)),
        "grads_none": all(p.grad is None for p in model.parameters()),
        "refused": refused,
    }
