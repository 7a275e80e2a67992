"""HessianOperator's cache of linearised gradients: same products, invalidated on change, bounded memory."""

from __future__ import annotations

import copy
import gc
import weakref
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ravine.curvature import HessianOperator, RavineWarning, lanczos
from ravine.curvature._cache import AUTO_MAX_BATCHES
from ravine.errors import ConfigError, MemoryBudgetError

from ._helpers import F64, PROBLEMS, build, problem, relative_error, split


def _vectors(n: int, k: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _active(H: HessianOperator) -> bool:
    return H.cache_active  # (a call: mypy would narrow the property across in-place changes)


def _max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("name", PROBLEMS)
def test_cached_products_equal_uncached_ones_in_float64(name: str) -> None:
    p = problem(name)
    V = _vectors(p.n)
    for data in ((p.x, p.y), split(p.x, p.y, [5, p.x.shape[0] - 14, 9])):
        cached = HessianOperator(p.model, p.loss_fn, data, cache=True)
        plain = HessianOperator(p.model, p.loss_fn, data, cache=False)
        expected = plain @ V
        assert _max_difference(cached @ V, expected) < 1e-12  # builds the cache
        assert _active(cached) and cached.cache_bytes > 0
        assert _max_difference(cached @ V, expected) < 1e-12  # reuses it
        assert _max_difference(cached @ V[:, 1], expected[:, 1]) < 1e-12
        assert _max_difference(cached.dense(), plain.dense()) < 1e-12
        assert cached.num_hvps == 2 * V.shape[1] + 1 + p.n  # counted as before
        assert relative_error(cached.dense(), p.hessian) < 1e-10


def test_auto_caches_small_replayable_data_only() -> None:
    model, loss_fn, x, y = build("mlp-mse")
    v = _vectors(38, 1)[:, 0]
    few = split(x, y, [10, 10, 20])
    many = split(x, y, [4] * (AUTO_MAX_BATCHES + 2))
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    expected = HessianOperator(model, loss_fn, (x, y), cache=False) @ v
    for data, used in (((x, y), True), (few, True), (many, False), (loader, False)):
        H = HessianOperator(model, loss_fn, data)
        assert _max_difference(H @ v, expected) < 1e-12
        assert _active(H) is used
        assert (H.cache_bytes > 0) is used


def test_disabled_cache_is_never_used() -> None:
    model, loss_fn, x, y = build("mlp-ce")
    H = HessianOperator(model, loss_fn, (x, y), cache=False)
    V = _vectors(H.shape[0], 3)
    H @ V
    H @ V
    assert not _active(H) and H.cache_bytes == 0 and H._cache.builds == 0


def test_dataloader_with_cache_true_reads_it_once() -> None:
    model, loss_fn, x, y = build("cnn-ce")
    reads = 0

    class Counting(DataLoader[tuple[torch.Tensor, ...]]):
        def __iter__(self):  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += 1
            return super().__iter__()

    loader = Counting(TensorDataset(x, y), batch_size=7)
    cached = HessianOperator(model, loss_fn, loader, cache=True)
    plain = HessianOperator(model, loss_fn, (x, y), cache=False)
    V = _vectors(cached.shape[0])
    for _ in range(3):
        assert _max_difference(cached @ V, plain @ V) < 1e-12
    assert reads == 1 and _active(cached)


def _changes() -> dict[str, Callable[[nn.Module], None]]:
    def optimizer_step(model: nn.Module) -> None:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()

    def load_state_dict(model: nn.Module) -> None:
        state = {k: v + 0.05 for k, v in copy.deepcopy(model.state_dict()).items()}
        model.load_state_dict(state)

    def data_copy(model: nn.Module) -> None:
        first = next(model.parameters())
        first.data.copy_(first.data * 1.5)  # .data: the version counter does not move

    def replace_data(model: nn.Module) -> None:
        first = next(model.parameters())
        first.data = (first.data * 0.5).clone()  # new storage

    return {
        "optimizer step": optimizer_step,
        "load_state_dict": load_state_dict,
        "p.data.copy_": data_copy,
        "p.data = ...": replace_data,
    }


@pytest.mark.parametrize("change", list(_changes()))
def test_cache_is_rebuilt_when_parameters_change_in_place(change: str) -> None:
    model, loss_fn, x, y = build("mlp-ce")
    H = HessianOperator(model, loss_fn, (x, y))
    V = _vectors(H.shape[0])
    before = H @ V
    assert _active(H) and H._cache.builds == 1
    _changes()[change](model)
    assert not _active(H)
    after = H @ V
    expected = HessianOperator(model, loss_fn, (x, y), cache=False) @ V
    assert _max_difference(after, expected) < 1e-12
    assert _max_difference(after, before) > 1e-6  # the matrix really changed
    assert H._cache.builds == 2 and _active(H)


def test_cache_is_rebuilt_when_buffers_data_or_settings_change() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 1)).to(F64)
    _, _, x, y = build("mlp-mse")
    y = y[:, :1]
    with pytest.warns(RavineWarning):
        H = HessianOperator(model, nn.functional.mse_loss, [(x, y)])
    with pytest.warns(RavineWarning):
        plain = HessianOperator(model, nn.functional.mse_loss, [(x, y)], cache=False)
    V = _vectors(H.shape[0])
    H @ V
    model.train()
    model(x)  # updates BatchNorm's running statistics in place
    model.eval()
    assert not _active(H)
    assert _max_difference(H @ V, plain @ V) < 1e-12
    x.mul_(2.0)  # the data, in place
    assert not _active(H)
    assert _max_difference(H @ V, plain @ V) < 1e-12
    H.train_mode = plain.train_mode = True
    assert not _active(H)
    assert _max_difference(H @ V, plain @ V) < 1e-12
    assert H._cache.builds == 4


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_train_mode_dropout_gives_the_same_fixed_matrix_cached_or_not(chunk_size: int | None) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Dropout(0.4), nn.Linear(6, 1)).to(F64)
    _, _, x, y = build("mlp-mse")
    batches = split(x, y[:, :1], [15, 25])
    kwargs = {"train_mode": True, "chunk_size": chunk_size, "seed": 3}
    with pytest.warns(RavineWarning):
        cached = HessianOperator(model, nn.functional.mse_loss, batches, cache=True, **kwargs)  # type: ignore[arg-type]
    with pytest.warns(RavineWarning):
        plain = HessianOperator(model, nn.functional.mse_loss, batches, cache=False, **kwargs)  # type: ignore[arg-type]
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    A = cached.dense()
    assert torch.equal(torch.rand(3), expected_draw)  # the global RNG is left alone
    assert _max_difference(A, plain.dense()) < 1e-12
    assert _max_difference(cached.dense(), A) < 1e-12


def test_memory_stays_within_the_budget() -> None:
    model, loss_fn, x, y = build("mlp-ce")
    batches = split(x, y, [12, 12, 12])
    V = _vectors(73, 2)
    expected = HessianOperator(model, loss_fn, batches, cache=False) @ V
    H = HessianOperator(model, loss_fn, batches)
    H @ V
    budget = H.cache_bytes
    assert budget > 0 and len(H._cache.entries) == 3
    held = weakref.ref(H._cache.entries[0][1])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(5):  # every rebuild replaces the pullbacks: one parameter state at a time
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()
        H @ V
        assert H.cache_bytes == budget and len(H._cache.entries) == 3
    gc.collect()
    assert held() is None  # the first state's graph was freed
    H.clear_cache()
    assert H.cache_bytes == 0 and not _active(H)
    # auto under a budget too small for two batches: falls back to plain products, same values
    model, loss_fn, x, y = build("mlp-ce")
    small = HessianOperator(model, loss_fn, batches, max_cache_bytes=budget // 2)
    assert _max_difference(small @ V, expected) < 1e-12
    assert _max_difference(small @ V, expected) < 1e-12
    assert small.cache_bytes == 0 and not _active(small) and small._cache.builds == 1
    forced = HessianOperator(model, loss_fn, batches, cache=True, max_cache_bytes=budget // 2)
    with pytest.raises(MemoryBudgetError, match=r"max_cache_bytes=.* cache=False"):
        forced @ V
    assert forced.cache_bytes == 0


def test_cache_settings_are_checked_and_work_under_no_grad() -> None:
    model, loss_fn, x, y = build("mlp-mse")
    with pytest.raises(ConfigError, match="cache must be 'auto', True or False, got 'yes'"):
        HessianOperator(model, loss_fn, (x, y), cache="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_cache_bytes must be positive"):
        HessianOperator(model, loss_fn, (x, y), max_cache_bytes=0)
    H = HessianOperator(model, loss_fn, (x, y))
    V = _vectors(38)
    with torch.no_grad():
        inside = H @ V
    assert _max_difference(inside, HessianOperator(model, loss_fn, (x, y), cache=False) @ V) < 1e-12
    result = lanczos(H, 3, tol=1e-10)
    plain = lanczos(HessianOperator(model, loss_fn, (x, y), cache=False), 3, tol=1e-10)
    assert result.all_converged and _max_difference(result.eigenvalues, plain.eigenvalues) < 1e-10
