"""The lab's figures: contour, curves, σ, GIF, and every story's figures in each format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ravine.optim import AdagradMean
from ravine.report.surfaces import (
    animate_trajectories,
    contour_figure,
    curves_figure,
    effective_lr_figure,
    plot_indices,
    write_story_figures,
)
from ravine.surfaces import LabConfig, Ravine, run_lab
from ravine.surfaces.stories import saddle_story


@pytest.fixture(scope="module")
def small_run() -> tuple[Ravine, object]:
    surface = Ravine()
    configs = [LabConfig("gd", lr=1e-2), LabConfig("ada", AdagradMean(), 0.2)]
    return surface, run_lab(surface, configs, steps=300)


def test_plot_indices_keep_the_bounce_and_the_end() -> None:
    assert plot_indices(10).tolist() == list(range(10))
    rows = plot_indices(100_001)
    assert rows[:2000].tolist() == list(range(2000)) and int(rows[-1]) == 100_000
    assert len(rows) < 4000


def test_figures_have_log_axes(small_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    surface, run = small_run
    contour = contour_figure(surface, run)
    assert len(contour.axes[0].lines) >= 6  # two paths with start and end markers
    curves = curves_figure(surface, run)
    assert [ax.get_xscale() for ax in curves.axes] == ["log", "log"]
    assert [ax.get_yscale() for ax in curves.axes] == ["log", "log"]
    sigma = effective_lr_figure(run)
    assert sigma.axes[1].get_ylabel() == "η_t / σ_t per axis"
    gif = animate_trajectories(surface, run, tmp_path / "paths", frames=4)
    assert gif.suffix == ".gif" and gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a")


def test_story_figures_in_each_format(tmp_path: Path) -> None:
    files = write_story_figures(saddle_story(steps=200), tmp_path, formats=("png", "svg"), gif=False)
    names = {f.name for f in files}
    assert {"saddle-paths.png", "saddle-paths.svg", "saddle-curves.svg", "saddle-escape-paths.png"} <= names
    assert all(f.stat().st_size > 1000 for f in files)


def test_gif_frames_must_be_at_least_two(small_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ravine import ConfigError

    surface, run = small_run
    with pytest.raises(ConfigError, match="frames"):
        animate_trajectories(surface, run, tmp_path / "x", frames=1)
    assert torch.isfinite(run.loss).all()
