"""The update Δθ = θ_t − θ_{t−1}, measured on sampled pairs of steps in at most one parameter-sized buffer.

The norms ‖Δθ‖ per parameter are exact: a snapshot of θ_{t−1} is taken into one flat buffer and θ_t is
subtracted from it one step later (−Δθ, in place). The two quantities that would need a second and a third
copy of θ — the product Δθ_t·Δθ_{t−1} (cosine of successive updates) and the distance ‖θ_t − θ_0‖ — are
computed from *sketches* instead: each vector is folded into ``k`` buckets with pseudo-random signs (element
i goes to bucket i mod k with a fixed ±1 sign), so nothing parameter-sized is stored. For any two vectors
the sketch's dot product is unbiased, with standard deviation ≈ ‖a‖‖b‖/√k (±0.016 on a cosine for
k = 4096). Models with at most ``4k`` parameters keep the vectors themselves (the sketch is then exact).
The signs repeat with a prime period (see :class:`Sketch`), so a sketch costs about two passes over θ and
stores only the period's ±1 pattern.

The buffer is allocated when a snapshot is due and released once the measured update has been used, so on
a large model (updates measured every ``every`` steps) the monitor holds it only during the sampled pairs;
the sketches (two of ``k`` doubles per device and dtype) and the sign pattern are all it keeps in between.
On a model sketched by buckets the buffer holds *signed* values (θ times the sketch's ±1 pattern, a pass no
dearer than a copy): the difference with θ_t is then the signed −Δθ in one pass, its norms are those of −Δθ, and
it folds straight into the sketch; a fresh snapshot folds into the sketch of θ_t for the distance. Sign flips
are exact, so every value is the same as from unsigned buffers and separate sketches, in fewer passes and with
no parameter-sized temporary; a probe reading the update gets it unsigned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["Sketch", "UpdateSample", "UpdateTracker"]


@dataclass
class UpdateSample:
    """One measured update (tensors on the device).

    Attributes:
        layer_norms: Per-parameter ‖Δθ‖.
        dot_prev: Δθ_t · Δθ_{t−1} when the previous step's update was measured too, else None.
        weight_layer_norms: Per-parameter ‖θ‖ when due, else None.
        distance: ‖θ_t − θ_0‖ when due, else None.
    """

    layer_norms: torch.Tensor
    dot_prev: torch.Tensor | None = None
    weight_layer_norms: torch.Tensor | None = None
    distance: torch.Tensor | None = None


def _largest_prime_at_most(limit: int) -> int:
    sieve = bytearray([1]) * (limit + 1)
    sieve[:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return max(i for i in range(limit + 1) if sieve[i])


class Sketch:
    """Signed bucket sums of a flat vector of length ``n`` (exact copy when ``n <= 4k``).

    Element i goes to bucket ``i mod k`` with the sign ``pattern[i mod L]``: a fixed ±1 pattern of prime length
    L (≤ 65521, and ≤ n/8 so that it stays small next to the parameters), drawn once from a private generator.
    L is coprime with k, so the elements sharing a bucket get distinct pattern entries (for n < k·L), which is
    what makes the sketch's dot products unbiased; applying the pattern costs one multiply per element.

    Args:
        n: Length of the vectors sketched.
        k: Buckets.
        seed: Seed of the sign pattern (the same for every vector, so that dot products carry over).
    """

    def __init__(self, n: int, k: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self.exact = n <= 4 * k
        self.k = n if self.exact else k
        self._patterns: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self.period = 1 if self.exact else _largest_prime_at_most(max(min(65521, n // 8), k + 1))
        if not self.exact and self.period % k == 0:  # k a multiple of the prime: only when k == period
            self.period = _largest_prime_at_most(self.period - 1)

    def _pattern(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in self._patterns:
            generator = torch.Generator().manual_seed(self.seed)
            signs = torch.randint(0, 2, (self.period,), generator=generator, dtype=torch.float32) * 2 - 1
            self._patterns[key] = signs.to(device=device, dtype=dtype)
        return self._patterns[key]

    def _segments(
        self, numel: int, offset: int, device: torch.device, dtype: torch.dtype
    ) -> list[tuple[slice, tuple[int, ...], torch.Tensor]]:
        """How ``numel`` elements starting at position ``offset`` meet the sign pattern: (slice, view shape,
        signs) for the head up to the next period boundary, the whole periods as rows of a matrix, the tail."""
        period, pattern = self.period, self._pattern(device, dtype)
        phase = offset % period
        head = min(period - phase, numel) if phase else 0
        rows = (numel - head) // period
        body = head + rows * period
        segments: list[tuple[slice, tuple[int, ...], torch.Tensor]] = []
        if head:
            segments.append((slice(0, head), (head,), pattern[phase : phase + head]))
        if rows:
            segments.append((slice(head, body), (rows, period), pattern))
        if body < numel:
            segments.append((slice(body, numel), (numel - body,), pattern[: numel - body]))
        return segments

    def _signed(self, flat: torch.Tensor, offset: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """``flat`` (elements ``offset``, ``offset + 1``, ...) times their signs, in a few whole-tensor operations
        (see :meth:`_segments`). Written into ``out`` (same length; ``flat`` itself to sign it in place) or into a
        new tensor."""
        out = torch.empty_like(flat) if out is None else out
        for where, shape, signs in self._segments(flat.numel(), offset, flat.device, flat.dtype):
            torch.mul(flat[where].view(shape), signs, out=out[where].view(shape))
        return out

    def sign_into(self, tensors: Sequence[torch.Tensor], out: torch.Tensor) -> None:
        """``out`` (flat, ``n`` elements) ← the tensors laid end to end, times their signs (one pass)."""
        offset = 0
        for t in tensors:
            flat = t.detach().reshape(-1)
            self._signed(flat, offset, out[offset : offset + flat.numel()])
            offset += flat.numel()

    def subtract_signed(self, out: torch.Tensor, tensors: Sequence[torch.Tensor]) -> None:
        """``out`` (flat) −= the tensors laid end to end times their signs, in place (one pass; exactly the
        signed difference, since a sign flip is exact)."""
        offset = 0
        for t in tensors:
            flat = t.detach().reshape(-1)
            target = out[offset : offset + flat.numel()]
            for where, shape, signs in self._segments(flat.numel(), offset, flat.device, flat.dtype):
                target[where].view(shape).addcmul_(flat[where].view(shape), signs, value=-1)
            offset += flat.numel()

    def fold_signed(self, signed: torch.Tensor, lengths: Sequence[int] | None = None) -> torch.Tensor:
        """The sketch of a vector whose signed values ``signed`` (flat, ``n``) already holds; ``lengths``: fold
        it piece by piece as :meth:`__call__` folds those tensors (the very same result), else in one go."""
        out = torch.zeros(self.k, dtype=torch.float64, device=signed.device)
        offset = 0
        for length in lengths or [signed.numel()]:
            _fold(out, signed[offset : offset + length], offset)
            offset += length
        return out

    def nbytes(self) -> int:
        """Bytes of the stored sign patterns."""
        return sum(p.numel() * p.element_size() for p in self._patterns.values())

    def __call__(self, tensors: Sequence[torch.Tensor], scratch: torch.Tensor | None = None) -> torch.Tensor:
        """The sketch (float64, length ``k``) of the tensors laid end to end (their lengths add up to ``n``).

        ``scratch``: a flat tensor of ``n`` elements of their dtype that may be overwritten (the signed values
        are written there instead of into new tensors: no allocation, and no pass over fresh memory); it may be
        the tensor sketched itself. The result is the same either way."""
        device = tensors[0].device
        out = torch.zeros(self.k, dtype=torch.float64, device=device)
        offset = 0
        if self.exact:
            for t in tensors:
                out[offset : offset + t.numel()] = t.detach().reshape(-1)
                offset += t.numel()
            return out
        for t in tensors:
            flat = t.detach().reshape(-1)
            into = None if scratch is None else scratch[offset : offset + flat.numel()]
            _fold(out, self._signed(flat, offset, into), offset)
            offset += flat.numel()
        return out


def _fold(out: torch.Tensor, values: torch.Tensor, offset: int) -> None:
    """Add ``values`` (positions ``offset``, ``offset + 1``, ...) into the buckets ``position mod len(out)``.

    The whole rows are summed in the values' own dtype (a float64 reduction of float32 values is ~10× slower
    on CPU; float32 sums over n/k rows err by ~1e-6 relative, far below the sketch's own ±1/√k)."""
    k = len(out)
    first = min((k - offset % k) % k, len(values))
    if first:
        out[offset % k : offset % k + first] += values[:first].double()
    rest = values[first:]
    full = (len(rest) // k) * k
    if full:
        out += rest[:full].view(-1, k).sum(0).double()
    if full < len(rest):
        out[: len(rest) - full] += rest[full:].double()


class _FlatSet:
    """Flat buffers, one per (device, dtype) group, and views shaped like the parameters (in order)."""

    def __init__(self, groups: Sequence[Sequence[torch.Tensor]]) -> None:
        self.flats: list[torch.Tensor] = []
        self.group_views: list[list[torch.Tensor]] = []
        for params in groups:
            flat = torch.empty(sum(p.numel() for p in params), dtype=params[0].dtype, device=params[0].device)
            offset, views = 0, []
            for p in params:
                views.append(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
            self.flats.append(flat)
            self.group_views.append(views)
        self.views = [v for views in self.group_views for v in views]


def stack_norms(norms: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """The norms as one tensor on ``device`` (cast to float where dtypes or devices are mixed)."""
    try:
        return torch.stack(list(norms))
    except RuntimeError:
        return torch.stack([n.float().to(device) for n in norms])


class UpdateTracker:
    """Measures Δθ on sampled pairs of consecutive steps (see the module docstring).

    Args:
        params: The watched parameters, ordered by (device, dtype) group.
        every: Steps between measured pairs (≤ 2: every step).
        weight_every: Steps between weight norms.
        distance_every: Steps between distances from the start.
        extra: Also measure at multiples of this (the probes need the latest update); 0: none.
        sketch: Buckets of the cosine and distance sketches.
        seed: Seed of the sketches' signs.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        *,
        every: int,
        weight_every: int,
        distance_every: int,
        extra: int = 0,
        sketch: int = 4096,
        seed: int = 0,
    ) -> None:
        self.params = list(params)
        self.every, self.weight_every, self.distance_every, self.extra = (
            every,
            weight_every,
            distance_every,
            extra,
        )
        groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for p in self.params:
            groups.setdefault((p.device, p.dtype), []).append(p)
        self._groups = list(groups.values())
        self._sketches = [
            Sketch(sum(p.numel() for p in g), sketch, seed + i) for i, g in enumerate(self._groups)
        ]
        self._buffer: _FlatSet | None = None
        self._snap_step = -1  # the buffer holds θ of this step (a pending snapshot)
        self._update_step = -1  # ... or −Δθ of this step
        self._start: list[torch.Tensor] | None = None
        self._previous: list[torch.Tensor] | None = None
        self.last_update_step = -1
        self._last_weight = -(10**9)
        self._last_distance = -(10**9)

    def measures(self, count: int) -> bool:
        """Whether the update is measured at this call."""
        k = self.every
        return k <= 2 or count % k in (0, k - 1) or self._probe_step(count)

    def _probe_step(self, count: int) -> bool:
        return self.extra > 0 and count % self.extra == 0

    def nbytes(self) -> int:
        """Bytes the tracker holds now (the buffer only while a measurement needs it)."""
        held = [*(self._start or []), *(self._previous or [])]
        if self._buffer is not None:
            held += self._buffer.flats
        patterns = sum(s.nbytes() for s in self._sketches)
        return sum(t.numel() * t.element_size() for t in held) + patterns

    def record(self, count: int) -> UpdateSample | None:
        """Call once per optimizer step with the step index; returns the sample measured now, if any."""
        with torch.no_grad():
            if self._start is None:
                self._start = self._sketch(self._groups)
            sample = None
            if self._snap_step == count - 1 and self._snap_step >= 0 and self.measures(count):
                sample = self._measure(count)
            self._snap_step = -1
            exact = all(s.exact for s in self._sketches)
            # A probe at this step reads the update from the buffer: keep it, unless the sketch holds it.
            keep = self._update_step == count and self._probe_step(count) and not exact
            distance_due = (
                sample is not None
                and count - self._last_distance >= self.distance_every
                and self._start is not None
            )
            now = None
            if self.measures(count + 1) and not keep:
                buffer = self._buffer or _FlatSet(self._groups)
                self._snapshot(buffer)
                self._buffer, self._snap_step, self._update_step = buffer, count, -1
                if distance_due:  # the snapshot holds θ_t's signed values: fold them
                    now = self._snapshot_sketch(buffer)
            elif distance_due:
                # Unless a probe reads −Δθ from the buffer now, it may serve as the distance sketch's scratch.
                scratch = None if keep or self._buffer is None else self._buffer.flats
                now = self._sketch(self._groups, scratch)
            if not keep and self._snap_step != count:
                self._buffer, self._update_step = None, -1
            if sample is not None and now is not None and self._start is not None:
                self._last_distance = count
                device = self.params[0].device
                squares = [torch.sum((a - b) ** 2).to(device) for a, b in zip(now, self._start, strict=True)]
                sample.distance = torch.sqrt(torch.stack(squares).sum())
            return sample

    def _snapshot(self, buffer: _FlatSet, *, subtract: bool = False) -> None:
        """The buffer ← θ (``subtract``: the buffer −= θ), times the sketch's signs in groups sketched by buckets
        (one pass either way)."""
        for sketch, params, views, flat in zip(
            self._sketches, self._groups, buffer.group_views, buffer.flats, strict=True
        ):
            if sketch.exact:
                (torch._foreach_sub_ if subtract else torch._foreach_copy_)(views, params)
            elif subtract:
                sketch.subtract_signed(flat, params)
            else:
                sketch.sign_into(params, flat)

    def _snapshot_sketch(self, buffer: _FlatSet) -> list[torch.Tensor]:
        """The sketch of θ from a fresh snapshot (folded tensor by tensor, as :meth:`Sketch.__call__` does)."""
        return [
            sketch(params) if sketch.exact else sketch.fold_signed(flat, [p.numel() for p in params])
            for sketch, params, flat in zip(self._sketches, self._groups, buffer.flats, strict=True)
        ]

    def _sketch(
        self, groups: Sequence[Sequence[torch.Tensor]], scratch: Sequence[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """One sketch per group; ``scratch``: one flat tensor per group that may be overwritten."""
        scratches: Sequence[torch.Tensor | None] = scratch or [None] * len(groups)
        return [
            sketch(tensors, into)
            for sketch, tensors, into in zip(self._sketches, groups, scratches, strict=True)
        ]

    def _measure(self, count: int) -> UpdateSample:
        buffer = self._buffer
        assert buffer is not None
        # θ_{t−1} − θ_t = −Δθ (signed where the snapshot is: s⊙θ_{t−1} − s⊙θ_t, exactly s⊙(−Δθ)), in one pass.
        self._snapshot(buffer, subtract=True)
        device = self.params[0].device
        # Signs do not change the norms (nor, being exact, the sketch of the values they multiply).
        sample = UpdateSample(stack_norms(torch._foreach_norm(buffer.views), device))
        current = [
            sketch([flat]) if sketch.exact else sketch.fold_signed(flat)
            for sketch, flat in zip(self._sketches, buffer.flats, strict=True)
        ]
        if self._previous is not None and self.last_update_step == count - 1:
            # Not torch.dot or @: their BLAS path takes milliseconds on some float64 CPU buffers.
            dots = [torch.sum(a * b).to(device) for a, b in zip(current, self._previous, strict=True)]
            sample.dot_prev = dots[0] if len(dots) == 1 else torch.stack(dots).sum()
        self._previous, self.last_update_step, self._update_step = current, count, count
        if count - self._last_weight >= self.weight_every:
            self._last_weight = count
            sample.weight_layer_norms = stack_norms(torch._foreach_norm(self.params), device)
        return sample

    def update_direction(self, count: int) -> list[torch.Tensor] | None:
        """Δθ of step ``count`` (parameter-shaped), if it was measured and is still held."""
        if self.last_update_step != count:
            return None
        if self._buffer is not None and self._update_step == count:
            out = []
            for sketch, views in zip(self._sketches, self._buffer.group_views, strict=True):
                offset = 0
                for v in views:  # the signs undone (exactly) where the buffer holds signed values
                    flat = v.reshape(-1)
                    out.append(-(v if sketch.exact else sketch._signed(flat, offset).view_as(v)))
                    offset += flat.numel()
            return out
        if self._previous is not None and all(s.exact for s in self._sketches):
            out = []
            for group, flat in zip(self._groups, self._previous, strict=True):
                offset = 0
                for p in group:
                    out.append(-flat[offset : offset + p.numel()].view_as(p).to(p.dtype))
                    offset += p.numel()
            return out
        return None
