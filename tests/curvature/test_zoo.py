"""The model zoo: H v on attention, RNNs, BatchNorm and Hugging Face models, out of the box.

Every model, cached and uncached, on one batch and on a DataLoader of unequal batches, against a float64
plain-autograd double backward (see ``_zoo.Reference``): float64 ≤ 1e-8 relative (≤ 1e-6 where the model's
own loss upcasts to float32), float32 ≤ 1e-4. Once per model: the reference against a central finite
difference of its gradient, and Lanczos' top eigenvalue against SciPy's eigsh on the reference operator.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

from ravine.curvature import HessianOperator, lanczos
from ravine.errors import RavineWarning

from ._zoo import F64, NAMES, Reference, Zoo, build

FLOAT32 = ("transformer-encoder", "lstm", "gru", "rnn", "hf-gpt2")
CASES = [(name, F64) for name in NAMES] + [(name, torch.float32) for name in FLOAT32]


@contextmanager
def quiet() -> Iterator[None]:
    """The warnings these models earn on purpose (BatchNorm's mode, a float32 loss) are tested elsewhere."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RavineWarning)
        yield


def _operator(zoo: Zoo, data: Any, dtype: torch.dtype, cache: bool) -> HessianOperator:
    model = zoo.model if dtype == F64 else copy.deepcopy(zoo.model).to(dtype)
    return HessianOperator(model, zoo.loss_fn, data, train_mode=zoo.train_mode, cache=cache)


@functools.cache
def _expected(name: str, form: str) -> tuple[Zoo, Any, torch.Tensor, torch.Tensor]:
    """One zoo entry per model and data form, its data, two vectors V and the reference H V, shared by the
    cases (cached or not, float64 or float32): ravine's operator leaves the float64 model as it was."""
    zoo = build(name)
    if form == "batch":
        zoo = dataclasses.replace(zoo, batches=zoo.batches[:1], weights=zoo.weights[:1])
        data: Any = zoo.batches[0]
    else:
        data = zoo.loader
    reference = Reference(zoo)  # copies the float64 model
    n = sum(p.numel() for p in reference.params)
    V = torch.randn(n, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    return zoo, data, V, torch.stack([reference.hvp(V[:, j]) for j in range(2)], 1)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.to(F64) - b).norm() / b.norm())


@pytest.mark.parametrize("form", ["batch", "loader"])
@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize(("name", "dtype"), CASES, ids=[f"{n}-{str(d)[6:]}" for n, d in CASES])
def test_hvp_matches_a_float64_double_backward(name: str, dtype: torch.dtype, cache: bool, form: str) -> None:
    zoo, data, V, expected = _expected(name, form)
    before, mode = [p.detach().clone() for p in zoo.model.parameters()], zoo.model.training
    with quiet():
        H = _operator(zoo, data, dtype, cache)
        products = H @ V
    assert H.shape == (V.shape[0], V.shape[0])
    tolerance = 1e-4 if dtype == torch.float32 else (1e-6 if zoo.upcasts else 1e-8)
    for j in range(2):
        assert _relative(products[:, j], expected[:, j]) <= tolerance
    # the shared float64 model is as it was (dtype, values, mode), for the next case
    after = list(zoo.model.parameters())
    assert all(p.dtype == F64 and torch.equal(p, q) for p, q in zip(after, before, strict=True))
    assert zoo.model.training == mode
    if cache and form == "batch":
        assert H.cache_active


@pytest.mark.parametrize("name", NAMES)
def test_reference_equals_finite_differences_and_lanczos_equals_eigsh(name: str) -> None:
    zoo = build(name)
    reference = Reference(zoo)
    n = sum(p.numel() for p in reference.params)
    v = torch.randn(n, generator=torch.Generator().manual_seed(2), dtype=F64)
    v = v / v.norm()
    # the double backward against central differences of the gradient (truncation ~h², round-off ~ε/h).
    # GPT-2 and Llama compute parts of their forward in float32 whatever the dtype (GPT-2's attention
    # weights, Llama's RMSNorm) besides their loss: the same loss is taken in float64 and a larger step keeps
    # the float32 round-off (~1e-7/h) down; the others are float64 throughout.
    if zoo.upcasts:
        checked, step, tolerance = Reference(zoo, float64_loss=True), 1e-3, 1e-4
    else:
        checked, step, tolerance = reference, 1e-5, 1e-6
    assert _relative(checked.central_difference(v, step), checked.hvp(v)) <= tolerance

    def matvec(x: np.ndarray) -> np.ndarray:
        return reference.hvp(torch.from_numpy(np.ascontiguousarray(x).reshape(-1))).numpy()

    # a residual below the operator's own noise (float32 parts: ~1e-7 relative) cannot be reached; the truth
    # needs only the accuracy of the comparison (its Ritz value is within its residual, ≤ 1e-5·λ, of λ)
    tol = 1e-6 if zoo.upcasts else 1e-8
    operator = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    truth = float(eigsh(operator, k=1, which="LA", tol=1e-5, ncv=8)[0][0])
    with quiet():  # the loader's batches as a list: the same data, products through the cache
        H = HessianOperator(zoo.model, zoo.loss_fn, zoo.batches, train_mode=zoo.train_mode)
        top = lanczos(H, 1, tol=tol)
    assert top.all_converged and H.cache_active
    assert abs(float(top.eigenvalues[0]) - truth) <= 1e-3 * abs(truth)


def test_user_kernel_settings_are_restored() -> None:
    zoo = build("transformer-encoder")
    flags: tuple[Callable[[], bool], ...] = (
        torch.backends.cuda.flash_sdp_enabled,
        torch.backends.cuda.mem_efficient_sdp_enabled,
    )
    before = [f() for f in flags], torch.backends.mha.get_fastpath_enabled(), torch.backends.mkldnn.enabled
    torch.backends.cuda.enable_mem_efficient_sdp(False)  # a user's own choice must survive too
    try:
        chosen = (
            [f() for f in flags],
            torch.backends.mha.get_fastpath_enabled(),
            torch.backends.mkldnn.enabled,
        )
        H = HessianOperator(zoo.model, zoo.loss_fn, zoo.loader, cache=False)
        H @ torch.ones(H.shape[0], dtype=F64)
        rnn = build("lstm")
        R = HessianOperator(rnn.model, rnn.loss_fn, rnn.loader)
        R @ torch.ones(R.shape[0], dtype=F64)
        after = [f() for f in flags], torch.backends.mha.get_fastpath_enabled(), torch.backends.mkldnn.enabled
        assert after == chosen
    finally:
        torch.backends.cuda.enable_mem_efficient_sdp(before[0][1])


def test_float64_request_with_a_float32_loss_warns() -> None:
    zoo = build("hf-gpt2")
    H = HessianOperator(zoo.model, data=zoo.loader, dtype=F64)
    with pytest.warns(RavineWarning, match=r"loss is computed in torch\.float32"):
        H.loss()
    bert = build("hf-bert")  # its loss stays in float64: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", RavineWarning)
        HessianOperator(bert.model, data=bert.loader).loss()
