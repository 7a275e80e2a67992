"""Each experiment on a reduced setting asserts the lecture's claim in numbers, and draws its figure."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ravine import ConfigError, cli
from ravine.experiments import (
    REGISTRY,
    adaptive,
    batch,
    landscape,
    minimum_ratio,
    momentum,
    warmup,
)

# torch.func.jvp (used by ravine.curvature) loads torch's JIT decompositions on first use, which warns that
# torch.jit.script is deprecated; that is torch's own warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _figure_has_axes(name: str, result: object) -> None:
    figure = REGISTRY[name].figure(result)
    assert figure.axes


def test_registry_lists_the_six_experiments_with_presets() -> None:
    assert sorted(REGISTRY) == ["adaptive", "batch", "landscape", "minimum-ratio", "momentum", "warmup"]
    for entry in REGISTRY.values():
        quick, full = entry.config("quick"), entry.config("full")
        assert dataclasses.is_dataclass(quick) and quick != full
        assert len(entry.explanation) > 200 and entry.title


def test_config_overrides_are_checked() -> None:
    entry = REGISTRY["landscape"]
    assert entry.config("quick", steps=7, seed=None).steps == 7
    with pytest.raises(ConfigError, match="unknown option"):
        entry.config("quick", no_such_field=1)
    with pytest.raises(ConfigError, match="quick"):
        entry.config("medium")
    with pytest.raises(ConfigError, match="steps"):
        landscape.run(dataclasses.replace(landscape.LandscapeConfig.quick(), steps=0))


def test_minimum_ratio_end_points_are_saddles_not_minima() -> None:
    config = minimum_ratio.MinimumRatioConfig(nets=4, hidden=6, train_steps=300, grad_steps=300)
    result = minimum_ratio.run(config)
    assert len(result.points) == 4 and result.num_params == 6 + 6 + 36 + 6 + 6 + 1
    for point in result.points:
        assert point.positive_share + point.negative_share + point.flat_share == pytest.approx(1.0)
    # The lecture's claim: local minima are rare — most end points have negative curvature.
    assert result.minimum_like_share < 0.5
    assert max(p.minimum_ratio for p in result.points) < 1.0
    # ‖∇L‖² descent lowers the gradient norm.
    after = sorted(p.gradient_norm for p in result.points)[2]
    assert after < sorted(result.grad_norm_before)[2]
    assert result.holds
    _figure_has_axes("minimum-ratio", result)


def test_large_batch_lands_in_sharper_minimum() -> None:
    config = batch.BatchConfig(
        num_samples=1000, batch_sizes=(16, 800), learning_rates=(0.1, 0.3), epochs=4, min_steps=100, alphas=7
    )
    result = batch.run(config)
    small, large = result.chosen
    assert (small.batch_size, large.batch_size) == (16, 800)
    assert large.sharpness > small.sharpness
    assert result.sharpness_holds
    assert len(result.line_train_loss) == 7 and result.alphas[0] == pytest.approx(-1.0)
    _figure_has_axes("batch", result)


def test_momentum_escapes_the_dip_and_is_faster() -> None:
    config = momentum.MomentumConfig(surface_steps=1000, net_steps=100, threshold=0.7, hidden=16)
    result = momentum.run(config)
    assert result.surface_escaped == {"GD": False, "momentum": True}
    gd, mom = result.net_steps_to_threshold["GD"], result.net_steps_to_threshold["momentum"]
    assert mom is not None and (gd is None or mom < gd)
    assert result.holds
    _figure_has_axes("momentum", result)


def test_adaptive_optimizers_beat_sgd_on_unnormalised_inputs() -> None:
    config = adaptive.AdaptiveConfig(hidden=16, steps=150, checkpoints=2, tune="1,3")
    result = adaptive.run(config)
    assert result.final_loss["adam"] < result.final_loss["sgd"]
    assert result.final_loss["rmsprop"] < result.final_loss["sgd"]
    assert len(result.search) == 8 and set(result.learning_rates) == set(adaptive.OPTIMIZERS)
    assert all(len(v) == 2 for v in result.verdicts.values())
    assert len(result.losses) == 8
    assert result.holds
    _figure_has_axes("adaptive", result)


def test_warmup_or_radam_rescue_adam_at_a_high_learning_rate() -> None:
    config = warmup.WarmupConfig(steps=200, early_steps=8, d_model=16, heads=2, batch_size=32)
    result = warmup.run(config)
    assert result.final_loss["adam"] >= 1.5 * result.final_loss["adam+warmup"]
    assert result.final_loss["adam"] >= 1.5 * result.final_loss["radam"]
    radam = next(r for r in result.runs if r.variant == "radam")
    adam_run = next(r for r in result.runs if r.variant == "adam")
    # RAdam's first updates are un-rectified (one rate for all elements); Adam's spread is wide at once.
    assert radam.early_log_lr_std[0] == pytest.approx(0.0, abs=1e-9)
    assert adam_run.early_log_lr_std[0] > 0.1
    assert result.holds
    _figure_has_axes("warmup", result)


def test_landscape_line_has_no_barrier_and_solution_is_a_basin() -> None:
    config = landscape.LandscapeConfig(hidden=16, steps=200, snapshot_every=20, grid=7, line_points=11)
    result = landscape.run(config)
    assert result.line_train_loss[result.alphas.index(1.0)] < result.line_train_loss[result.alphas.index(0.0)]
    assert result.barrier <= 0.02 * result.line_train_loss[result.alphas.index(0.0)]
    assert result.filter_rank <= 0.05
    assert len(result.trajectory) == 11 and sum(result.pca_explained) <= 1.0 + 1e-9
    assert result.holds
    _figure_has_axes("landscape", result)


def test_cli_runs_an_experiment_and_writes_figure_and_numbers(tmp_path: Path) -> None:
    status = cli.main(
        [
            "experiment",
            "landscape",
            "--out",
            str(tmp_path),
            "--steps",
            "30",
            "--grid",
            "5",
            "--line-points",
            "7",
            "--hidden",
            "8",
            "--snapshot-every",
            "10",
        ]
    )
    assert status == 0
    numbers = json.loads((tmp_path / "landscape.json").read_text())
    assert numbers["config"]["steps"] == 30 and "holds" in numbers
    assert (tmp_path / "landscape.png").stat().st_size > 1000


def test_cli_rejects_bad_tuple_option(tmp_path: Path) -> None:
    status = cli.main(["experiment", "batch", "--out", str(tmp_path), "--batch-sizes", "a,b"])
    assert status == 1
