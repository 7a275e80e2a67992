"""Rules that need all of a param group's gradients at once: a global-norm clip.

A chain's leading group-wide parts (:meth:`~ravine.optim.Chain.leading_group_parts`) see every gradient of
the group, whatever the parameters' update counts (a parameter that sat out a step has a lower one) and with
``foreach=False``; the rest of the chain then runs per count and per cache-sized chunk. A leading
:class:`~ravine.optim.ClipByGlobalNorm` is a scale on each chunk, and its norm doubles as the optimizer's
NaN/Inf check of the group (one read of the gradients serves both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ravine.optim import _inject
from ravine.optim._clipping import ClipByGlobalNorm
from ravine.optim._foreach import Bucket, chunk_plan, held
from ravine.optim._scalars import Scalar
from ravine.optim._transforms import Chain, Transform, TransformState

__all__ = ["group_wide_first", "leading_clip", "step_group_wide"]


def leading_clip(transform: Transform) -> bool:
    """Whether the rule is a chain that starts with one :class:`ClipByGlobalNorm` (injected or not)."""
    inner = transform.inner if isinstance(transform, _inject.InjectHyperparams) else transform
    return (
        isinstance(inner, Chain)
        and isinstance(inner.transforms[0], ClipByGlobalNorm)
        and inner.leading_group_parts() == 1
    )


def group_wide_first(
    rule: Transform,
    grads: list[torch.Tensor],
    state: TransformState,
    params: list[torch.Tensor],
    step: Scalar,
) -> tuple[int, list[torch.Tensor]]:
    """Run a chain's leading group-wide parts (a global-norm clip) over the whole group at ``step`` (the
    first parameter's count, which a scheduled hyper-parameter of those parts then follows).

    Returns how many parts ran and the direction they made, or ``(0, grads)`` when the rule has none in
    front. The rest of the chain then runs per update count and per cache-sized chunk, so a global norm
    stays global when counts differ (a parameter without a gradient at some step) or with foreach=False.
    """
    if not isinstance(rule, Chain) or not (lead := rule.leading_group_parts()):
        return 0, grads
    return lead, rule.update_upto(lead, grads, state, params, step=step)


def step_group_wide(
    group: dict[str, Any],
    rules: dict[int, Transform],
    buckets: list[Bucket],
    views: list[tuple[list[torch.Tensor], list[torch.Tensor], list[dict[Any, Any]]]],
    keys: tuple[str, ...],
    *,
    foreach: bool,
    norm: torch.Tensor | None,
    learning_rate: Callable[[Mapping[str, Any], int], Scalar],
    chunk_bytes: int | None,
) -> None:
    """A rule that needs all of a group's gradients at once (a global-norm clip), whatever the counts.

    A chain's leading group-wide parts see the whole group at the first parameter's count (which a
    scheduled hyper-parameter of theirs follows); the rest runs per update count and per cache-sized
    chunk. A leading :class:`ClipByGlobalNorm` is a scale: it multiplies each chunk in cache, and the
    guard's norm (``norm``) serves as the clip's. Any other group-wide rule runs on the whole group at
    the first parameter's count, as the compiled step does.
    """
    first = buckets[0][0]
    rule = rules[first]
    params = [p for view in views for p in view[0]]
    grads = [g for view in views for g in view[1]]
    state = {key: [held(e, key) for view in views for e in view[2]] for key in keys}
    lead = rule.leading_group_parts() if isinstance(rule, Chain) else 0
    if not lead:
        rule.apply(grads, state, params, step=first, lr=learning_rate(group, first))
        return
    assert isinstance(rule, Chain)
    scale: torch.Tensor | None = None
    clip = rule.transforms[0]
    if lead == 1 and isinstance(clip, ClipByGlobalNorm):
        total = norm if norm is not None else clip.total_norm(grads)
        scale = clip.coefficient(total, rule.sub_state(0, state))
    else:
        _, updates = group_wide_first(rule, grads, state, params, first)
        start = 0
        for i, (ps, _, es) in enumerate(views):
            views[i] = (ps, updates[start : start + len(ps)], es)
            start += len(ps)
    for (step, _, _, _), (ps, gs, es) in zip(buckets, views, strict=True):
        lr, part_rule = learning_rate(group, step), rules[step]
        assert isinstance(part_rule, Chain)
        rest = part_rule.state_keys_from(lead)
        chunks = chunk_plan(ps, gs, es, rest, chunk_bytes, scope=part_rule.scope_from(lead))
        if not foreach:  # torch's for-loop: one parameter at a time
            chunks = [
                ([g], {key: [held(e, key)] for key in rest}, [p]) for p, g, e in zip(ps, gs, es, strict=True)
            ]
        for chunk_grads, chunk_state, chunk_params in chunks:
            direction = chunk_grads if scale is None else list(torch._foreach_mul(chunk_grads, scale))
            part_rule.apply_from(lead, direction, chunk_state, chunk_params, step=step, lr=lr)
