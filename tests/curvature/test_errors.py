"""Bad inputs raise a RavineError subclass that names what was received; BatchNorm and Dropout modes."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from ravine.curvature import GGNOperator, HessianOperator, RavineWarning, classify
from ravine.errors import (
    ConfigError,
    CurvatureError,
    DataError,
    MemoryBudgetError,
    NonFiniteError,
    RavineError,
)

from ._helpers import F64, dense_hessian, flat_loss, torch_jit_quiet

mse = nn.functional.mse_loss


def _linear() -> tuple[nn.Sequential, tuple[Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).to(F64)
    x, y = (
        torch.randn(12, 3, generator=generator, dtype=F64),
        torch.randn(12, 1, generator=generator, dtype=F64),
    )
    return model, (x, y)


class _Quantised(nn.Module):
    """A linear layer followed by a step function (round or sign): derivatives vanish almost everywhere."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.step = step

    def forward(self, x: Tensor) -> Tensor:
        h = self.linear(x)
        return torch.round(3 * h) if self.step == "round" else torch.sign(h)


def _detached_residual_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """A surrogate with the right gradient, (o − y)·∇o, but no second derivative through the residual."""
    return ((outputs - targets).detach() * outputs).mean()


class _CubeNoJvp(torch.autograd.Function):
    @staticmethod
    def forward(a: Tensor) -> Tensor:
        return a**3

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        a: Tensor = ctx.saved_tensors[0]
        return 3 * a**2 * grad_output


class _Cube(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = _CubeNoJvp.apply(self.linear(x))  # type: ignore[no-untyped-call]
        return out


def test_every_error_is_a_ravine_error_with_a_builtin_base() -> None:
    assert issubclass(MemoryBudgetError, MemoryError) and issubclass(NonFiniteError, FloatingPointError)
    assert issubclass(CurvatureError, RuntimeError) and issubclass(DataError, ValueError)
    for error in (ConfigError, CurvatureError, DataError, MemoryBudgetError, NonFiniteError):
        assert issubclass(error, RavineError)


def test_non_scalar_loss() -> None:
    model, data = _linear()
    H = HessianOperator(model, lambda o, t: mse(o, t, reduction="none"), data)
    with pytest.raises(
        CurvatureError, match=r"must return a scalar .* got shape \(12, 1\); use reduction='mean'"
    ):
        H.matvec(torch.ones(H.shape[0], dtype=F64))
    with pytest.raises(CurvatureError, match="must return a tensor, got float"):
        HessianOperator(model, lambda o, t: 1.0, data).loss()  # type: ignore[arg-type, return-value]


def test_frozen_and_badly_selected_parameters() -> None:
    model, data = _linear()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match=r"none of the model's 4 parameters requires grad \(all frozen\)"):
        HessianOperator(model, mse, data)
    with pytest.raises(ConfigError, match=r"do not require grad: \['0.weight'\]"):
        HessianOperator(model, mse, data, params=["0.weight"])
    model.get_parameter("0.weight").requires_grad_(True)
    assert HessianOperator(model, mse, data).parameter_names == ["0.weight"]
    with pytest.raises(ConfigError, match="no parameter named 'w'"):
        HessianOperator(model, mse, data, params=["w"])
    with pytest.raises(ConfigError, match="lists a parameter twice"):
        HessianOperator(model, mse, data, params=["0.weight", "0.weight"])
    with pytest.raises(ConfigError, match="params is empty"):
        HessianOperator(model, mse, data, params=[])
    with pytest.raises(ConfigError, match="parameter names or the model's parameters, got"):
        HessianOperator(model, mse, data, params=[nn.Parameter(torch.zeros(2))])


@pytest.mark.parametrize("case", ["round", "sign", "detach"])
def test_not_twice_differentiable_models(case: str) -> None:
    _, (x, y) = _linear()
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    if case == "detach":
        model: nn.Module = nn.Linear(3, 1).to(F64)
        loss_fn = _detached_residual_loss
    else:
        model, loss_fn = _Quantised(case).to(F64), mse
    H = HessianOperator(model, loss_fn, (x, y))
    assert (float(H.gradient().norm()) > 0) == (case == "detach")  # the surrogate keeps first order
    with pytest.raises(
        CurvatureError, match=r"identically zero .* not twice differentiable .* allow_zero=True"
    ):
        H.matvec(torch.ones(H.shape[0], dtype=F64))
    allowed = HessianOperator(model, loss_fn, (x, y), allow_zero=True)
    assert not bool(allowed.dense().any())


def test_piecewise_linear_loss_and_custom_function_without_jvp() -> None:
    _, (x, y) = _linear()
    linear = nn.Linear(3, 1).to(F64)
    with pytest.raises(CurvatureError, match="piecewise linear"):
        HessianOperator(linear, nn.functional.l1_loss, (x, y)).dense()
    cube = _Cube().to(F64)
    assert HessianOperator(cube, mse, (x, y)).loss() > 0  # plain evaluation works: only forward-mode AD fails
    # the cached product is reverse-over-reverse: it needs no jvp; the uncached one falls back to it
    theta, loss_of = flat_loss(cube, mse, x, y)
    reference = torch.autograd.functional.hessian(loss_of, theta)  # reverse-over-reverse, no vmap
    for cache in (True, False):
        H = HessianOperator(cube, mse, (x, y), cache=cache)
        assert float((H.dense() - reference).abs().max()) < 1e-10
        assert H._reverse is (not cache)


def test_nan_in_the_loss() -> None:
    model, (x, y) = _linear()
    x = x.clone()
    x[3, 1] = float("nan")
    batches = [(x[:6], y[:6]), (x[6:], y[6:])]
    H = HessianOperator(model, mse, batches)
    with pytest.raises(NonFiniteError, match="mean loss is nan"):
        H.loss()
    with pytest.raises(NonFiniteError, match="loss of a batch is nan"):
        H.gradient()
    with pytest.raises(NonFiniteError, match="Hessian-vector product has NaN/inf"):
        H.matvec(torch.ones(H.shape[0], dtype=F64))
    with pytest.raises(NonFiniteError, match="Gauss-Newton-vector product has NaN/inf"):
        GGNOperator(model, mse, batches).dense()


def test_empty_or_malformed_data() -> None:
    model, (x, y) = _linear()
    empty_loader = DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4)
    cases: list[tuple[Any, str]] = [
        ([], r"no batches"),
        ((x[:0], y[:0]), r"targets tensor has 0 rows"),
        (empty_loader, r"no batches"),
        ([(x[:0], y[:0]), (x[:0], y[:0])], r"no samples in any batch"),
        (None, r"data is None"),
        (x, r"got a single tensor of shape \(12, 3\)"),
        (iter([(x, y)]), r"one-shot iterator \(list_iterator\)"),
        ([(x, y, y)], r"batch 0 must be a pair \(inputs, targets\) or a dict .*, got tuple of length 3"),
        (3, r"must be batches, got int"),
    ]
    for data, message in cases:
        with pytest.raises(DataError, match=message):
            HessianOperator(model, mse, data).loss()


def test_wrong_vector_shapes_and_arguments() -> None:
    model, data = _linear()
    H = HessianOperator(model, mse, data)
    n = H.shape[0]
    with pytest.raises(
        ConfigError, match=rf"matvec expects a flat vector of shape \({n},\).* got \({n + 1},\)"
    ):
        H.matvec(torch.ones(n + 1, dtype=F64))
    with pytest.raises(
        ConfigError, match=rf"matmat expects a tensor of shape \({n}, k\).* got \({n}, 2, 2\)"
    ):
        H @ torch.ones(n, 2, 2, dtype=F64)
    with pytest.raises(ConfigError, match=rf"matmat expects .* got \({n + 2}, 3\)"):
        H.matmat(torch.ones(n + 2, 3, dtype=F64))
    with pytest.raises(ConfigError, match=rf"expected vectors of length {n} .* got shape \(3,\)"):
        H.loss(torch.ones(3, dtype=F64))
    with pytest.raises(ConfigError, match="dtype must be a floating dtype"):
        HessianOperator(model, mse, data, dtype=torch.int64)
    with pytest.raises(ConfigError, match="distributed=True needs an initialised"):
        HessianOperator(model, mse, data, distributed=True)
    with pytest.raises(ConfigError, match="chunk_size=0"):
        HessianOperator(model, mse, data, chunk_size=0)
    with pytest.raises(ConfigError, match=r"model must be a torch\.nn\.Module, got function"):
        HessianOperator(mse, mse, data)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"loss_fn must be callable \(or None.*\), got str"):
        HessianOperator(model, "mse", data)  # type: ignore[arg-type]


def test_dense_too_large_names_the_size() -> None:
    model, data = _linear()
    H = HessianOperator(model, mse, data, max_dense_bytes=1000)
    with pytest.raises(
        MemoryBudgetError, match=r"dense 21 × 21 Hessian matrix in torch.float64 needs 3.4 KiB"
    ):
        H.dense()
    assert H.num_hvps == 0
    assert HessianOperator(model, mse, data, max_dense_bytes=21 * 21 * 8).dense().shape == (21, 21)


def _bn_dropout_model(dropout: float) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Dropout(dropout), nn.Linear(5, 1))
    model = model.to(F64)
    with torch.no_grad():  # non-trivial running statistics
        model[1].running_mean.uniform_(-0.5, 0.5)  # type: ignore[operator]
        model[1].running_var.uniform_(0.5, 2.0)  # type: ignore[operator]
    return model


def test_batchnorm_and_dropout_default_to_eval_mode_and_restore_the_mode() -> None:
    model, (x, y) = _bn_dropout_model(0.5), _linear()[1]
    model.train()
    model[3].eval()  # a mixed state must come back as it was
    state = copy.deepcopy(model.state_dict())
    with pytest.warns(RavineWarning, match="evaluated in eval mode .* train_mode=True") as record:
        H = HessianOperator(model, mse, (x, y))
    assert record[0].filename == __file__  # the warning points at the caller, not into ravine
    dense = H.dense()
    assert [m.training for m in model] == [True, True, True, False, True]
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    reference = copy.deepcopy(model).eval()
    assert float((dense - dense_hessian(reference, mse, x, y)).abs().max()) < 1e-12
    with pytest.warns(RavineWarning, match="eval mode") as record:
        classify(model, mse, (x, y))
    assert record[0].filename == __file__


def test_train_mode_uses_batch_statistics_without_touching_running_ones() -> None:
    model, (x, y) = _bn_dropout_model(0.0), _linear()[1]
    model.eval()
    state = copy.deepcopy(model.state_dict())
    with pytest.warns(RavineWarning, match="train_mode=True uses batch statistics"):
        H = HessianOperator(model, mse, (x, y), train_mode=True)
    dense = H.dense()
    assert not model.training and all(m.track_running_stats for m in model if isinstance(m, nn.BatchNorm1d))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    reference_model = copy.deepcopy(model).train()  # classic autograd: free to update the copy's statistics
    theta, loss_of = flat_loss(reference_model, mse, x, y)
    with torch_jit_quiet():
        reference = torch.autograd.functional.hessian(loss_of, theta)
    assert isinstance(reference, Tensor)
    assert float((dense - reference).abs().max()) < 1e-12
    eval_dense = dense_hessian(copy.deepcopy(model).eval(), mse, x, y)
    assert float((dense - eval_dense).abs().max()) > 1e-3  # the two modes really differ


def test_train_mode_dropout_gives_one_fixed_matrix_and_leaves_the_rng_alone() -> None:
    model, (x, y) = _bn_dropout_model(0.3), _linear()[1]
    batches = [(x[:5], y[:5]), (x[5:], y[5:])]
    with pytest.warns(RavineWarning):
        chunked = HessianOperator(model, mse, batches, train_mode=True, chunk_size=4)
    with pytest.warns(RavineWarning):
        whole = HessianOperator(model, mse, batches, train_mode=True, chunk_size=None)
    with pytest.warns(RavineWarning):
        evaluated = HessianOperator(model, mse, batches)
    n = chunked.shape[0]
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    A = chunked.dense()
    assert torch.equal(torch.rand(3), expected_draw)
    columns = torch.stack([whole.matvec(e) for e in torch.eye(n, dtype=F64)], 1)
    assert float((A - columns).abs().max()) < 1e-12  # same dropout mask for every vector and chunk
    assert float((A - whole.dense()).abs().max()) < 1e-12
    assert float((chunked.gradient() - whole.gradient()).abs().max()) < 1e-12
    assert float((A - evaluated.dense()).abs().max()) > 1e-3


class _CubeOldStyle(torch.autograd.Function):
    """A custom Function in the old style (ctx in forward, no setup_context): torch.func refuses it."""

    @staticmethod
    def forward(ctx: Any, a: Tensor) -> Tensor:
        ctx.save_for_backward(a)
        return a**3

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        a: Tensor = ctx.saved_tensors[0]
        return 3 * a**2 * grad_output


class _OldStyleCube(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = _CubeOldStyle.apply(self.linear(x))  # type: ignore[no-untyped-call]
        return out


def test_a_loss_fn_type_error_names_the_loss_fn_not_autograd_functions() -> None:
    model, data = _linear()

    def one_argument(outputs: Tensor) -> Tensor:
        return outputs.mean()

    refusal = r"loss_fn one_argument\(outputs: .*\).* cannot be called as loss_fn\(outputs, targets\) .* that signature"
    with pytest.raises(ConfigError, match=refusal) as refused:
        HessianOperator(model, one_argument, data)  # type: ignore[arg-type]
    assert "autograd.Function" not in str(refused.value)

    def bad_keyword(outputs: Tensor, targets: Tensor) -> Tensor:
        return mse(outputs, targets, bogus=1)  # type: ignore[call-arg]

    H = HessianOperator(model, bad_keyword, data)
    for call in (H.loss, lambda: H.matvec(torch.ones(H.shape[0], dtype=F64))):
        with pytest.raises(CurvatureError) as raised:
            call()
        message = str(raised.value)
        assert "loss_fn " in message and "bad_keyword raised TypeError" in message and "'bogus'" in message
        assert "outputs was a torch.float64 tensor of shape (12, 1)" in message
        assert "loss_fn(outputs, targets)" in message and "autograd.Function" not in message
        assert isinstance(raised.value.__cause__, TypeError)
    # a loss module, a functional loss and a partial with keywords are accepted as they are
    for loss_fn in (nn.MSELoss(), mse, functools.partial(mse, reduction="mean")):
        assert float(HessianOperator(model, loss_fn, data).loss()) > 0


@pytest.mark.parametrize("cache", [True, False])
def test_an_old_style_autograd_function_is_named_as_the_cause(cache: bool) -> None:
    _, (x, y) = _linear()
    H = HessianOperator(_OldStyleCube().to(F64), mse, (x, y), cache=cache)
    with pytest.raises(CurvatureError, match=r"custom torch.autograd.Function .* setup_context staticmethod"):
        H.matvec(torch.ones(H.shape[0], dtype=F64))
