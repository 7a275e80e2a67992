"""One rank of the DDP noise-scale test: ``python _noise_worker.py RANK WORLD INIT_FILE OUT``."""

from __future__ import annotations

import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ravine.diagnose._ddp_noise import NoiseScaleHook

STEPS = 12
BATCH = 8


def data(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1000 * step + rank)
    x = torch.randn(BATCH, 4, generator=generator, dtype=torch.float64)
    return x, x @ torch.tensor([[1.0], [-1.0], [0.5], [2.0]], dtype=torch.float64) + torch.randn(
        BATCH, 1, generator=generator, dtype=torch.float64
    )


def main(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    try:
        torch.manual_seed(0)
        model = nn.Linear(4, 1).double()
        ddp = nn.parallel.DistributedDataParallel(model)
        hook = NoiseScaleHook()
        hook.register(ddp)
        records = []
        for step in range(STEPS):
            x, y = data(rank, step)
            ddp.zero_grad()
            nn.functional.mse_loss(ddp(x), y).backward()
            local, global_ = hook.local_sq, hook.global_sq
            grads = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]).clone()
            records.append((local, global_, grads))
            hook.step(BATCH)
        estimate = hook.estimate()
        torch.save({"records": records, "estimate": estimate}, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
