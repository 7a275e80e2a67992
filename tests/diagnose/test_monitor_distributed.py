"""The Monitor under DistributedDataParallel (gloo, 2 processes): every rank records the same all-reduced
gradient signals, rank 0 alone writes logs."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")


def test_ranks_record_the_same_gradient_signals_and_rank_zero_alone_logs(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    worker = Path(__file__).with_name("_ddp_worker.py")
    env = dict(os.environ)
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    init_file, log_dir = tmp_path / "rendezvous", tmp_path / "logs"
    outs = [tmp_path / f"rank{rank}.pt" for rank in range(2)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-W",
                "error",
                str(worker),
                str(rank),
                "2",
                str(init_file),
                str(outs[rank]),
                str(log_dir),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    logs = []
    try:
        for process in processes:
            logs.append(process.communicate(timeout=180)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for rank, process in enumerate(processes):
        assert process.returncode == 0, f"rank {rank} failed:\n{logs[rank]}"
    zero, one = (torch.load(out, weights_only=False) for out in outs)
    assert zero["errors"] == [] and one["errors"] == []
    assert zero["names"] == one["names"] and not zero["names"][0].startswith("module.")  # DDP unwrapped
    assert zero["steps"] == one["steps"] == list(range(30))
    # DDP all-reduced the gradients: the recorded norms agree to the bit; the local losses do not.
    assert zero["grad_norm"] == one["grad_norm"]
    measured = [i for i, v in enumerate(zero["update_norm"]) if math.isfinite(v)]
    assert measured and [zero["update_norm"][i] for i in measured] == [
        one["update_norm"][i] for i in measured
    ]
    assert zero["loss"] != one["loss"]
    assert zero["probes"] == one["probes"] == 5
    assert zero["writer"] is True and one["writer"] is False
    assert any((log_dir / "rank0").glob("events.out.tfevents.*"))
    assert not (log_dir / "rank1").exists()
