"""The block-heterogeneity experiment on a reduced setting: its numbers, its claims checked against them, and
its figures."""

from __future__ import annotations

import dataclasses
import math

import pytest

from ravine.errors import ConfigError
from ravine.experiments import block_heterogeneity
from ravine.experiments.block_heterogeneity import BlockHeterogeneityConfig
from ravine.report.blocks import block_heterogeneity_figure, block_spectra_figure

SMALL = dataclasses.replace(
    BlockHeterogeneityConfig.quick(),
    d_model=8, channels=3, hessian_samples=32, num_probes=1, num_steps=8, steps=40, sgd_lrs=(0.1,),
    adam_lrs=(1e-2,),
)  # fmt: skip


def test_block_heterogeneity_numbers_and_claims() -> None:
    seen: list[float] = []
    result = block_heterogeneity.run(SMALL, progress=lambda done, total, stage="": seen.append(done / total))
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    assert set(result.spectra) == {"transformer", "cnn"}
    assert [b.name for b in result.spectra["cnn"].blocks] == ["conv1", "conv2", "head"]
    assert "encoder.layers.0.self_attn" in [b.name for b in result.spectra["transformer"].blocks]
    for spectra in result.spectra.values():
        for block in spectra.blocks:
            assert block.lambda_min <= block.lambda_max and block.size > 0
        assert 0 <= spectra.heterogeneity <= 1
    for name in ("transformer", "cnn"):
        assert set(result.curves[name]) == {"SGD", "Adam"}
        assert all(
            len(c) == SMALL.steps and all(math.isfinite(v) for v in c) for c in result.curves[name].values()
        )
        assert result.sgd_over_adam[name] == pytest.approx(
            result.final_loss[name]["SGD"] / result.final_loss[name]["Adam"]
        )
    # every claim's verdict is the comparison of the numbers it cites
    het, spread, ratio = result.heterogeneity, result.scale_spread, result.sgd_over_adam
    assert [c.holds for c in result.claims] == [
        het["transformer"] > het["cnn"], spread["transformer"] > spread["cnn"], ratio["transformer"] > ratio["cnn"],
    ]  # fmt: skip
    assert result.holds == all(c.holds for c in result.claims)
    assert f"{het['transformer']:.3f}" in result.claims[0].evidence
    failed = [c for c in result.claims if not c.holds]
    assert len([n for n in result.notes if n.startswith("This claim did not hold")]) == len(failed)
    assert result.table()[0][0] == "model" and len(result.table()) == 3
    assert block_heterogeneity_figure(result).axes
    assert block_spectra_figure(result.spectra["transformer"]).axes


def test_block_heterogeneity_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="steps"):
        block_heterogeneity.run(dataclasses.replace(SMALL, steps=0))
    assert BlockHeterogeneityConfig.full() != BlockHeterogeneityConfig.quick()
