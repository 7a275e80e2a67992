"""The Monitor under DistributedDataParallel (gloo, 2 processes): every rank records the same all-reduced
gradient signals, rank 0 alone writes logs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from _gloo import run_ranks

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")


def test_ranks_record_the_same_gradient_signals_and_rank_zero_alone_logs(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    worker = Path(__file__).with_name("_ddp_worker.py")
    init_file, log_dir = tmp_path / "rendezvous", tmp_path / "logs"
    outs = [tmp_path / f"rank{rank}.pt" for rank in range(2)]
    run_ranks(
        [
            ["-W", "error", str(worker), str(rank), "2", str(init_file), str(outs[rank]), str(log_dir)]
            for rank in range(2)
        ],
        timeout=180,
    )
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
