"""lanczos: extreme eigenpairs of Hessians and random symmetric matrices, certified by residuals."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ravine.curvature import EigenResult, HessianOperator, lanczos
from ravine.errors import ConfigError

from ._helpers import F64, problem


def _check_certificates(A: torch.Tensor, result: EigenResult, truth: torch.Tensor) -> None:
    """Reported residuals are the true ‖Ax − θx‖; each θ lies within its residual of an eigenvalue."""
    X, theta = result.eigenvectors.to(F64), result.eigenvalues.to(F64)
    residuals = (A @ X - X * theta).norm(dim=0)
    scale = float(truth.abs().max())
    torch.testing.assert_close(result.residuals, residuals, rtol=1e-6, atol=1e-12 * scale)
    distance = (theta[:, None] - truth[None, :]).abs().min(dim=1).values
    assert bool((distance <= residuals + 1e-12 * scale).all())
    torch.testing.assert_close(X.T @ X, torch.eye(X.shape[1], dtype=F64), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["mlp-ce", "cnn-ce"])
@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_extreme_eigenvalues_of_hessians_match_eigh(name: str, which: str) -> None:
    p = problem(name)
    H = HessianOperator(p.model, p.loss_fn, (p.x, p.y))
    k = 3
    result = lanczos(H, k, which=which, tol=1e-9)  # type: ignore[arg-type]
    truth = p.eigenvalues
    expected = {
        "largest": truth[-k:].flip(0),
        "smallest": truth[:k],
        "both": torch.cat([truth[:k], truth[-k:]]),
    }[which]
    scale = float(truth.abs().max())
    assert result.all_converged
    assert result.eigenvalues.shape == expected.shape
    assert float((result.eigenvalues - expected).abs().max()) <= 1e-4 * scale
    assert float((result.eigenvalues - expected).abs().max()) <= 1e-8 * scale  # what it actually achieves
    assert result.num_hvps == H.num_hvps  # ravine's own zero-check probe is not counted
    _check_certificates(p.hessian, result, truth)
    assert result.smallest_sign() == ("positive" if which == "largest" else "negative")


def test_thick_restarts_keep_accuracy_and_report_unconverged_pairs() -> None:
    generator = torch.Generator().manual_seed(3)
    n = 300
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=F64))
    values = torch.linspace(-1.0, 1.0, n, dtype=F64) ** 3 * 5
    A = Q @ torch.diag(values) @ Q.T
    result = lanczos(A, 4, which="both", tol=1e-10, max_basis=30, max_hvps=3000)
    assert result.restarts > 0
    assert result.all_converged
    expected = torch.cat([values[:4], values[-4:]])
    assert float((result.eigenvalues - expected).abs().max()) < 1e-8
    _check_certificates(A, result, values)
    starved = lanczos(A, 4, tol=1e-10, max_hvps=8)
    assert starved.num_hvps == 8
    assert not starved.all_converged
    assert bool((starved.residuals[~starved.converged] > 1e-10 * starved.scale).all())


def test_steps_without_a_pass_over_the_basis_keep_rounding_level_accuracy() -> None:
    """Most steps predict T's column and G's row and reduce against two vectors only; over a long run with
    restarts the Ritz values, certificates and the noise floor of an exactly symmetric matrix stay at rounding."""
    generator = torch.Generator().manual_seed(7)
    n = 500
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=F64))
    values = torch.linspace(-1.0, 1.0, n, dtype=F64) ** 3 * 4 + 0.01 * torch.rand(
        n, generator=generator, dtype=F64
    )
    A = Q @ torch.diag(values) @ Q.T
    result = lanczos(A, 5, tol=1e-12, max_hvps=3000)
    assert result.all_converged and result.restarts >= 3
    top = values.sort(descending=True).values[:5]
    assert float((result.eigenvalues - top).abs().max()) <= 1e-12 * result.scale
    assert (
        result.noise_floor <= 2e-13 * result.scale
    )  # a basis taken as orthonormal when it is not shows here
    _check_certificates(A, result, values)


def test_invariant_subspaces_and_repeated_eigenvalues() -> None:
    identity = lanczos(torch.eye(10, dtype=F64), 3, tol=1e-12)
    assert identity.all_converged
    torch.testing.assert_close(identity.eigenvalues, torch.ones(3, dtype=F64))
    torch.testing.assert_close(identity.residuals, torch.zeros(3, dtype=F64), rtol=0, atol=1e-12)
    zero = lanczos(torch.zeros(5, 5, dtype=F64), 2)
    assert zero.all_converged and float(zero.eigenvalues.abs().max()) == 0.0
    assert zero.smallest_sign() == "inconclusive"
    whole = lanczos(torch.diag(torch.tensor([3.0, -1.0, 2.0], dtype=F64)), 3, which="both")
    torch.testing.assert_close(whole.eigenvalues, torch.tensor([-1.0, 2.0, 3.0], dtype=F64))


def test_smallest_sign_is_inconclusive_when_not_certified() -> None:
    values = torch.cat([torch.tensor([1e-7], dtype=F64), torch.linspace(1.0, 100.0, 199, dtype=F64)])
    A = torch.diag(values)
    early = lanczos(A, 1, which="smallest", tol=1e-12, max_hvps=5)
    assert not early.all_converged
    assert early.smallest_sign() == "inconclusive"  # never a wrong "negative" or an uncertified "positive"
    full = lanczos(A, 1, which="smallest", tol=1e-14, max_hvps=400)
    assert full.smallest_sign(flat=1e-9) == "positive"
    assert full.smallest_sign(flat=1e-6) == "inconclusive"


@st.composite
def symmetric_problems(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, int, str, int | None]:
    n = draw(st.integers(2, 70))
    seed = draw(st.integers(0, 2**16))
    which = draw(st.sampled_from(["largest", "smallest", "both"]))
    k = draw(st.integers(1, max(1, n // 3)))
    max_basis = draw(st.sampled_from([None, 2 * (2 * k if which == "both" else k) + 4]))
    generator = torch.Generator().manual_seed(seed)
    # distinct eigenvalues of both signs, spread over decades, with gaps ≥ 1e-3 of the spread
    steps = 1e-3 + torch.rand(n, generator=generator, dtype=F64) * draw(st.sampled_from([1.0, 10.0, 1e3]))
    values = torch.cumsum(steps, 0)
    values = values - values[draw(st.integers(0, n - 1))]
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=F64))
    return Q @ torch.diag(values) @ Q.T, values, k, which, max_basis


@given(symmetric_problems())
def test_random_symmetric_matrices(case: tuple[torch.Tensor, torch.Tensor, int, str, int | None]) -> None:
    A, values, k, which, max_basis = case
    n = A.shape[0]
    result = lanczos(A, k, which=which, tol=1e-10, max_hvps=20 * n, max_basis=max_basis)  # type: ignore[arg-type]
    scale = float(values.abs().max())
    assert result.all_converged
    expected = {
        "largest": values[-k:].flip(0),
        "smallest": values[:k],
        "both": values if 2 * k >= n else torch.cat([values[:k], values[-k:]]),
    }[which]
    assert result.eigenvalues.shape == expected.shape
    assert float((result.eigenvalues - expected).abs().max()) <= 1e-8 * scale
    _check_certificates(A, result, values)


def test_bad_arguments_name_the_value() -> None:
    A = torch.eye(4, dtype=F64)
    with pytest.raises(ConfigError, match=r"k must be in \[1, 4\], got k=5"):
        lanczos(A, 5)
    with pytest.raises(ConfigError, match="which must be"):
        lanczos(A, 1, which="middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tol must be positive"):
        lanczos(A, 1, tol=0.0)
    with pytest.raises(ConfigError, match="square matrix, got shape \\(4, 3\\)"):
        lanczos(torch.zeros(4, 3), 1)
    with pytest.raises(ConfigError, match="v0 must have length 4, got 3"):
        lanczos(A, 1, v0=torch.ones(3))
    with pytest.raises(ConfigError, match="square linear operator"):
        lanczos(object(), 1)


@pytest.mark.parametrize("case", ["restarts", "float32 operator"])
def test_stops_at_the_first_step_whose_residuals_certify(case: str) -> None:
    """The per-step residual estimate neither stops early (exact residuals certify) nor late."""
    if case == "restarts":
        generator = torch.Generator().manual_seed(5)
        n = 200
        Q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=F64))
        A: object = Q @ torch.diag(torch.linspace(-2.0, 3.0, n, dtype=F64) ** 3) @ Q.T
        kwargs: dict[str, object] = {"k": 3, "which": "both", "tol": 1e-8, "max_basis": 20}
    else:
        p = problem("mlp-ce")
        A = HessianOperator(p.model, p.loss_fn, (p.x, p.y), dtype=torch.float32)
        kwargs = {"k": 4, "tol": 1e-3}
    result = lanczos(A, **kwargs, max_hvps=2000)  # type: ignore[arg-type]
    assert result.all_converged
    if case == "restarts":
        assert result.restarts > 0
    one_fewer = lanczos(A, **kwargs, max_hvps=result.num_hvps - 1)  # type: ignore[arg-type]
    assert not one_fewer.all_converged
