"""The update tracker's sketches: signing in place into a scratch buffer gives the very same sketch."""

from __future__ import annotations

import torch

from ravine.diagnose._updates import Sketch, UpdateTracker


def _pieces(generator: torch.Generator) -> list[torch.Tensor]:
    # Lengths that cross the sign pattern's period and the buckets at odd offsets.
    return [torch.randn(n, generator=generator) for n in (37, 501, 1290, 7, 2203)]


def test_sketch_into_scratch_or_in_place_is_bit_identical() -> None:
    generator = torch.Generator().manual_seed(0)
    pieces = _pieces(generator)
    n = sum(p.numel() for p in pieces)
    sketch = Sketch(n, 16, seed=3)
    assert not sketch.exact and sketch.period < n
    reference = sketch(pieces)
    scratch = torch.full((n,), float("nan"))
    assert torch.equal(sketch(pieces, scratch), reference)
    flat = torch.cat(pieces)
    expected = sketch([flat.clone()])
    assert torch.allclose(expected, reference, rtol=1e-5, atol=1e-5)
    assert torch.equal(sketch([flat], flat), expected)  # in place: the tensor itself as scratch
    signs = sketch._pattern(flat.device, flat.dtype).repeat(n // sketch.period + 1)
    assert torch.equal(flat, torch.cat(pieces) * signs[:n])  # ... which now holds the signed values


def test_tracker_samples_match_fresh_sketches_of_the_parameters() -> None:
    generator = torch.Generator().manual_seed(1)
    params = _pieces(generator)
    tracker = UpdateTracker(params, every=5, weight_every=5, distance_every=5, extra=7, sketch=16, seed=2)
    reference = Sketch(sum(p.numel() for p in params), 16, seed=2)
    seen = []
    measured = 0
    for count in range(40):
        with torch.no_grad():
            for p in params:
                p.add_(torch.randn(p.shape, generator=generator) * 0.1)
        seen.append(torch.cat([p.detach().clone() for p in params]))
        sample = tracker.record(count)
        if sample is None:
            continue
        measured += 1
        minus_update = seen[count - 1] - seen[count]
        norms = torch.stack([d.norm() for d in minus_update.split([p.numel() for p in params])])
        assert torch.allclose(sample.layer_norms, norms, rtol=1e-6)
        if sample.dot_prev is not None:
            expected = torch.sum(reference([minus_update]) * reference([seen[count - 2] - seen[count - 1]]))
            assert torch.allclose(sample.dot_prev, expected.to(sample.dot_prev.dtype), rtol=1e-6)
        if sample.distance is not None:
            expected = (reference(params) - reference([seen[0]])).norm()
            assert torch.allclose(sample.distance, expected, rtol=1e-6)
        direction = tracker.update_direction(count)
        if direction is not None:  # a probe step keeps −Δθ in the buffer: it must not have been signed
            assert torch.equal(torch.cat([d.reshape(-1) for d in direction]), -minus_update)
    assert measured >= 12
