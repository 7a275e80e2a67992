"""The lecture's claims as numbers (float64). Fast checks use only the configurations and steps a claim
needs; the ``tour`` fixture is the one full-length run of every story (as ``ravine tour`` embeds it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from matplotlib.figure import Figure

from ravine.optim import AdagradMean, InverseSqrtDecay
from ravine.report.surfaces import story_figures
from ravine.surfaces import LabConfig, LogCoshRavine, Ravine, run_lab
from ravine.surfaces.stories import (
    STORIES,
    Story,
    burst_count,
    momentum_story,
    saddle_story,
    sign_flips,
    steps_to,
)


def test_helpers() -> None:
    v = torch.tensor([1.0, -1.0, 0.0, 2.0, 0.1, 0.9, 0.2, -0.7])
    assert sign_flips(v) == 2
    assert burst_count(v, 0.5) == 3
    loss = torch.tensor([5.0, 0.5, 2.0, 0.1, 0.05])
    steps = torch.arange(5)
    assert steps_to(loss, steps, 1.0) == 1
    assert steps_to(loss, steps, 1.0, stay=True) == 3
    assert steps_to(loss, steps, 0.01) is None


def test_gd_1e2_bounces_on_the_bowl() -> None:
    """Claim 1: curvature 200 × η 1e-2 = 2: v flips sign every step, loss flat ≈ 576, ‖g‖ ≈ 480."""
    surface = Ravine()
    run = run_lab(surface, [LabConfig("gd", lr=1e-2)], steps=5000)
    _, v = surface.uv(run.theta[:, 0])
    assert sign_flips(v) == 5000
    assert float(run.loss[-1, 0]) == pytest.approx(575.73, abs=0.01)
    assert float(run.loss[2500, 0]) == pytest.approx(575.73, abs=0.01)  # flat over the second half
    assert float(run.grad_norm[-1, 0]) == pytest.approx(479.89, abs=0.01)
    assert float(run.grad_norm[-1, 0]) > 0.3 * float(run.grad_norm[0, 0])  # still large


def test_mean_adagrad_reaches_1e_100_then_bursts_and_recovers() -> None:
    """Claim 3 (first 12k steps): < 1e-100 near step 3.4k; bursts |v| > 0.5 once σ_v is small; recovers."""
    surface = Ravine()
    run = run_lab(surface, [LabConfig("ada", AdagradMean(), 0.2)], steps=12_000, sigma_every=100)
    hit = steps_to(run.loss[:, 0], run.steps, 1e-100)
    assert hit is not None and 3000 < hit < 4500
    _, v = surface.uv(run.theta[:, 0])
    bursts = burst_count(v[hit:], 0.5)
    assert bursts >= 3
    # The bursts come after σ on the steep (y) axis has fallen: η/σ_y × curvature 200 has passed 2.
    burst_step = hit + int(torch.nonzero(v[hit:].abs() > 0.5)[0])
    row = int(torch.searchsorted(run.sigma_steps, burst_step)) - 1
    assert float(run.effective_lr[row, 0, 1]) * 200 > 2
    assert float(run.loss[-1, 0]) < 1e-20  # recovered


def test_adagrad_with_decay_has_no_bursts() -> None:
    """Claim 4 (first 12k steps): η/sqrt(1 + t/1000) reaches the minimum without bursts."""
    surface = Ravine()
    run = run_lab(
        surface, [LabConfig("decay", AdagradMean(), InverseSqrtDecay(1000.0, lr=0.2))], steps=12_000
    )
    _, v = surface.uv(run.theta[:, 0])
    assert burst_count(v, 0.5) == 0
    assert float(run.loss[-1, 0]) < 1e-200


def test_logcosh_twin_shows_both_gd_panels() -> None:
    """The twin: GD 1e-2 bounces with a bounded step (‖g‖ = 1000); GD 1e-7 slides down the steep wall."""
    surface = LogCoshRavine()
    run = run_lab(surface, [LabConfig("gd2", lr=1e-2), LabConfig("gd7", lr=1e-7)], steps=20_000)
    _, v = surface.uv(run.theta)
    assert sign_flips(v[:, 0]) == 20_000
    assert float(run.grad_norm[-1, 0]) == pytest.approx(1000.0, rel=1e-6)
    assert float(v[:, 0].abs().max()) < 10  # bounded bouncing
    # GD 1e-7 slides down the wall at η·b·k = 1e-4 per step, reaching the valley floor near step 15,000
    assert float(v[10_000, 1]) == pytest.approx(float(v[0, 1]) - 10_000 * 1e-4, abs=1e-2)
    assert abs(float(v[-1, 1])) < 1e-3 and float(run.final_theta[1].norm()) > 29


def test_saddle_gd_stalls_and_two_ways_out() -> None:
    """Claim 6: GD stalls with a tiny gradient; momentum and a negative-curvature step escape sooner."""
    m = saddle_story().metrics
    assert m["gd.stall_steps"] >= 500
    assert m["gd.min_grad"] < 1e-4
    assert m["hessian.lambda_min"] == pytest.approx(-2.0, abs=1e-3)
    assert m["hessian.vx"] == pytest.approx(m["hessian.vy"], abs=1e-3)
    assert m["momentum.escape"] < m["gd.escape"] / 3
    assert m["eigen.escape"] < m["gd.escape"]


def test_momentum_rolls_through_the_dip() -> None:
    story = momentum_story()
    m = story.metrics
    assert m["gd.x"] == pytest.approx(m["local.x"], abs=1e-6)
    assert m["heavy.x"] == pytest.approx(m["global.x"], abs=1e-6)
    assert m["nesterov.x"] == pytest.approx(m["global.x"], abs=1e-6)
    assert all(f.holds for f in story.claims)


@dataclass(frozen=True)
class Drawn:
    """One story at the lecture's settings and its figures (file stem → (figure, caption))."""

    story: Story
    figures: dict[str, tuple[Figure, str]]


@pytest.fixture(scope="module")
def tour() -> dict[str, Drawn]:
    """Every story at the lecture's settings with its figures, once: what ``ravine tour`` embeds."""
    drawn = {}
    for name, run_story in STORIES.items():
        story = run_story()
        drawn[name] = Drawn(story, story_figures(story))
    return drawn


def test_lab_tour_runs_every_story_with_figures(tour: dict[str, Drawn]) -> None:
    assert list(tour) == ["ravine", "crescent", "saddle", "momentum"]
    ravine = tour["ravine"].figures
    assert {"ravine-paths", "ravine-curves", "ravine-sigma", "logcosh-paths", "logcosh-curves"} <= set(ravine)
    assert "logcosh-sigma" not in ravine  # plain GD only: nothing divides by σ
    assert {"saddle-paths", "saddle-escape-paths"} <= set(tour["saddle"].figures)
    for item in tour.values():
        assert all(f.holds for f in item.story.claims), [f for f in item.story.claims if not f.holds]
        for figure, caption in item.figures.values():
            assert figure.axes and caption.startswith(item.story.title)


def test_full_ravine_story(tour: dict[str, Drawn]) -> None:
    """Claims 1-4 at the lecture's length (100,000 updates), on the bowl (q.*) and its log-cosh twin (c.*)."""
    m = tour["ravine"].story.metrics
    # 1. GD 1e-2 bounces: the loss stops falling at 576 while ‖g‖ stays at 480; v flips sign every step.
    assert m["q.gd2.loss"] == pytest.approx(575.73, abs=0.01)
    assert m["q.gd2.rel_change"] < 1e-9
    assert m["q.gd2.grad_norm"] == pytest.approx(479.89, abs=0.01)
    assert m["q.gd2.flips"] == 100_000
    # 2. GD 1e-7: no flips, and after 100,000 updates the loss is still 878 (from 1479), 29+ away.
    assert m["q.gd7.flips"] == 0
    assert m["q.gd7.loss"] == pytest.approx(878.37, abs=0.01)
    assert m["q.gd7.distance"] > 29
    # 3. mean-Adagrad: < 1e-100 near step 3.5k, then ~23 sideways bursts |v| > 0.5, and it recovers.
    assert 3000 < m["q.ada.step_1e-100"] < 4500
    assert m["q.ada.min_loss"] < 1e-100
    assert 18 <= m["q.ada.bursts"] <= 28  # REFERENCES: ~23
    assert m["q.ada.loss"] < 1e-20
    # 4. with η/sqrt(1 + t/1000): no bursts, loss < 1e-100.
    assert m["q.decay.bursts"] == 0
    assert m["q.decay.loss"] < 1e-100
    assert m["c.gd2.grad_norm"] == pytest.approx(1000.0, rel=1e-6)
    assert m["c.gd7.v_mid"] < 1e-6 < m["c.gd7.v0"]


def test_crescent_rmsprop_adapts_faster_than_adagrad(tour: dict[str, Drawn]) -> None:
    """Claim 5: at the same η, RMSProp gets (and stays) below loss 1e-2 far sooner than mean-Adagrad."""
    m = tour["crescent"].story.metrics
    assert m["rmsprop.0.003.steps"] == 967
    assert m["adagrad.0.003.steps"] == 6781
    assert m["rmsprop.0.001.steps"] == 2557
    assert math.isnan(m["adagrad.0.001.steps"])  # not within 20,000 steps
    # why: at the end RMSProp's effective rate along x is far larger than Adagrad's (which remembers the start)
    assert m["rmsprop.0.003.elr_x_end"] > 5 * m["adagrad.0.003.elr_x_end"]
