"""The multi-tensor kernels of :class:`~ravine.optim.ChainOptimizer`'s step.

:func:`chunk_plan` cuts a group's parameters, gradients and state into cache-sized chunks for the CPU
foreach kernels; :func:`all_finite` checks all gradients for NaN/Inf with one fused reduction.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from ravine.optim._transforms import TransformState

__all__ = ["Bucket", "all_finite", "by_count", "chunk_plan", "finite_flag", "held", "real", "real_views"]


def held(entry: dict[Any, Any], key: str) -> torch.Tensor:
    """``entry[key]``, or ``None`` (typed as a tensor, as the rule sees it) where the rule keeps that key for
    other parameters only (Adafactor's ``row_var`` of a vector)."""
    return cast(torch.Tensor, entry.get(key))


def chunk_plan(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    entries: list[dict[Any, Any]],
    keys: tuple[str, ...],
    chunk_bytes: int | None,
    *,
    scope: str = "element",
) -> list[tuple[list[torch.Tensor], TransformState, list[torch.Tensor]]]:
    """(grads, state, params) chunks of about ``chunk_bytes`` parameter bytes each, for CPU tensors.

    On CPU every foreach op streams its whole list through memory; running the rule chunk by chunk keeps
    a chunk's parameters, gradients and state in cache across the rule's 3–8 ops. Consecutive small
    parameters share a chunk; a parameter larger than ``chunk_bytes`` is cut into flat slices (views of
    parameter, gradient and state alike) when all of them are contiguous with the parameter's shape, so a
    large embedding stays in cache too. Every op of the built-in rules is elementwise, so results do not
    depend on the chunking. Other devices (and ``chunk_bytes=None``) get one chunk: their foreach kernels
    are built for long lists. ``scope`` (the rule's :attr:`~ravine.optim.Transform.scope`): ``"group"``
    gives one chunk, ``"tensor"`` keeps parameters whole.
    """
    if chunk_bytes is None or not params or params[0].device.type != "cpu" or scope == "group":
        return [(grads, {key: [held(entry, key) for entry in entries] for key in keys}, params)]
    plan: list[tuple[list[torch.Tensor], TransformState, list[torch.Tensor]]] = []
    start, size = 0, 0
    for i, (p, g, entry) in enumerate(zip(params, grads, entries, strict=True)):
        nbytes = p.numel() * p.element_size()
        sliceable = (
            scope == "element"
            and nbytes > 2 * chunk_bytes
            and _flat_sliceable(p, g, [held(entry, key) for key in keys])
        )
        if i > start and (sliceable or size + nbytes > chunk_bytes):
            plan.append(_whole(params, grads, entries, keys, lo=start, hi=i))
            start, size = i, 0
        if sliceable:
            per = max(1, chunk_bytes // p.element_size())
            flat_p, flat_g = p.detach().view(-1), g.view(-1)
            flat_s = [entry[key].view(-1) for key in keys]
            for lo in range(0, p.numel(), per):
                hi = lo + per
                state = {key: [flat[lo:hi]] for key, flat in zip(keys, flat_s, strict=True)}
                plan.append(([flat_g[lo:hi]], state, [flat_p[lo:hi]]))
            start = i + 1
            continue
        size += nbytes
    if start < len(params):
        plan.append(_whole(params, grads, entries, keys, lo=start, hi=len(params)))
    return plan


def _whole(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    entries: list[dict[Any, Any]],
    keys: tuple[str, ...],
    *,
    lo: int,
    hi: int,
) -> tuple[list[torch.Tensor], TransformState, list[torch.Tensor]]:
    """The consecutive whole parameters ``lo:hi`` as one chunk."""
    return grads[lo:hi], {key: [held(entry, key) for entry in entries[lo:hi]] for key in keys}, params[lo:hi]


def _flat_sliceable(param: torch.Tensor, grad: torch.Tensor, state: list[torch.Tensor]) -> bool:
    """Whether parameter, gradient and state tensors can be cut into matching flat slices."""
    return all(
        isinstance(t, torch.Tensor) and t.shape == param.shape and t.is_contiguous() and not t.is_sparse
        for t in (param, grad, *state)
    )


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """True when no tensor holds NaN or ±Inf.

    Fast path: one sum per tensor (a reduction at memory bandwidth, about one ``add_`` pass) and one sync.
    A NaN or ±Inf element makes its tensor's sum non-finite (NaN + x = NaN, Inf + finite = Inf,
    Inf − Inf = NaN), so finite sums prove every element finite. A non-finite sum can also come from
    overflow of finite values (|Σg| ≳ 3e38 in float32); only then the exact per-element check runs. (The
    2-norm needs squares and a sqrt and runs at about half this speed on CPU; the ∞-norm ~10× slower.)
    """
    tensors = [t for t in tensors if t.numel() > 0]
    if not tensors:
        return True
    sums = [t.sum() for t in tensors]
    dtype, device = sums[0].dtype, sums[0].device
    if all(s.dtype == dtype and s.device == device for s in sums):
        if bool(torch.stack(sums).isfinite().all()):
            return True
    elif all(bool(s.isfinite()) for s in sums):
        return True
    return all(bool(t.isfinite().all()) for t in tensors)


def finite_flag(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A 0-d bool tensor, True when no tensor holds NaN or ±Inf (exact; no host sync, for compiled steps)."""
    flags = [t.isfinite().all() for t in tensors if t.numel() > 0]
    if not flags:
        return torch.ones((), dtype=torch.bool)
    return torch.stack(flags).all()


def real_views(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    entries: list[dict[Any, Any]],
    keys: tuple[str, ...],
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[dict[Any, Any]]]:
    """Complex tensors as real views (``torch.view_as_real``, as torch.optim does); others unchanged.

    A complex parameter is then updated as two real coordinates per element: Adam's v sums re² and im²
    separately, exactly as torch's optimizers treat complex parameters.
    """
    if not any(p.is_complex() for p in params):
        return params, grads, entries
    views = [{**entry, **{key: real(entry[key]) for key in keys if key in entry}} for entry in entries]
    return [real(p) for p in params], [real(g) for g in grads], views


def real(tensor: torch.Tensor) -> torch.Tensor:
    """A complex tensor as its real view (``torch.view_as_real``), any other as it is."""
    return torch.view_as_real(tensor) if isinstance(tensor, torch.Tensor) and tensor.is_complex() else tensor


Bucket = tuple[int, list[torch.Tensor], list[torch.Tensor], list[dict[Any, Any]]]
"""One update count's parameters, gradients and state entries (:func:`by_count`)."""


def by_count(
    params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict[Any, Any]]
) -> list[Bucket]:
    """The parameters (with their gradients and state) grouped by update count, this update included."""
    steps = [entry["step"] for entry in states]
    counts = [int(c) for c in torch.stack(steps).tolist()] if len(steps) > 1 else [int(steps[0].item())]
    first = counts[0]
    if all(c == first for c in counts):
        return [(first, params, grads, states)]
    by_step: dict[int, tuple[list[torch.Tensor], list[torch.Tensor], list[dict[Any, Any]]]] = {}
    for p, g, entry, c in zip(params, grads, states, counts, strict=True):
        bucket = by_step.setdefault(c, ([], [], []))
        bucket[0].append(p)
        bucket[1].append(g)
        bucket[2].append(entry)
    return [(s, ps, gs, es) for s, (ps, gs, es) in by_step.items()]
