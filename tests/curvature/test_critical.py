"""classify and escape on known saddles, minima and maxima; HW2-2's Gauss-Newton ratio vs the exact Hessian."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn

from ravine.curvature import CriticalKind, HessianOperator, classify, escape
from ravine.experiments.hw2_2 import hw2_2_comparison

from ._helpers import F64, PROBLEMS, dense_hessian, problem


def _two_weight_saddle() -> tuple[nn.Module, tuple[Tensor, Tensor]]:
    """L(w1, w2) = (1 − w2·w1)² at the origin: eigenvalues ±2, escape direction [1, 1]/√2."""
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)).to(F64)
    for layer in net:
        nn.init.zeros_(layer.weight)  # type: ignore[arg-type]
    return net, (torch.ones(1, 1, dtype=F64), torch.ones(1, 1, dtype=F64))


def _deep_linear(depth: int, seed: int = 0) -> tuple[nn.Module, tuple[Tensor, Tensor]]:
    """A linear network 3 → 4 → … → 2 at all-zero weights, fitting y = A x."""
    generator = torch.Generator().manual_seed(seed)
    widths = [3] + [4] * (depth - 1) + [2]
    net = nn.Sequential(*[nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(widths)]).to(F64)
    for layer in net:
        nn.init.zeros_(layer.weight)  # type: ignore[arg-type]
    x = torch.randn(20, 3, generator=generator, dtype=F64)
    return net, (x, x @ torch.randn(3, 2, generator=generator, dtype=F64))


def _least_squares() -> tuple[nn.Linear, tuple[Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(1)
    x, y = (
        torch.randn(30, 3, generator=generator, dtype=F64),
        torch.randn(30, 1, generator=generator, dtype=F64),
    )
    solution = torch.linalg.lstsq(torch.cat([x, torch.ones(30, 1, dtype=F64)], 1), y).solution
    model = nn.Linear(3, 1).to(F64)
    with torch.no_grad():
        model.weight.copy_(solution[:3].T)
        model.bias.copy_(solution[3])
    return model, (x, y)


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("eps", [1e-6, 1e-3])
def test_shares_and_minimum_ratio_equal_exact_counts(name: str, eps: float) -> None:
    p = problem(name)
    point = classify(p.model, p.loss_fn, (p.x, p.y), eps=eps)
    values = p.eigenvalues
    threshold = eps * float(values.abs().max())
    positive, negative = int((values > threshold).sum()), int((values < -threshold).sum())
    assert point.counts == (positive, negative, p.n - positive - negative)
    assert point.method == "dense" and point.shares_stderr is None and point.minimum_ratio_stderr == 0.0
    assert (point.positive_share, point.negative_share) == (positive / p.n, negative / p.n)
    assert point.minimum_ratio == positive / (positive + negative)
    assert point.lambda_min == pytest.approx(float(values[0]), rel=1e-9)
    assert point.lambda_max == pytest.approx(float(values[-1]), rel=1e-9)
    assert point.flat_threshold == pytest.approx(threshold, rel=1e-9)
    # a random point: the gradient is large, so it is not a critical point whatever the curvature says
    assert point.kind is CriticalKind.NOT_CRITICAL and point.hessian_kind is CriticalKind.SADDLE
    assert point.gradient_norm > 1e-2
    overlap = float(point.min_eigenvector.to(F64) @ p.eigenvectors[:, 0])  # λ_min is simple in all three
    assert abs(overlap) == pytest.approx(1.0, abs=1e-8)
    assert "not a critical point" in point.summary() and f"{p.n:,} eigenvalues" in point.summary()


def test_lanczos_path_agrees_with_the_exact_one() -> None:
    p = problem("mlp-ce")
    point = classify(p.model, p.loss_fn, (p.x, p.y), method="lanczos", dtype=F64, num_probes=16, num_steps=30)
    scale = float(p.eigenvalues.abs().max())
    assert point.method == "lanczos+slq" and point.counts is None
    assert abs(point.lambda_min - float(p.eigenvalues[0])) <= 1e-4 * scale
    assert abs(point.lambda_max - float(p.eigenvalues[-1])) <= 1e-4 * scale
    assert point.hessian_kind is CriticalKind.SADDLE
    assert point.shares_stderr is not None and point.shares_bound is not None
    threshold = 1e-6 * scale
    truth = (
        float((p.eigenvalues > threshold).double().mean()),
        float((p.eigenvalues < -threshold).double().mean()),
    )
    for estimate, stderr, bound, exact in zip(
        (point.positive_share, point.negative_share),
        point.shares_stderr,
        point.shares_bound,
        truth,
        strict=False,
    ):
        assert abs(estimate - exact) <= 4 * stderr + bound + 0.01
    assert "from the quadrature" in point.summary()


def test_two_weight_saddle_is_classified_and_escaped_along_one_one() -> None:
    net, data = _two_weight_saddle()
    point = classify(net, nn.functional.mse_loss, data)
    assert point.kind is CriticalKind.SADDLE
    assert point.gradient_norm == 0.0 and point.loss == 1.0
    assert point.lambda_min == pytest.approx(-2.0, abs=1e-12) and point.lambda_max == pytest.approx(
        2.0, abs=1e-12
    )
    assert point.counts == (1, 1, 0) and point.minimum_ratio == 0.5
    direction = point.min_eigenvector.to(F64) * torch.sign(point.min_eigenvector[0])
    torch.testing.assert_close(direction, torch.tensor([1.0, 1.0], dtype=F64) / math.sqrt(2))
    out = escape(net, nn.functional.mse_loss, data, apply=True)
    assert out.escaped and out.applied and out.lambda_min == pytest.approx(-2.0)
    # along ±[1, 1]/√2 with step α: w1·w2 = α²/2, so L = (1 − α²/2)²
    assert out.loss_after == pytest.approx((1 - out.step_size**2 / 2) ** 2, rel=1e-12)
    assert out.loss_after < out.loss_before == 1.0 and out.decrease > 0
    w1, w2 = (float(q.detach()) for q in net.parameters())
    assert w1 * w2 > 0 and w1 == pytest.approx(w2)
    assert HessianOperator(net, nn.functional.mse_loss, data).loss() == pytest.approx(out.loss_after)


def test_deep_linear_network_at_zero_is_a_saddle_and_escape_lowers_the_loss() -> None:
    net, data = _deep_linear(depth=2)
    point = classify(net, nn.functional.mse_loss, data)
    truth = torch.linalg.eigvalsh(dense_hessian(net, nn.functional.mse_loss, *data))
    assert point.kind is CriticalKind.SADDLE and point.gradient_norm == 0.0
    assert point.lambda_min == pytest.approx(float(truth[0]), rel=1e-9)
    assert point.lambda_min < 0
    assert point.lambda_min == pytest.approx(-point.lambda_max, rel=1e-9)  # ±σ(Σ_yx) pairs at the origin
    lanczos_point = classify(net, nn.functional.mse_loss, data, method="lanczos", num_steps=20)
    assert lanczos_point.kind is CriticalKind.SADDLE
    out = escape(net, nn.functional.mse_loss, data)
    assert out.escaped and not out.applied and out.loss_after < out.loss_before
    assert all(not bool(q.detach().any()) for q in net.parameters())  # apply=False: model untouched


def test_zero_hessian_at_a_higher_order_saddle_is_inconclusive_not_a_minimum() -> None:
    net, data = _deep_linear(depth=3)
    H = HessianOperator(net, nn.functional.mse_loss, data)
    assert float((H @ torch.ones(H.shape[0], dtype=F64)).abs().max()) == 0.0  # zero here, not an error
    point = classify(net, nn.functional.mse_loss, data)
    assert point.kind is CriticalKind.INCONCLUSIVE
    assert point.counts == (0, 0, H.shape[0])
    out = escape(net, nn.functional.mse_loss, data)
    assert not out.escaped and "Hessian is zero" in out.reason


def test_least_squares_solution_is_a_minimum_and_a_maximum_when_negated() -> None:
    model, data = _least_squares()
    point = classify(model, nn.functional.mse_loss, data)
    assert point.kind is CriticalKind.LOCAL_MINIMUM
    assert point.gradient_norm < 1e-10 and point.counts == (4, 0, 0) and point.minimum_ratio == 1.0
    before = [q.detach().clone() for q in model.parameters()]
    out = escape(model, nn.functional.mse_loss, data, apply=True)
    assert not out.escaped and "no negative curvature" in out.reason and not out.applied
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    def negated(outputs: Tensor, targets: Tensor) -> Tensor:
        return -nn.functional.mse_loss(outputs, targets)

    assert classify(model, negated, data).kind is CriticalKind.LOCAL_MAXIMUM


def test_large_gradient_is_not_critical_whatever_the_curvature() -> None:
    model, data = _least_squares()
    with torch.no_grad():
        model.bias.add_(1.0)
    point = classify(model, nn.functional.mse_loss, data, grad_tol=1e-3)
    assert point.kind is CriticalKind.NOT_CRITICAL and point.hessian_kind is CriticalKind.LOCAL_MINIMUM
    # every residual grows by 1: ∇L = 2·(mean x, 1) (it was 0 at the least-squares solution)
    assert point.gradient_norm == pytest.approx(
        2 * math.sqrt(1 + float(data[0].mean(0).norm()) ** 2), rel=1e-9
    )
    assert classify(model, nn.functional.mse_loss, data, grad_tol=3.0).kind is CriticalKind.LOCAL_MINIMUM


def test_hw2_2_gauss_newton_blocks_are_psd_while_the_exact_hessian_has_a_saddle() -> None:
    result = hw2_2_comparison(num_points=16, train_steps=30, grad_steps=2)
    largest = max(result.gn_block_max_eigenvalues)
    assert result.gn_block_names == ("0", "2") and result.gn_block_sizes == (256, 129)
    assert result.exact.num_params == 385
    # per-layer Gauss-Newton: sums of outer products, PSD up to round-off, so its "ratio" cannot see a saddle
    assert min(result.gn_block_min_eigenvalues) >= -1e-12 * largest
    assert 0.0 <= result.homework_ratio <= 1.0
    assert result.homework_verdict == ("local minimum like" if result.homework_ratio > 0.5 else "saddle")
    # the exact Hessian has genuinely negative eigenvalues, all from the blocks coupling the layers
    exact = result.exact
    assert exact.hessian_kind is CriticalKind.SADDLE and exact.counts is not None and exact.counts[1] > 0
    assert exact.lambda_min < -1e-3 * exact.lambda_max
    assert result.negative_eigenvalues.numel() == exact.counts[1]
    assert min(result.hessian_block_min_eigenvalues) >= -1e-12 * largest
    assert result.diagonal_residual_norm <= 1e-12 * largest and result.coupling_norm > 1e-3
    assert result.negative_mass_in_coupling >= 1.0 - 1e-9


def test_float32_lanczos_never_counts_noise_as_curvature() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 24), nn.ReLU(), nn.Linear(24, 3))
    first = model[0]
    assert isinstance(first, nn.Linear)
    with torch.no_grad():
        first.bias[:12] = -50.0  # half the hidden units are dead: 84 exactly flat directions
    x, y = torch.randn(200, 6), torch.randint(0, 3, (200,))
    exact = classify(model, nn.functional.cross_entropy, (x, y), method="dense", dtype=torch.float64)
    assert exact.counts is not None and exact.counts[2] >= 84
    point = classify(model, nn.functional.cross_entropy, (x, y), method="lanczos", dtype=torch.float32)
    assert point.flat_threshold >= point.noise_floor > 10 * torch.finfo(torch.float32).eps * point.lambda_max
    assert point.shares_stderr is not None and point.shares_bound is not None
    # noise is not negative curvature: the negative share is the exact one within its error
    assert abs(point.negative_share - exact.negative_share) <= 3 * point.shares_stderr[1] + 0.02
    # the zero cluster is not resolved by 60 quadrature nodes: the result says so instead of guessing
    assert not point.shares_resolved and max(point.shares_bound) > 0.05
    assert "INCONCLUSIVE" in point.summary()


def test_lanczos_shares_resolved_when_the_quadrature_is_exact() -> None:
    p = problem("mlp-mse")  # n = 38 ≤ num_steps: the Krylov space is the whole space
    point = classify(p.model, p.loss_fn, (p.x, p.y), method="lanczos", dtype=torch.float32)
    exact = classify(p.model, p.loss_fn, (p.x, p.y), method="dense")
    assert point.shares_resolved
    assert point.negative_share == pytest.approx(exact.negative_share, abs=0.01)  # float32 weights
