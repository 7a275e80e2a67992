r"""The functional core: gradient transforms and their composition.

An optimizer step is θ ← θ − η_t·d_t, where the *direction* d_t is produced by a chain of transforms from the
gradient g_t. A transform holds only hyper-parameters (Python floats); its per-parameter state lives in a
:data:`TransformState` that the caller owns (``dict`` of key → one tensor per parameter).

Contract of :meth:`Transform.update`:

* ``step`` is the number of this update, counting from 1.
* The input tensors (``updates``, ``params``) are **read-only**: a transform never modifies them in place.
* The returned tensors are new tensors *or* aliases of state / input tensors (e.g. the momentum buffer), so
  the caller must treat them as read-only too and must not keep them past the next update.
* The direction is unit-free: the caller applies θ ← θ − η_t·d with its own η_t (a float, or a tensor when
  driving many configurations at once).

Decoupled weight decay (AdamW) needs no learning rate inside the transform: with
d = adam_direction + λθ, θ − η(d) = (1 − ηλ)θ − η·adam_direction, which is exactly torch's AdamW. So
:class:`DecoupledWeightDecay` is simply placed *after* the preconditioner in the chain, whereas the coupled
:class:`WeightDecay` (g ← g + λθ, torch SGD/Adam/RMSprop/Adagrad) is placed *before* it.

:meth:`Transform.apply` is the fused hot path used by the optimizer adapter: it does the update and
θ ← θ − η·d in one go (preconditioners override it with ``addcdiv_`` so no direction is materialised).
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Sequence

import torch

from ravine._validate import check_closed_unit_interval, check_nonnegative, check_unit_interval
from ravine.errors import ConfigError
from ravine.optim._scalars import Scalar, add_scaled_, looped, pick

__all__ = [
    "Chain",
    "DecoupledWeightDecay",
    "EmaMomentum",
    "Identity",
    "Momentum",
    "Transform",
    "TransformState",
    "WeightDecay",
    "chain",
]

TransformState = dict[str, list[torch.Tensor]]
"""Per-parameter state of a transform: key → one tensor per parameter (same order as ``params``)."""


class Transform(abc.ABC):
    """One part of an update rule d_t = T(g_t); see the module docstring for the contract."""

    reads_params: bool = False
    """Whether :meth:`update` reads the parameter values (weight decay does)."""
    defines_effective_lr: bool = True
    """Whether η_t/σ_t means something for this rule (not for sign rules such as Lion and Rprop)."""
    no_effective_lr: str = (
        "it moves each coordinate by a step size times a sign (or by a scale its state no longer holds), "
        "so η_t/σ_t is not defined for it"
    )
    """Why η_t/σ_t is not defined (when :attr:`defines_effective_lr` is False), for the error message."""
    scope: str = "element"
    """What :meth:`update` must see at once: ``"element"`` (elementwise: any flat slice will do),
    ``"tensor"`` (whole parameters, e.g. per-row norms) or ``"group"`` (all of a group's parameters, e.g. a
    global norm). The optimizer cuts its work into cache-sized chunks only as far as this allows."""

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        """Fresh state for ``params``: key → one tensor per parameter. Stateless transforms return ``{}``."""
        del params
        return {}

    @abc.abstractmethod
    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        """Transform the incoming direction ``updates`` (step counts from 1); see the module contract."""

    def check_params(self, owner: str, params: Sequence[torch.Tensor]) -> None:
        """Refuse parameters this rule cannot update (e.g. Muon's non-matrices), at construction and load."""
        del owner, params

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        """σ_t per element if this transform divides by one, else ``None`` (new tensors, made on demand)."""
        del state, step
        return None

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        """The momentum buffer m_t held in ``state`` (aliases, read-only), or ``None`` if there is none."""
        del state
        return None

    def state_keys(self) -> tuple[str, ...]:
        """The keys :meth:`init` creates (derived from an ``init`` on no parameters)."""
        return tuple(self.init([]).keys())

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        """Update ``state`` and set θ ← θ − lr·d in place (the optimizer's hot path)."""
        direction = self.update(updates, state, params, step=step)
        add_scaled_(params, direction, -lr)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted((k, repr(v)) for k, v in vars(self).items()))))


class Identity(Transform):
    """d = g (plain gradient descent). Returns the input list itself."""

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del state, params, step
        return updates


_MASKS = ("matrices",)


def _check_mask(owner: str, mask: str | None) -> str | None:
    if mask is not None and mask not in _MASKS:
        raise ConfigError(
            f"{owner}: mask must be None or 'matrices' (decay only tensors of 2+ dimensions), got {mask=!r}; "
            "to choose by name, build param groups with ravine.optim.weight_decay_groups"
        )
    return mask


def _decays(param: torch.Tensor, mask: str | None) -> bool:
    return mask is None or param.ndim >= 2


def _decayed(
    updates: list[torch.Tensor], params: list[torch.Tensor], weight_decay: float, mask: str | None
) -> list[torch.Tensor]:
    """d + λθ for the parameters the mask selects (new tensors), the others' d unchanged."""
    if weight_decay == 0:
        return updates
    if mask is None:
        return list(torch._foreach_add(updates, params, alpha=weight_decay))
    chosen = [i for i, p in enumerate(params) if _decays(p, mask)]
    out = list(updates)
    if chosen:
        decayed = torch._foreach_add(
            [updates[i] for i in chosen], [params[i] for i in chosen], alpha=weight_decay
        )
        for i, d in zip(chosen, decayed, strict=True):
            out[i] = d
    return out


class WeightDecay(Transform):
    r"""Coupled L2 weight decay, as torch SGD/Adam/RMSprop/Adagrad: d = g + λθ (new tensors).

    Args:
        weight_decay: λ ≥ 0.
        mask: ``None`` decays every parameter; ``"matrices"`` only those with two or more dimensions (no
            decay on biases and norm weights, inside one group). By name: :func:`weight_decay_groups`.
    """

    reads_params = True

    def __init__(self, weight_decay: float, *, mask: str | None = None) -> None:
        self.weight_decay = check_nonnegative("WeightDecay", "weight_decay", weight_decay)
        self.mask = _check_mask("WeightDecay", mask)
        if mask is not None:
            self.scope = "tensor"  # the mask reads each parameter's shape: never cut into flat slices

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del state, step
        return _decayed(updates, params, self.weight_decay, self.mask)


class DecoupledWeightDecay(Transform):
    r"""Decoupled weight decay (AdamW): d = d_in + λθ, placed *after* the preconditioner.

    With the caller's θ ← θ − η·d this is θ ← (1 − ηλ)θ − η·d_in, torch's AdamW. The fused :meth:`apply`
    does exactly torch's order (θ *= 1 − ηλ, then θ −= η·d_in).

    Args:
        weight_decay: λ ≥ 0.
        mask: as :class:`WeightDecay`'s.
    """

    reads_params = True

    def __init__(self, weight_decay: float, *, mask: str | None = None) -> None:
        self.weight_decay = check_nonnegative("DecoupledWeightDecay", "weight_decay", weight_decay)
        self.mask = _check_mask("DecoupledWeightDecay", mask)
        if mask is not None:
            self.scope = "tensor"

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del state, step
        return _decayed(updates, params, self.weight_decay, self.mask)

    def shrink(self, params: list[torch.Tensor], *, lr: Scalar) -> None:
        """θ ← (1 − lr·λ)·θ in place (only the masked-in parameters)."""
        if self.weight_decay != 0:
            chosen = [p for p in params if _decays(p, self.mask)]
            if chosen:
                torch._foreach_mul_(chosen, 1.0 - lr * self.weight_decay)

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        del state, step
        self.shrink(params, lr=lr)
        add_scaled_(params, updates, -lr)


class Momentum(Transform):
    r"""Heavy-ball or Nesterov momentum, torch-SGD style.

    b_1 = g_1;  b_t = μ·b_{t−1} + (1 − τ)·g_t  (τ = dampening);  d = b_t, or d = g_t + μ·b_t with Nesterov.
    State key ``"momentum_buffer"`` (as torch). Heavy-ball returns the buffer itself (read-only alias).

    Args:
        momentum: μ ≥ 0.
        dampening: τ in [0, 1].
        nesterov: Nesterov's look-ahead form; needs μ > 0 and τ = 0 (as torch).
    """

    def __init__(self, momentum: float = 0.9, *, dampening: float = 0.0, nesterov: bool = False) -> None:
        self.momentum = check_nonnegative("momentum", "momentum", momentum)
        self.dampening = check_closed_unit_interval("momentum", "dampening", dampening)
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ConfigError(
                "momentum: nesterov=True needs momentum > 0 and dampening = 0, "
                f"got momentum={momentum!r}, dampening={dampening!r}"
            )
        self.nesterov = bool(nesterov)

    _one_pass = True
    """Eager CPU: b = g + μb in one fused multiply-add pass (torch rounds μb first: 1 ulp apart). A chain
    turns it off for a Momentum that follows a preconditioner (RMSprop's), where the direction divides by
    sqrt(v) and a 1-ulp change can grow over steps: there it keeps torch's rounding, bit for bit."""

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return {"momentum_buffer": [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]}

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params
        buffers = state["momentum_buffer"]
        if isinstance(step, torch.Tensor):  # compiled: b_1 = g is b = 0·b + 1·g at t = 1
            first = step == 1
            torch._foreach_mul_(buffers, pick(first, 0.0, self.momentum))
            scaled = torch._foreach_mul(updates, pick(first, 1.0, 1.0 - self.dampening))
            torch._foreach_add_(buffers, scaled)
        elif step == 1:
            torch._foreach_copy_(buffers, updates)
        else:
            torch._foreach_mul_(buffers, self.momentum)
            torch._foreach_add_(buffers, updates, alpha=1.0 - self.dampening)
        if self.nesterov:
            return list(torch._foreach_add(updates, buffers, alpha=self.momentum))
        return buffers

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        if not looped(params, step, lr):
            super().apply(updates, state, params, step=step, lr=lr)
            return
        mu, keep, one_pass = self.momentum, 1.0 - self.dampening, self._one_pass
        for p, g, buffer in zip(params, updates, state["momentum_buffer"], strict=True):
            if step == 1:
                buffer.copy_(g)
            elif keep == 1.0 and one_pass:
                torch.add(g, buffer, alpha=mu, out=buffer)  # b = g + μb in one pass (torch: mul_, add_)
            else:
                buffer.mul_(mu).add_(g, alpha=keep)
            p.add_(torch.add(g, buffer, alpha=mu) if self.nesterov else buffer, alpha=-float(lr))

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        return state["momentum_buffer"]


class EmaMomentum(Transform):
    r"""The exponential-moving-average form of momentum used by Adam: m_t = β·m_{t−1} + (1 − β)·g_t, m_0 = 0.

    With ``bias_correction=True`` the direction is m̂_t = m_t / (1 − β^t) (new tensors); else m_t itself.
    State key ``"exp_avg"``. Its :meth:`denominator` is (1 − β^t) when bias-corrected, so that
    effective lr × buffer = step.

    Args:
        beta: β in [0, 1).
        bias_correction: divide by 1 − β^t.
    """

    def __init__(self, beta: float = 0.9, *, bias_correction: bool = False) -> None:
        self.beta = check_unit_interval("EmaMomentum", "beta", beta)
        self.bias_correction = bool(bias_correction)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return {"exp_avg": [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]}

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        del params
        exp_avg = state["exp_avg"]
        torch._foreach_lerp_(exp_avg, updates, 1.0 - self.beta)
        if self.bias_correction:
            return list(torch._foreach_div(exp_avg, 1.0 - self.beta**step))
        return exp_avg

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        if not self.bias_correction:
            return None
        return [torch.ones_like(m) * (1.0 - self.beta**step) for m in state["exp_avg"]]

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        return state["exp_avg"]


class Chain(Transform):
    """Transforms applied in order: d = T_n(…T_2(T_1(g))). Build it with :func:`chain`.

    State keys of the parts are kept as they are (``"exp_avg"``, ``"momentum_buffer"``, ... as in torch);
    a key used by two parts is prefixed with the part's index (``"1/momentum_buffer"``).
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = tuple(_torch_rounding(transforms))
        seen: dict[str, int] = {}
        for part in self.transforms:
            for key in part.state_keys():
                seen[key] = seen.get(key, 0) + 1
        self._keymaps: tuple[dict[str, str], ...] = tuple(
            {key: (key if seen[key] == 1 else f"{i}/{key}") for key in part.state_keys()}
            for i, part in enumerate(self.transforms)
        )
        self.reads_params = any(part.reads_params for part in self.transforms)
        self.defines_effective_lr = all(part.defines_effective_lr for part in self.transforms)
        self.no_effective_lr = next(
            (part.no_effective_lr for part in self.transforms if not part.defines_effective_lr),
            Transform.no_effective_lr,
        )
        self.scope = self.scope_from(0)

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        state: TransformState = {}
        for part, keymap in zip(self.transforms, self._keymaps, strict=True):
            for key, value in part.init(params).items():
                state[keymap[key]] = value
        return state

    def check_params(self, owner: str, params: Sequence[torch.Tensor]) -> None:
        for part in self.transforms:
            part.check_params(owner, params)

    def sub_state(self, index: int, state: TransformState) -> TransformState:
        """Part ``index``'s state under its own key names."""
        return {inner: state[outer] for inner, outer in self._keymaps[index].items()}

    def update_upto(
        self,
        upto: int,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        start: int = 0,
    ) -> list[torch.Tensor]:
        """The direction after parts ``start:upto`` only."""
        for i in range(start, upto):
            updates = self.transforms[i].update(updates, self.sub_state(i, state), params, step=step)
        return updates

    def leading_group_parts(self) -> int:
        """How many parts at the start need all of a group's parameters at once (a global-norm clip).

        The optimizer runs those over the whole group and the rest (:meth:`apply_from`) per update count
        and per cache-sized chunk, so that a global norm stays global when counts differ.
        """
        count = 0
        while count < len(self.transforms) and self.transforms[count].scope == "group":
            count += 1
        return count

    def state_keys_from(self, start: int) -> tuple[str, ...]:
        """The state keys of parts ``start:`` (as this chain names them)."""
        return tuple(key for keymap in self._keymaps[start:] for key in keymap.values())

    def scope_from(self, start: int) -> str:
        """The :attr:`~Transform.scope` that parts ``start:`` need."""
        scopes = {part.scope for part in self.transforms[start:]}
        return next((s for s in ("group", "tensor") if s in scopes), "element")

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        return self.update_upto(len(self.transforms), updates, state, params, step=step)

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        self.apply_from(0, updates, state, params, step=step, lr=lr)

    def apply_from(
        self,
        start: int,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        """:meth:`apply` of parts ``start:`` to the direction that parts ``:start`` made."""
        parts = self.transforms
        if start >= len(parts):
            add_scaled_(params, updates, -lr)
            return
        last = len(parts) - 1
        if (
            last >= start + 1
            and isinstance(parts[last], DecoupledWeightDecay)
            and not parts[last - 1].reads_params
        ):
            # torch's AdamW order: shrink θ, then let the preconditioner apply its (fused) step.
            direction = self.update_upto(last - 1, updates, state, params, step=step, start=start)
            decay = parts[last]
            assert isinstance(decay, DecoupledWeightDecay)
            decay.shrink(params, lr=lr)
            parts[last - 1].apply(direction, self.sub_state(last - 1, state), params, step=step, lr=lr)
            return
        direction = self.update_upto(last, updates, state, params, step=step, start=start)
        parts[last].apply(direction, self.sub_state(last, state), params, step=step, lr=lr)

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        result: list[torch.Tensor] | None = None
        for i, part in enumerate(self.transforms):
            sigma = part.denominator(self.sub_state(i, state), step=step)
            if sigma is None:
                continue
            result = sigma if result is None else list(torch._foreach_mul(result, sigma))
        return result

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        found: list[torch.Tensor] | None = None
        for i, part in enumerate(self.transforms):
            buffers = part.momentum_buffer(self.sub_state(i, state))
            if buffers is not None:
                found = buffers
        return found

    def state_keys(self) -> tuple[str, ...]:
        return tuple(key for keymap in self._keymaps for key in keymap.values())

    def __repr__(self) -> str:
        return f"chain({', '.join(repr(part) for part in self.transforms)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Chain) and self.transforms == other.transforms

    def __hash__(self) -> int:
        return hash(self.transforms)


def _torch_rounding(transforms: Sequence[Transform]) -> list[Transform]:
    """The parts, with a copy keeping torch's rounding for every Momentum after a non-weight-decay part."""
    out: list[Transform] = []
    for i, part in enumerate(transforms):
        after_rule = any(not isinstance(q, WeightDecay) for q in transforms[:i])
        if isinstance(part, Momentum) and part._one_pass and after_rule:
            exact = copy.copy(part)
            exact._one_pass = False
            out.append(exact)
        else:
            out.append(part)
    return out


def chain(*transforms: Transform) -> Transform:
    """Compose transforms left to right (nested chains are flattened); ``chain()`` is :class:`Identity`.

    Example:
        >>> from ravine.optim import Adam, DecoupledWeightDecay, chain
        >>> chain(Adam(), DecoupledWeightDecay(0.01)).state_keys()
        ('exp_avg', 'exp_avg_sq')
    """
    flat: list[Transform] = []
    for part in transforms:
        candidate: object = part
        if not isinstance(candidate, Transform):
            raise ConfigError(f"chain: every part must be a Transform, got {candidate!r}")
        if isinstance(part, Chain):
            flat.extend(part.transforms)
        elif not isinstance(part, Identity):
            flat.append(part)
    if not flat:
        return Identity()
    if len(flat) == 1:
        return flat[0]
    return Chain(flat)
