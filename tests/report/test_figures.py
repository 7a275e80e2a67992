"""The figures show what carries the point: clipped log ranges, linear axes for narrow ranges, readable ticks."""

from __future__ import annotations

import math

import pytest
import torch

from ravine.curvature import spectral_density
from ravine.experiments.minimum_ratio import MinimumRatioConfig, MinimumRatioResult, NetPoint
from ravine.optim import Constant, CosineDecay
from ravine.report._figures import new_figure, scale_to_data
from ravine.report.curvature import spectral_density_figure
from ravine.report.experiments import CAPTIONS, FIGURES, minimum_ratio_figure
from ravine.report.schedules import gallery_schedules, plot_schedule, plot_schedule_gallery
from ravine.report.surfaces import _clip_range


def test_a_narrow_range_gets_a_linear_axis_without_offset() -> None:
    ax = new_figure().add_subplot()
    ax.plot([1, 2, 3], [483.4, 483.5, 483.6])
    assert scale_to_data(ax) is False
    assert ax.get_yscale() == "linear"
    assert ax.yaxis.get_major_formatter().get_useOffset() is False  # type: ignore[attr-defined]
    ax.figure.canvas.draw()
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert all("×" not in text and "e" not in text for text in labels), labels


def test_a_wide_range_gets_a_log_axis_and_reference_lines_do_not_count() -> None:
    ax = new_figure().add_subplot()
    ax.plot([1, 2, 3], [1e-6, 1.0, 1e3])
    ax.axvline(0.0)  # y data [0, 1] in axes coordinates: not data, must not force a linear axis
    assert scale_to_data(ax) is True
    assert ax.get_yscale() == "log"


def test_clip_range_keeps_the_stalled_curves_readable() -> None:
    stalled = torch.tensor([1479.0, 900.0, 878.0])
    falling = torch.tensor([1479.0, 1e-50, 1e-119])
    bottom, top = _clip_range([stalled, falling], decades=8)
    assert bottom == pytest.approx(1479.0e-8) and top == pytest.approx(2 * 1479.0)
    # Without a curve that dives, the axis ends just below the data.
    bottom, _ = _clip_range([stalled], decades=8)
    assert bottom == pytest.approx(439.0)


def test_schedules_start_at_zero_so_a_constant_is_a_flat_line() -> None:
    ax = plot_schedule(Constant(1.0), 50)
    low, high = ax.get_ylim()
    assert low == 0.0 and 1.0 < high < 1.2
    figure = plot_schedule_gallery(gallery_schedules(100), 100)
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert len(visible) == len(gallery_schedules(100))
    assert all(axes.get_ylim()[0] == 0.0 for axes in visible)
    assert plot_schedule(CosineDecay(50), 50, log_y=True).get_yscale() == "log"


def _minimum_ratio_result(nets: int) -> MinimumRatioResult:
    points = [
        NetPoint(
            seed=i,
            loss=0.01 * (i + 1),
            gradient_norm=10.0 ** -(i % 4 + 2),
            minimum_ratio=0.5 + 0.02 * i,
            positive_share=0.5,
            negative_share=0.3,
            flat_share=0.2,
            lambda_min=-0.1,
            lambda_max=3.0,
            kind="saddle",
            hessian_kind="saddle",
            minimum_ratio_coarse=0.6,
        )
        for i in range(nets)
    ]
    return MinimumRatioResult(
        config=MinimumRatioConfig(nets=nets),
        num_params=193,
        points=points,
        grad_norm_before=[1.0] * nets,
        minimum_like_share=0.0,
        critical_share=1.0,
    )


def test_minimum_ratio_figure_has_integer_net_ticks_and_a_labelled_colorbar() -> None:
    figure = minimum_ratio_figure(_minimum_ratio_result(10))
    figure.canvas.draw()
    left, right, colorbar = figure.axes
    ticks = [tick for tick in right.get_xticks() if right.get_xlim()[0] <= tick <= right.get_xlim()[1]]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    assert colorbar.get_ylabel() == "‖∇L‖ at the end point"
    # The colorbar sits between the two panels, not on the right panel's axis.
    assert (
        left.get_position().x1
        < colorbar.get_position().x0
        < colorbar.get_position().x1
        < right.get_position().x0
    )
    assert figure.get_figwidth() >= 12


def test_spectral_density_figure_shows_the_negative_side_on_a_log_axis() -> None:
    values = torch.cat([torch.full((40,), 1e-9), torch.tensor([-0.5, -0.2, 2.0, 5.0, 30.0])]).double()
    density = spectral_density(torch.diag(values), num_probes=8, num_steps=20)
    figure = spectral_density_figure(density, exact=values)
    (ax,) = figure.axes
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] > 0
    low, high = ax.get_xlim()
    assert low < -0.5 and high > 30
    assert "negative" in ax.get_title() and "flat" in ax.get_title()
    assert len(ax.patches) >= 80  # the exact histogram's bars under the estimate


def test_every_experiment_has_a_figure_and_a_caption_that_says_what_to_look_at() -> None:
    from ravine.experiments import REGISTRY

    assert set(FIGURES) == set(REGISTRY) == set(CAPTIONS)
    assert all("Look" in caption for caption in CAPTIONS.values())
    assert all(len(caption) > 100 for caption in CAPTIONS.values())
    assert not math.isnan(len(CAPTIONS))


def test_variation_under_one_percent_reads_as_flat() -> None:
    ax = new_figure().add_subplot()
    ax.plot([1, 2, 3], [1.0770e-4, 1.0795e-4, 1.0780e-4])
    assert scale_to_data(ax) is False
    low, high = ax.get_ylim()
    assert low == pytest.approx(1.0782e-4 * 0.99, rel=1e-3) and high == pytest.approx(
        1.0782e-4 * 1.01, rel=1e-3
    )
