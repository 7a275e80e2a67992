"""One rank of the Monitor's data-parallel test: ``python _ddp_worker.py RANK WORLD INIT_FILE OUT LOGDIR``.

Both ranks build the same model, wrap it in DistributedDataParallel (gloo) and train on their own shard of the
data under a Monitor with probes and a TensorBoard logger under ``LOGDIR/rank<R>``; each saves what its monitor
recorded to OUT.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ravine.diagnose import Monitor, MonitorConfig
from ravine.diagnose.integrations.tensorboard import TensorBoardLogger

STEPS = 30


def main(rank: int, world: int, init_file: str, out: str, log_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 1))
        ddp = nn.parallel.DistributedDataParallel(model)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
        generator = torch.Generator().manual_seed(100 + rank)  # each rank its own shard
        x, y = torch.randn(64, 5, generator=generator), torch.randn(64, 1, generator=generator)
        loss_fn = nn.functional.mse_loss
        logger = TensorBoardLogger(os.path.join(log_dir, f"rank{rank}"))
        config = MonitorConfig(judge_every=10, probe_every=5, probe_max_every=5)
        monitor = Monitor(ddp, optimizer, loss_fn=loss_fn, config=config, loggers=[logger])
        torch.manual_seed(1 + rank)
        for _ in range(STEPS):
            optimizer.zero_grad()
            loss = loss_fn(ddp(x), y)
            loss.backward()
            monitor.step(loss, batch=(x, y))
            optimizer.step()
        verdict = monitor.verdict()
        monitor.close()
        columns = monitor.history.columns
        torch.save(
            {
                "names": monitor.names,
                "steps": list(monitor.history.steps),
                "grad_norm": list(columns["grad_norm"]),
                "update_norm": list(columns["update_norm"]),
                "loss": list(columns["loss"]),
                "probes": len(monitor.probes),
                "errors": list(monitor.errors),
                "verdict": verdict.kind.value,
                "writer": monitor._live.writer,
            },
            out,
        )
        dist.barrier()  # both ranks leave together (see tests/curvature/_distributed_worker.py)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    sys.stdout.flush()
    os._exit(0)  # skip the interpreter's teardown, where gloo's threads have aborted under load
