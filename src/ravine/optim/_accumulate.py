r"""Gradient accumulation as a transform: optax's ``MultiSteps`` for a :class:`~ravine.optim.ChainOptimizer`.

``MultiSteps(inner, every=k)`` adds each step's gradient to ``acc_grad`` and leaves the parameters alone;
every k-th step it runs ``inner`` once on the mean of the k gradients (its own step count is t // k) and
clears the sum. Call ``optimizer.step()`` after every micro-batch and ``zero_grad()`` as usual: the
effective batch is k micro-batches, with no change to the training loop. Learning-rate schedules still
count optimizer steps (micro-batches). Eager only: under ``torch.compile`` the every-k-th branch would be a
data-dependent branch on the step count, so it raises :class:`~ravine.errors.UnsupportedError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ravine._validate import check_positive_int
from ravine.errors import ConfigError, UnsupportedError
from ravine.optim._scalars import Scalar
from ravine.optim._transforms import Transform, TransformState

__all__ = ["MultiSteps"]


class MultiSteps(Transform):
    """Apply ``inner`` to the mean gradient of every ``every`` consecutive steps (see the module docstring).

    Args:
        inner: the rule to run every ``every`` steps, e.g. ``chain(WeightDecay(1e-4), Adam())``.
        every: k ≥ 1 micro-batches per update.

    Example:
        >>> import torch
        >>> from ravine.optim import ChainOptimizer, Identity, MultiSteps
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = ChainOptimizer([w], MultiSteps(Identity(), every=2), lr=1.0)
        >>> for g in (1.0, 3.0):
        ...     w.grad = torch.tensor([g])
        ...     opt.step()
        ...     print(w.item())
        0.0
        -2.0
    """

    def __init__(self, inner: Transform, every: int) -> None:
        if not isinstance(inner, Transform):
            raise ConfigError(f"MultiSteps: inner must be a Transform, got {inner!r}")
        if isinstance(inner, MultiSteps):
            raise ConfigError(
                "MultiSteps: nest the counts instead (every=k1*k2), not MultiSteps in MultiSteps"
            )
        if "acc_grad" in inner.state_keys():
            raise ConfigError("MultiSteps: the inner rule already keeps a state named 'acc_grad'")
        self.inner = inner
        self.every = check_positive_int("MultiSteps", "every", every)
        self.reads_params = inner.reads_params
        self.scope = inner.scope
        self.defines_effective_lr = inner.defines_effective_lr

    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        state = self.inner.init(params)
        state["acc_grad"] = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        return state

    def state_keys(self) -> tuple[str, ...]:
        return (*self.inner.state_keys(), "acc_grad")

    def _inner_state(self, state: TransformState) -> TransformState:
        return {key: state[key] for key in self.inner.state_keys()}

    def _boundary(
        self, updates: list[torch.Tensor], state: TransformState, step: Scalar
    ) -> list[torch.Tensor] | None:
        """Accumulate; on every k-th step return the mean gradient (and clear the sum), else None."""
        if isinstance(step, torch.Tensor):
            raise UnsupportedError(
                "MultiSteps: its every-k-th-step branch cannot be traced by torch.compile; compile the "
                "forward/backward only, or accumulate gradients in the loop (loss / k, step every k)"
            )
        acc = state["acc_grad"]
        torch._foreach_add_(acc, updates)
        if int(step) % self.every != 0:
            return None
        mean = list(torch._foreach_div(acc, float(self.every)))
        torch._foreach_zero_(acc)
        return mean

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        mean = self._boundary(updates, state, step)
        if mean is None:
            return [torch.zeros_like(u) for u in updates]
        return self.inner.update(mean, self._inner_state(state), params, step=int(step) // self.every)

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        mean = self._boundary(updates, state, step)
        if mean is not None:
            self.inner.apply(mean, self._inner_state(state), params, step=int(step) // self.every, lr=lr)

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        inner_step = max(1, int(step) // self.every)
        return self.inner.denominator(self._inner_state(state), step=inner_step)

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        return self.inner.momentum_buffer(self._inner_state(state))
