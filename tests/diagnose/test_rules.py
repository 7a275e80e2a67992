"""The failure classes of the rules, on scripted histories and tiny real runs (each against an independent
reference where one exists)."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

import ravine.optim
from ravine.diagnose import COLUMNS, Monitor, ProbeRecord, VerdictKind, judge, optimizer_terms
from ravine.diagnose._sharpness import measure_sharpness
from ravine.diagnose._stuck import noise_scale

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _columns(
    loss: list[float], grad: float = 1.0, cos: float = 0.0, ratio: float = 1e-3, weight: float = 10.0
) -> dict[str, list[float]]:
    n = len(loss)
    columns = {name: [math.nan] * n for name in COLUMNS}
    columns["loss"] = list(loss)
    columns["grad_norm"] = [grad] * n
    columns["cos_prev"] = [cos] * n
    columns["update_ratio"] = [ratio] * n
    columns["lr"] = [0.1] * n
    columns["eff_lr"] = [0.1] * n
    columns["weight_norm"] = [weight] * n
    return columns


def test_a_flat_loss_is_never_healthy_stalled_with_what_was_measured() -> None:
    rng = random.Random(0)
    loss = [1.0 + 0.001 * rng.gauss(0, 1) for _ in range(200)]
    verdict = judge(_columns(loss, grad=1.0, cos=0.4), list(range(200)))
    assert verdict.kind is VerdictKind.STALLED
    assert "cause not determined" in verdict.summary
    names = {e.name for e in verdict.evidence}
    assert {"relative loss decrease over window", "cosine of successive updates (mean)"} <= names


def test_stuck_from_step_zero_small_gradient_without_history() -> None:
    # The gradient never exceeded its starting value: small only in the scale-free sense ‖g‖·‖θ‖ ≪ |L|.
    loss = [2.3] * 200
    verdict = judge(_columns(loss, grad=2e-3, cos=0.9, ratio=1e-2, weight=0.5), list(range(200)))
    assert verdict.kind is VerdictKind.CRITICAL_POINT and "classify" in verdict.wants


def test_blew_up_and_stays_up_whatever_the_gradient() -> None:
    rng = random.Random(1)
    loss = [2.3] * 3 + [300 * (1 + 0.3 * rng.gauss(0, 1)) for _ in range(197)]
    for grad in (0.1, 10.0):  # falling or flat gradient: no "gradient doubling" needed
        verdict = judge(_columns(loss, grad=grad), list(range(200)))
        assert verdict.kind is VerdictKind.DIVERGED_STUCK, verdict.summary


def test_loss_falling_share_is_at_most_100_percent() -> None:
    loss = [1.0 + 10.0 * math.exp(-t / 20) for t in range(200)]
    verdict = judge(_columns(loss, cos=0.9), list(range(200)))
    assert verdict.kind is VerdictKind.HEALTHY
    share = float(verdict.summary.split("%")[0].split()[-1])
    assert 0 <= share <= 100


def test_noise_scale_is_never_negative_and_ratio_of_sums() -> None:
    probes = [
        ProbeRecord(step=1, trace_sigma=100.0, signal=-2.0, batch_size=16),
        ProbeRecord(step=2, trace_sigma=100.0, signal=6.0, batch_size=16),
    ]
    scale, batch, used = noise_scale(probes)
    assert (scale, batch, used) == (50.0, 16.0, 2)
    assert noise_scale(probes[:1])[0] == math.inf


def _run_monitor(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, steps: int
) -> Monitor:
    monitor = Monitor(model, optimizer, loss_fn=nn.functional.mse_loss)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.step(loss, batch=(x, y))
        optimizer.step()
    return monitor


def test_full_batch_snr_is_not_negative_and_noise_is_not_blamed() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3 * torch.randn(64, 1)
    model = nn.Linear(3, 1)
    monitor = _run_monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, 200)
    assert all(p.snr >= 0 for p in monitor.probes if math.isfinite(p.snr))
    assert monitor.probes[-1].full_batch
    assert monitor.verdict().kind is not VerdictKind.NOISE_DOMINATED


def test_a_one_sample_batch_says_why_there_is_no_noise_probe() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    monitor = _run_monitor(
        model, torch.optim.SGD(model.parameters(), lr=1e-3), torch.randn(1, 3), torch.randn(1, 1), 60
    )
    assert monitor.probes and "1 sample" in monitor.probes[-1].noise_note


def test_optimizer_terms_and_stability_limits() -> None:
    w = nn.Parameter(torch.zeros(3))
    assert optimizer_terms(torch.optim.SGD([w], lr=0.1)).stability_limit()[0] == 2.0
    heavy = optimizer_terms(torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=1e-3))
    assert heavy.stability_limit()[0] == pytest.approx(3.8) and heavy.coupled_decay == 1e-3
    nesterov = optimizer_terms(torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True))
    assert nesterov.stability_limit()[0] == pytest.approx(3.8 / 2.8)
    adam = optimizer_terms(torch.optim.Adam([w], lr=1e-3))
    assert adam.adaptive and adam.stability_limit()[0] == pytest.approx(38.0)  # 38/η on P⁻¹H with P = σ
    adamw = optimizer_terms(torch.optim.AdamW([w], lr=1e-3, weight_decay=0.1))
    assert adamw.decoupled_decay == 0.1 and adamw.coupled_decay == 0.0
    chain = optimizer_terms(ravine.optim.momentum([w], lr=0.1, momentum=0.5, weight_decay=0.01))
    assert chain.momentum == 0.5 and chain.coupled_decay == 0.01
    assert optimizer_terms(ravine.optim.adamw([w], lr=0.1, weight_decay=0.1)).decoupled_decay == 0.1


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_preconditioned_sharpness_matches_a_dense_reference(kind: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x, y = torch.randn(32, 3, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    opt: torch.optim.Optimizer = (
        torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        if kind == "sgd"
        else torch.optim.Adam(model.parameters(), lr=1e-2)
    )
    for _ in range(20):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    record, _ = measure_sharpness(
        model,
        nn.functional.mse_loss,
        (x, y),
        names=names,
        params=params,
        optimizer=opt,
        terms=optimizer_terms(opt),
        step=20,
        max_hvps=200,
    )
    # Reference: the dense Hessian by torch.func, scaled by η (SGD) or by η/(√v̂ + ε) (Adam's state).
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    sizes = [p.numel() for p in params]

    def objective(theta: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(theta, sizes)
        values = {n: q.reshape(p.shape) for n, q, p in zip(names, pieces, params, strict=True)}
        return nn.functional.mse_loss(torch.func.functional_call(model, values, (x,)), y)

    H = torch.func.hessian(objective)(flat)
    if kind == "sgd":
        scale = torch.full_like(flat, 0.05)
        assert record.threshold == pytest.approx(3.8) and not record.preconditioned
    else:
        t = opt.state[params[0]]["step"]
        v = torch.cat([opt.state[p]["exp_avg_sq"].reshape(-1) for p in params]) / (1 - 0.999 ** float(t))
        scale = 1e-2 / (v.sqrt() + 1e-8)
        assert record.threshold == pytest.approx(38.0) and record.preconditioned
    root = scale.sqrt()
    expected = float(torch.linalg.eigvalsh(root[:, None] * H * root[None, :])[-1])
    assert record.sharpness == pytest.approx(expected, rel=2e-2)
