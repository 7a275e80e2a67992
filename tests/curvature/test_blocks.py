"""Per-block spectra against the diagonal blocks of the dense Hessian; heterogeneity and name patterns."""

from __future__ import annotations

import pytest
import torch

from ravine.curvature import block_spectra, module_blocks
from ravine.curvature._blocks import js_distance
from ravine.errors import ConfigError

from ._helpers import problem
from ._zoo import build


def test_block_spectra_are_the_eigenvalues_of_the_diagonal_blocks() -> None:
    p = problem("mlp-ce")
    spectra = block_spectra(p.model, p.loss_fn, (p.x, p.y), k=2, tol=1e-10, num_steps=60)
    sizes = [p.model.get_parameter(n).numel() for n, _ in p.model.named_parameters()]
    offsets = torch.tensor([0, *sizes]).cumsum(0).tolist()
    names = [n for n, _ in p.model.named_parameters()]
    assert [b.name for b in spectra.blocks] == list(module_blocks(p.model))
    for block in spectra.blocks:
        index = [i for i, n in enumerate(names) if n in block.parameters]
        rows = torch.cat([torch.arange(offsets[i], offsets[i + 1]) for i in index])
        values = torch.linalg.eigvalsh(p.hessian[rows][:, rows])
        assert block.size == rows.numel()
        assert block.top == pytest.approx(values.flip(0)[:2].tolist(), rel=1e-8, abs=1e-10)
        assert block.lambda_min == pytest.approx(float(values[0]), rel=1e-6, abs=1e-8)
    assert spectra.densities.shape == (len(spectra.blocks), spectra.grid.numel())
    assert torch.allclose(spectra.distances, spectra.distances.T) and 0 <= spectra.heterogeneity <= 1
    mass = spectra.densities.sum(1) * (spectra.grid[1] - spectra.grid[0])
    assert torch.allclose(mass, torch.ones_like(mass), atol=1e-3)


def test_blocks_by_name_pattern_on_gpt2() -> None:
    zoo = build("hf-gpt2")
    spectra = block_spectra(
        zoo.model, data=zoo.batches, blocks={"attention": "transformer.h.*.attn.*", "mlp": ["transformer.h.*.mlp.*"]},
        k=1, num_probes=2, num_steps=8, dtype=torch.float32,
    )  # fmt: skip
    assert [b.name for b in spectra.blocks] == ["attention", "mlp"]
    assert all(".attn." in n for n in spectra.blocks[0].parameters)
    assert spectra.blocks[0].lambda_max > spectra.blocks[0].lambda_min
    with pytest.raises(ConfigError, match="blocks must be None"):
        block_spectra(zoo.model, data=zoo.batches, blocks={})


def test_js_distance_bounds() -> None:
    a = torch.tensor([1.0, 2.0, 1.0])
    assert js_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    assert js_distance(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 3.0])) == pytest.approx(1.0)
