"""The gradient noise scale B_simple: McCandlish's two-batch estimators, and under DDP from the per-rank and
all-reduced gradients (2 gloo processes), against per-sample gradients computed directly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from _gloo import run_ranks
from ravine.diagnose._ddp_noise import two_batch_estimates

WORKER = Path(__file__).with_name("_noise_worker.py")
_spec = importlib.util.spec_from_file_location("_noise_worker", WORKER)
assert _spec is not None and _spec.loader is not None
_worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_worker)
BATCH, STEPS, data = _worker.BATCH, _worker.STEPS, _worker.data

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")


def _per_sample_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    rows = []
    for i in range(len(x)):
        model.zero_grad()
        nn.functional.mse_loss(model(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]).clone())
    return torch.stack(rows)


def test_two_batch_estimators_are_unbiased() -> None:
    """On a known distribution (g_i = G + noise, tr Σ known) the averaged estimates recover ‖G‖² and tr Σ."""
    generator = torch.Generator().manual_seed(0)
    G = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    sigma = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)
    samples = G + sigma * torch.randn(50_000, 32, 3, generator=generator, dtype=torch.float64)
    small, big = samples[:, :8].mean(1).square().sum(1), samples.mean(1).square().sum(1)
    signal, trace = two_batch_estimates(
        float(small.mean()), float(big.mean()), 8, 32
    )  # linear: mean of estimates
    assert signal == pytest.approx(float(G.square().sum()), rel=0.03)
    assert trace == pytest.approx(float(sigma.square().sum()), rel=0.03)


def test_ddp_hook_reads_the_per_rank_and_the_reduced_gradient(tmp_path: Path) -> None:
    init_file = tmp_path / "rendezvous"
    outs = [tmp_path / f"rank{rank}.pt" for rank in range(2)]
    run_ranks([[str(WORKER), str(rank), "2", str(init_file), str(outs[rank])] for rank in range(2)])
    ranks = [torch.load(out, weights_only=False) for out in outs]
    # Reference without DDP: the same model, the same data, per-sample gradients by autograd.
    torch.manual_seed(0)
    model = nn.Linear(4, 1).double()
    traces, signals = [], []
    for step in range(STEPS):
        shards = [data(rank, step) for rank in range(2)]
        per_sample = [_per_sample_grads(model, x, y) for x, y in shards]
        local = [g.mean(0) for g in per_sample]
        mean = (local[0] + local[1]) / 2
        for rank in range(2):
            local_sq, global_sq, grads = ranks[rank]["records"][step]
            assert local_sq == pytest.approx(float(local[rank].square().sum()), rel=1e-9)
            assert global_sq == pytest.approx(float(mean.square().sum()), rel=1e-9)
            torch.testing.assert_close(grads, mean)
        everything = torch.cat(per_sample)
        traces.append(float(everything.var(0, unbiased=True).sum()))
        signals.append(float(mean.square().sum()))
    estimate = ranks[0]["estimate"]
    assert estimate.batch_size == 2 * BATCH and estimate.steps == STEPS
    # The smoothed B_simple is of the order of the directly measured tr Σ / ‖g‖² (both noisy, a few steps).
    direct = sum(traces) / sum(signals)
    assert 0.2 * direct < estimate.noise_scale < 5 * direct
