"""HessianOperator and GGNOperator against dense references computed without ravine."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ravine.curvature import GGNOperator, HessianOperator

from ._helpers import F64, PROBLEMS, dense_gauss_newton, problem, relative_error, split


@pytest.mark.parametrize("name", PROBLEMS)
def test_dense_and_eigenvalues_equal_torch_func_hessian(name: str) -> None:
    p = problem(name)
    H = HessianOperator(p.model, p.loss_fn, (p.x, p.y))
    dense = H.dense()
    assert H.shape == (p.n, p.n)
    assert relative_error(dense, p.hessian) < 1e-10
    values = torch.linalg.eigvalsh(dense)
    scale = float(p.eigenvalues.abs().max())
    torch.testing.assert_close(values, p.eigenvalues, rtol=1e-6, atol=1e-9 * scale)
    assert float(p.eigenvalues[0]) < 0 < float(p.eigenvalues[-1])  # indefinite: signs are tested


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("name", PROBLEMS)
def test_products_equal_dense_times_vector(name: str, cache: bool) -> None:
    p = problem(name)
    generator = torch.Generator().manual_seed(0)
    V = torch.randn(p.n, 5, generator=generator, dtype=F64)
    for chunk_size in (None, 1, 2):
        H = HessianOperator(p.model, p.loss_fn, (p.x, p.y), chunk_size=chunk_size, cache=cache)
        assert relative_error(H @ V, p.hessian @ V) < 1e-10
        assert relative_error(H @ V[:, 0], p.hessian @ V[:, 0]) < 1e-10
        assert H.num_hvps == 6


@pytest.mark.parametrize("name", ["mlp-mse", "cnn-ce"])
def test_unequal_batches_and_dataloader_give_the_full_batch_hessian(name: str) -> None:
    p = problem(name)
    sizes = [7, p.x.shape[0] - 7 - 11, 11]
    batches = split(p.x, p.y, sizes)
    loader = DataLoader(TensorDataset(p.x, p.y), batch_size=12)  # 12, 12, rest: unequal last batch
    full = HessianOperator(p.model, p.loss_fn, (p.x, p.y))
    for data in (batches, loader):
        H = HessianOperator(p.model, p.loss_fn, data)
        assert relative_error(H.dense(), p.hessian) < 1e-10
        assert relative_error(H.gradient(), full.gradient()) < 1e-10
        assert H.loss() == pytest.approx(full.loss(), rel=1e-12)
        assert H.num_samples == p.x.shape[0]
    # an unweighted mean over batches would differ: the test can tell
    naive = torch.stack([HessianOperator(p.model, p.loss_fn, b).dense() for b in batches]).mean(0)
    assert relative_error(naive, p.hessian) > 1e-3


def test_gradient_and_loss_equal_autograd() -> None:
    p = problem("mlp-ce")
    H = HessianOperator(p.model, p.loss_fn, (p.x, p.y))
    p.model.zero_grad()
    loss = p.loss_fn(p.model(p.x), p.y)
    loss.backward()
    expected = torch.cat([q.grad.reshape(-1) for q in p.model.parameters() if q.grad is not None])
    p.model.zero_grad()
    assert relative_error(H.gradient(), expected) < 1e-12
    assert H.loss() == pytest.approx(loss.item(), rel=1e-13)
    shifted = H.parameters_flat() + 0.01
    pieces = H.unflatten(shifted)
    assert {k: v.shape for k, v in pieces.items()} == {k: q.shape for k, q in p.model.named_parameters()}
    with torch.no_grad():
        moved = torch.func.functional_call(p.model, pieces, (p.x,))
    assert H.loss(shifted) == pytest.approx(p.loss_fn(moved, p.y).item(), rel=1e-13)
    assert H.loss(shifted) != pytest.approx(H.loss(), rel=1e-6)


def test_float32_model_in_float64_and_parameter_subset() -> None:
    p = problem("mlp-mse")
    model32 = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))
    model32.load_state_dict({k: v.float() for k, v in p.model.state_dict().items()})
    H = HessianOperator(model32, p.loss_fn, (p.x.float(), p.y.float()), dtype=F64)
    assert H.dtype == F64
    assert relative_error(H.dense(), p.hessian) < 1e-6  # parameters were rounded to float32
    sub = HessianOperator(p.model, p.loss_fn, (p.x, p.y), params=["2.weight", "0.bias"])
    assert sub.parameter_names == ["2.weight", "0.bias"]
    w2, b0 = slice(24, 36), slice(18, 24)  # offsets of 2.weight and 0.bias in the full flat vector
    order = torch.cat([torch.arange(p.n)[w2], torch.arange(p.n)[b0]])
    assert relative_error(sub.dense(), p.hessian[order][:, order]) < 1e-10
    by_tensor = HessianOperator(p.model, p.loss_fn, (p.x, p.y), params=[p.model.get_parameter("2.weight")])
    assert by_tensor.parameter_names == ["2.weight"]


@pytest.mark.parametrize(("name", "sizes"), [("mlp-mse", [40]), ("mlp-ce", [10, 26]), ("cnn-ce", [30])])
def test_gauss_newton_equals_jt_hout_j_and_is_psd(name: str, sizes: list[int]) -> None:
    p = problem(name)
    expected = dense_gauss_newton(p.model, p.loss_fn, p.x, p.y)
    G = GGNOperator(p.model, p.loss_fn, split(p.x, p.y, sizes)).dense()
    assert relative_error(G, expected) < 1e-10
    values = torch.linalg.eigvalsh(G)
    assert float(values[0]) >= -1e-12 * float(values[-1])
    # the Hessian of the same problem is indefinite: G drops exactly the part with negative curvature
    assert float(p.eigenvalues[0]) < -1e-3 * float(values[-1])
    generator = torch.Generator().manual_seed(1)
    v = torch.randn(p.n, generator=generator, dtype=F64)
    op = GGNOperator(p.model, p.loss_fn, (p.x, p.y), chunk_size=None)
    assert relative_error(op @ v, expected @ v) < 1e-10


def test_repr_names_the_size() -> None:
    p = problem("mlp-mse")
    assert "n=38" in repr(HessianOperator(p.model, p.loss_fn, (p.x, p.y)))
