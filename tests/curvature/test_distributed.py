"""Data-parallel curvature on torch.distributed (gloo, 2 processes on this machine) equals one process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from _gloo import run_ranks
from ravine.curvature import HessianOperator, lanczos, spectral_density

from ._distributed_worker import CUTS
from ._helpers import F64, build, relative_error, split

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Both ranks' results, from one run of the two processes shared by the tests here."""
    return _run_ranks(tmp_path_factory.mktemp("gloo"))


def _run_ranks(tmp_path: Path, world: int = 2) -> list[dict[str, Any]]:
    init_file = tmp_path / "rendezvous"
    outs = [tmp_path / f"rank{rank}.pt" for rank in range(world)]
    # -W error: like pytest's filterwarnings, and proves the first jvp leaks no torch warning
    run_ranks(
        [
            [
                "-W",
                "error",
                "-m",
                "curvature._distributed_worker",
                *map(str, (rank, world, init_file, outs[rank])),
            ]
            for rank in range(world)
        ]
    )
    return [torch.load(out, weights_only=False) for out in outs]


def test_two_gloo_ranks_with_unequal_shards_equal_a_single_process(ranks: list[dict[str, Any]]) -> None:
    model, loss_fn, x, y = build("mlp-ce")
    H = HessianOperator(model, loss_fn, (x, y))
    assert not H.distributed
    V = torch.randn(H.shape[0], 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    top = lanczos(H, 3, which="both", tol=1e-10)
    density = spectral_density(H, num_probes=4, num_steps=10, seed=2)
    alone = HessianOperator(model, loss_fn, split(x, y, CUTS)[:2])
    for result in ranks:
        assert result["distributed"] is True and result["converged"] is True
        assert result["num_samples"] == 36 and result["lone_samples"] == 23
        assert relative_error(result["products"], H @ V) < 1e-12
        assert relative_error(result["gradient"], H.gradient()) < 1e-12
        assert result["loss"] == pytest.approx(H.loss(), rel=1e-13)
        assert relative_error(result["eigenvalues"], top.eigenvalues) < 1e-10
        assert bool((result["residuals"] <= 1e-10 * top.scale).all())
        torch.testing.assert_close(
            result["density_nodes"], density.nodes, rtol=1e-8, atol=1e-12, equal_nan=True
        )
        assert relative_error(result["lone_products"], alone @ V) < 1e-12
        assert result["dict_samples"] == 36
        for products in result["dict_products"]:  # dict batches, cached and not: the same all-reduced H
            assert relative_error(products, H @ V) < 1e-12
    # the all-reduced results are the same on both ranks, to the bit
    assert torch.equal(ranks[0]["products"], ranks[1]["products"])
    assert torch.equal(ranks[0]["eigenvalues"], ranks[1]["eigenvalues"])


def test_finite_differences_on_an_fsdp2_sharded_model_equal_the_exact_hessian(
    ranks: list[dict[str, Any]],
) -> None:
    """FSDP2 (``fully_shard``, DTensor parameters) runs on CPU with gloo: ravine's finite-difference HVP on
    the sharded model, over both ranks' unequal shards (one a dict batch), equals the exact H v of the
    unsharded model within the documented O(ε^(2/3)) error, its Lanczos agrees, the shards and ``.grad`` are
    left as they were, and the autograd HVP is refused with the reason."""
    model, loss_fn, x, y = build("mlp-ce")
    H = HessianOperator(model, loss_fn, (x, y))
    V = torch.randn(H.shape[0], 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    exact, top = H @ V, lanczos(H, 2, tol=1e-10)
    for rank in ranks:
        result = rank["fsdp"]
        assert result["n"] == H.shape[0]
        torch.testing.assert_close(result["parameters_flat"], H.parameters_flat(), rtol=0, atol=0)
        assert relative_error(result["products"], exact) < 1e-8  # float64: about 1e-10
        assert result["converged"] and relative_error(result["eigenvalues"], top.eigenvalues) < 1e-6
        assert result["untouched"] and result["grads_none"]
        assert "sharded (DTensors" in result["refused"] and 'hvp="finite-difference"' in result["refused"]
