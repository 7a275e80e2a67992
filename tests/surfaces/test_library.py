"""Built-in surfaces: closed-form gradients against autograd, known minima, Hessians, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ravine import ConfigError, DataError
from ravine.surfaces import (
    CallableSurface,
    DipValley,
    LogCoshRavine,
    Ravine,
    Saddle,
    Surface,
    as_surface,
    get_surface,
    surface_names,
)
from ravine.surfaces._base import autograd_gradient
from ravine.surfaces.stories import hessian_2d

F64 = torch.float64


@pytest.mark.parametrize("name", surface_names())
def test_closed_form_gradient_matches_autograd(name: str) -> None:
    surface = get_surface(name)
    gen = torch.Generator().manual_seed(0)
    (x0, x1), (y0, y1) = surface.bounds
    points = torch.rand(7, 5, 2, dtype=F64, generator=gen)
    points[..., 0] = x0 + (x1 - x0) * points[..., 0]
    points[..., 1] = y0 + (y1 - y0) * points[..., 1]
    expected = autograd_gradient(surface.loss, points, where=name)
    got = surface.gradient(points)
    scale = expected.abs().max().clamp_min(1.0)
    assert got.shape == points.shape
    torch.testing.assert_close(got / scale, expected / scale, rtol=0, atol=1e-13)
    flat = points.reshape(-1, 2)
    out = torch.empty_like(flat)
    returned = surface.gradient(flat, out=out)
    assert returned.data_ptr() == out.data_ptr()
    torch.testing.assert_close(out, expected.reshape(-1, 2), rtol=1e-12, atol=1e-12 * float(scale))


@given(x=st.floats(-40, 40), y=st.floats(-10, 10), angle=st.floats(-0.5, 0.5))
def test_ravine_gradients_match_autograd_anywhere(x: float, y: float, angle: float) -> None:
    for surface in (Ravine(angle=angle), LogCoshRavine(angle=angle)):
        point = torch.tensor([[x, y]], dtype=F64)
        expected = autograd_gradient(surface.loss, point, where="t")
        torch.testing.assert_close(surface.gradient(point), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", surface_names())
def test_minima_are_critical_points_with_the_stated_value(name: str) -> None:
    surface = get_surface(name)
    assert surface.minima, name
    for minimum in surface.minima:
        point = torch.tensor(minimum.point, dtype=F64)
        assert float(surface.loss(point)) == pytest.approx(minimum.value, abs=1e-12)
        assert float(surface.gradient(point).norm()) < 1e-9
        eig = torch.linalg.eigvalsh(hessian_2d(surface, point))
        assert float(eig.min()) >= -1e-9, (name, minimum, eig)
    assert surface.min_value == min(m.value for m in surface.minima)


def test_lecture_parametrisations() -> None:
    bowl = Ravine()
    start = bowl.start_tensor()
    assert bowl.start == (30.0, 3.0)
    assert float(bowl.loss(start)) == pytest.approx(1478.97, abs=0.01)  # REFERENCES: 1480
    eig = torch.linalg.eigvalsh(hessian_2d(bowl, start))
    torch.testing.assert_close(eig, torch.tensor([2.0, 200.0], dtype=F64))  # curvature 200 × η=1e-2 = 2
    twin = LogCoshRavine()
    assert twin.angle == 0.05 and twin.start == (30.0, 3.0)
    crescent = get_surface("crescent")
    assert crescent.start == (-1.21, 0.853)
    assert crescent.minima[0].point == (1.0, 1.0 / 3.0)


def test_saddle_hessian_has_negative_curvature_along_one_one() -> None:
    saddle = Saddle()
    origin = torch.zeros(2, dtype=F64)
    assert float(saddle.gradient(origin).norm()) == 0.0
    evals, evecs = torch.linalg.eigh(hessian_2d(saddle, origin))
    torch.testing.assert_close(evals, torch.tensor([-2.0, 2.0], dtype=F64))
    direction = evecs[:, 0] * torch.sign(evecs[0, 0])
    torch.testing.assert_close(direction, torch.tensor([1.0, 1.0], dtype=F64) / math.sqrt(2))


def test_dip_valley_has_a_local_and_a_global_minimum() -> None:
    valley = DipValley()
    kinds = [m.kind for m in valley.minima]
    assert kinds == ["global", "local"]
    glob, local = valley.minima
    assert glob.point[0] == pytest.approx(4.0) and local.point[0] == pytest.approx(-1.789, abs=1e-3)
    assert local.value > glob.value + 1.0
    with pytest.raises(ConfigError, match="no local dip"):
        DipValley(slope=1.0, depth=0.1)


def test_callable_surface_uses_autograd_and_checks_shapes() -> None:
    sphere = CallableSurface(lambda t: (t**2).sum(-1), name="sphere", start=(1.0, 2.0))
    points = torch.tensor([[1.0, 2.0], [-3.0, 0.5]], dtype=F64)
    torch.testing.assert_close(sphere.gradient(points), 2 * points)
    assert isinstance(as_surface(lambda t: t[..., 0] ** 2), Surface)
    assert as_surface("saddle").name == "saddle"
    bad = CallableSurface(lambda t: t * 2, name="vector")
    with pytest.raises(DataError, match=r"one scalar per point.*got shape \(2, 2\)"):
        bad.gradient(points)
    with pytest.raises(DataError, match="shape"):
        bad.loss(points)
    with pytest.raises(DataError, match="start must be"):
        CallableSurface(lambda t: t.sum(-1), start=(1.0, 2.0, 3.0))


def test_bad_points_and_names() -> None:
    with pytest.raises(DataError, match=r"\(\.\.\., 2\).*shape \(3,\)"):
        Ravine()(torch.zeros(3, dtype=F64))
    with pytest.raises(DataError, match="floating"):
        Ravine()(torch.zeros(2, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"unknown surface 'bowl'.*ravine"):
        get_surface("bowl")
    with pytest.raises(ConfigError):
        as_surface(42)  # type: ignore[arg-type]
