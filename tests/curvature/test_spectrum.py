"""SLQ spectral density, Hutchinson and Hutch++ against exact eigenvalues, within their stated errors."""

from __future__ import annotations

import pytest
import torch

from ravine.curvature import HessianOperator, SpectralDensity, hutchinson, hutchpp, spectral_density
from ravine.errors import ConfigError

from ._helpers import F64, PROBLEMS, problem

FLOOR = 0.01  # absolute floor on share tolerances: the stderr of a few probes is itself uncertain


def _exact_shares(values: torch.Tensor, eps: float) -> tuple[float, float, float]:
    threshold = eps * float(values.abs().max())
    n = values.shape[0]
    positive = int((values > threshold).sum()) / n
    negative = int((values < -threshold).sum()) / n
    return positive, negative, 1.0 - positive - negative


def _assert_shares_within_errors(density: SpectralDensity, values: torch.Tensor, eps: float) -> None:
    positive, negative, flat = _exact_shares(values, eps)
    for estimate, stderr, bound, truth in (
        (density.positive_share, density.positive_stderr, density.positive_bound, positive),
        (density.negative_share, density.negative_stderr, density.negative_bound, negative),
        (density.flat_share, density.flat_stderr, density.flat_bound, flat),
        (
            density.minimum_ratio,
            density.minimum_ratio_stderr,
            density.minimum_ratio_bound,
            positive / (positive + negative),
        ),
    ):
        assert abs(estimate - truth) <= 4 * stderr + bound + FLOOR, (estimate, truth, stderr, bound)


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("eps", [1e-6, 1e-3])
def test_slq_with_full_quadrature_matches_exact_shares_and_trace(name: str, eps: float) -> None:
    p = problem(name)
    H = HessianOperator(p.model, p.loss_fn, (p.x, p.y))
    density = spectral_density(H, num_probes=16, num_steps=p.n, eps=eps, seed=1)
    assert (
        density.num_hvps == H.num_hvps <= 16 * p.n
    )  # probes stop early once their Krylov space is invariant
    assert (density.positive_bound, density.negative_bound, density.minimum_ratio_bound) == (0.0, 0.0, 0.0)
    assert density.lambda_abs_max == pytest.approx(float(p.eigenvalues.abs().max()), rel=1e-8)
    _assert_shares_within_errors(density, p.eigenvalues, eps)
    assert 0 < density.positive_stderr < 0.1
    trace = float(p.eigenvalues.sum())
    assert abs(density.trace - trace) <= 4 * density.trace_stderr + 1e-9 * abs(trace)
    mass = float(torch.trapezoid(density.density, density.grid))
    assert mass == pytest.approx(1.0, abs=1e-3)
    assert bool((density.weights.sum(1) - 1).abs().max() < 1e-10)


@pytest.mark.parametrize(("name", "steps"), [("mlp-ce", 30), ("cnn-ce", 20)])
def test_slq_with_few_steps_reports_a_quadrature_bound_that_covers_its_bias(name: str, steps: int) -> None:
    p = problem(name)
    eps = 1e-6
    density = spectral_density(p.hessian, num_probes=16, num_steps=steps, eps=eps, seed=2)
    assert density.num_steps == steps
    assert density.positive_bound > 0 and density.negative_bound > 0
    _assert_shares_within_errors(density, p.eigenvalues, eps)
    if name == "cnn-ce":  # 19% exact zeros: quadrature smears them away, the stderr alone would be wrong
        _, _, flat = _exact_shares(p.eigenvalues, eps)
        assert flat > 0.15
        assert abs(density.flat_share - flat) > 4 * density.flat_stderr + FLOOR
        assert abs(density.flat_share - flat) <= density.flat_bound


def test_slq_on_a_known_diagonal_spectrum() -> None:
    A = torch.diag(torch.tensor([-2.0, -1.0, 0.0, 0.0, 1e-9, 1.0, 2.0, 3.0], dtype=F64))
    density = spectral_density(A, num_probes=4, num_steps=8, eps=1e-6)
    # every probe's Krylov space becomes invariant: quadrature exact, and shares exact up to probe weights
    assert density.positive_bound == 0.0
    assert float(density.nodes[torch.isfinite(density.nodes)].min()) == pytest.approx(-2.0)
    assert density.trace == pytest.approx(3.0 + 1e-9, abs=1e-9)  # Rademacher: zᵀAz = tr A exactly (diagonal)
    assert density.positive_share + density.negative_share + density.flat_share == pytest.approx(1.0)
    assert density.flat_share == pytest.approx(3 / 8, abs=1e-12)


@pytest.mark.parametrize("name", PROBLEMS)
def test_hutchinson_and_hutchpp_within_their_stderr(name: str) -> None:
    p = problem(name)
    trace = float(p.eigenvalues.sum())
    H = HessianOperator(p.model, p.loss_fn, (p.x, p.y))
    for estimate in (
        hutchinson(H, num_hvps=40, seed=3),
        hutchinson(H, num_hvps=40, seed=3, distribution="gaussian"),
        hutchpp(H, num_hvps=30, seed=3),
    ):
        assert abs(estimate.estimate - trace) <= 4 * estimate.stderr + 1e-9 * abs(trace), estimate
        assert 0 < estimate.stderr < abs(trace) + float(p.eigenvalues.abs().max()) * p.n
    assert H.num_hvps == 40 + 40 + 30


def test_hutchpp_beats_hutchinson_on_a_dominant_low_rank_part() -> None:
    generator = torch.Generator().manual_seed(0)
    n = 200
    U, _ = torch.linalg.qr(torch.randn(n, 5, generator=generator, dtype=F64))
    noise = torch.randn(n, n, generator=generator, dtype=F64) * 0.01
    A = U @ torch.diag(torch.tensor([100.0, 80.0, 60.0, 40.0, 20.0], dtype=F64)) @ U.T + (noise + noise.T) / 2
    trace = float(torch.trace(A))
    plain, sketched = hutchinson(A, num_hvps=60, seed=1), hutchpp(A, num_hvps=60, seed=1)
    assert sketched.num_hvps == plain.num_hvps == 60
    assert abs(sketched.estimate - trace) <= 4 * sketched.stderr + 1e-9 * abs(trace)
    assert abs(plain.estimate - trace) <= 4 * plain.stderr
    assert sketched.stderr < plain.stderr / 10
    exact = hutchinson(torch.eye(30, dtype=F64), num_hvps=5)
    assert exact.estimate == pytest.approx(30.0) and exact.stderr == 0.0


def test_bad_arguments_name_the_value() -> None:
    A = torch.eye(3, dtype=F64)
    with pytest.raises(ConfigError, match="num_probes=0"):
        spectral_density(A, num_probes=0)
    with pytest.raises(ConfigError, match="grid_size=1"):
        spectral_density(A, grid_size=1)
    with pytest.raises(ConfigError, match=r"sigma=-1\.0"):
        spectral_density(A, sigma=-1.0)
    with pytest.raises(ConfigError, match="num_hvps=1"):
        hutchinson(A, num_hvps=1)
    with pytest.raises(ConfigError, match="distribution='uniform'"):
        hutchinson(A, distribution="uniform")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="num_hvps=5"):
        hutchpp(A, num_hvps=5)
