"""One rank of the data-parallel test: ``python -m curvature._distributed_worker RANK WORLD INIT_FILE OUT``.

Rank 0 holds two unequal batches of the data, rank 1 the rest; a second operator gives rank 1 nothing.
Everything each rank computes is saved to OUT for the test to compare with a single process; then the same
ranks run the FSDP2 part (``_fsdp_worker``).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from ravine.curvature import HessianOperator, lanczos, spectral_density

from ._fsdp_worker import fsdp_results
from ._helpers import F64, build, split

CUTS = [9, 14, 13]  # rank 0: 9 + 14 samples, rank 1: 13 (of mlp-ce's 36)


def main(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    try:
        model, loss_fn, x, y = build("mlp-ce")
        batches = split(x, y, CUTS)
        shard = batches[:2] if rank == 0 else batches[2:]
        H = HessianOperator(model, loss_fn, shard)
        V = torch.randn(H.shape[0], 3, generator=torch.Generator().manual_seed(5), dtype=F64)
        top = lanczos(H, 3, which="both", tol=1e-10)
        density = spectral_density(H, num_probes=4, num_steps=10, seed=2)
        lone = HessianOperator(model, loss_fn, shard if rank == 0 else [])  # rank 1's shard is empty
        # dict batches (model(**inputs)), as Hugging Face loaders give, with the cache on and off
        keyed = [({"input": bx}, by) for bx, by in shard]
        dict_cached = HessianOperator(model, loss_fn, keyed, cache=True)
        dict_uncached = HessianOperator(model, loss_fn, keyed, cache=False)
        results = {
            "distributed": H.distributed,
            "products": H @ V,
            "gradient": H.gradient(),
            "loss": H.loss(),
            "num_samples": H.num_samples,
            "eigenvalues": top.eigenvalues,
            "residuals": top.residuals,
            "converged": top.all_converged,
            "density_nodes": density.nodes,
            "lone_products": lone @ V,
            "lone_samples": lone.num_samples,
            "dict_products": (dict_cached @ V, dict_uncached @ V),
            "dict_samples": dict_cached.num_samples,
            "fsdp": fsdp_results(rank, world, CUTS),  # the same ranks, an FSDP2-sharded model
        }
        torch.save(results, out)
        # both ranks leave together: a rank tearing gloo down while its peer still talks to it can abort
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
    # Leave without the interpreter's teardown: gloo's background threads have been seen to abort there
    # ("terminate called without an active exception") on a loaded machine, after every result was saved.
    sys.stdout.flush()
    os._exit(0)
