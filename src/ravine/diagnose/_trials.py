"""Remedies tried before they are advised: each one runs on a copy of the model and optimizer.

For a verdict's remedies (η×10, η÷10, warmup, a step along the Hessian's escape direction, switching to
Adam), :func:`try_remedies` copies the model and the optimizer (:func:`~ravine.diagnose._sandbox.copy_run`),
trains the copy for a bounded number of steps on batches the run has already seen (in their order, cycled),
and measures the mean loss over those batches before and after — next to a control copy that continues
unchanged ("as is"). The user's parameters, optimizer state, random generators and data order stay
bit-identical (the trials only read them; every generator is restored, :func:`sandboxed`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ravine.diagnose._records import VerdictKind
from ravine.diagnose._sandbox import copy_run, sandboxed
from ravine.errors import ConfigError

__all__ = ["REMEDY_TRIALS", "RemedyTrial", "TrialResult", "mean_loss", "try_remedies"]

Batch = tuple[Any, Any]
LossFn = Callable[[Any, Any], torch.Tensor]

REMEDY_TRIALS: dict[VerdictKind, tuple[str, ...]] = {
    VerdictKind.RAVINE_OSCILLATION: ("lr/10", "adam", "warmup"),
    VerdictKind.LR_TOO_SMALL: ("lr*10", "adam"),
    VerdictKind.SADDLE_POINT: ("escape", "lr*10", "adam"),
    VerdictKind.LOCAL_MINIMUM_LIKE: ("lr/10", "escape"),
    VerdictKind.CRITICAL_POINT: ("escape", "lr*10"),
    VerdictKind.NOISE_DOMINATED: ("lr/10", "adam"),
    VerdictKind.DIVERGING: ("lr/10", "warmup"),
    VerdictKind.DIVERGED_STUCK: ("lr/10", "warmup", "adam"),
    VerdictKind.ADAPTIVE_LR_BURSTS: ("lr/10", "warmup"),
    VerdictKind.DEAD_UNITS: ("lr*10", "lr/10", "adam"),
    VerdictKind.GRADIENT_DEPTH: ("adam", "lr*10"),
    VerdictKind.STALLED: ("lr*10", "lr/10", "warmup", "adam"),
    VerdictKind.HEALTHY: (),
}
"""Which remedies :func:`try_remedies` tries for each verdict kind."""

_DESCRIPTIONS = {
    "as is": "the run continued unchanged (the control)",
    "lr*10": "learning rate ×10",
    "lr/10": "learning rate ÷10",
    "warmup": "learning rate ramped linearly from 0 to its value over the trial",
    "escape": "one step along the Hessian's λ_min eigenvector (ravine.curvature.escape), then as is",
    "adam": "switched to Adam (lr 1e-3, fresh state)",
}


@dataclass(frozen=True)
class TrialResult:
    """One remedy tried on a copy.

    Attributes:
        name: The remedy ("as is", "lr*10", "lr/10", "warmup", "escape", "adam").
        description: What was done.
        loss_before: Mean loss over the trial batches before.
        loss_after: Mean loss over the trial batches after the trial steps (inf if it diverged).
        gain: How much lower than the control's final loss (positive: better than continuing as is).
        diverged: A non-finite loss appeared, or the loss ended over 1000× where it started.
        note: Why the trial could not run, when it could not.
    """

    name: str
    description: str
    loss_before: float
    loss_after: float
    gain: float
    diverged: bool = False
    note: str = ""


@dataclass(frozen=True)
class RemedyTrial:
    """The outcome of :func:`try_remedies`.

    Attributes:
        control: The copy that continued unchanged.
        trials: The remedies, in the order tried.
        steps: Training steps per trial.
        batches: Batches used (cycled).
        seconds: Wall time of all trials together.
    """

    control: TrialResult
    trials: tuple[TrialResult, ...]
    steps: int
    batches: int
    seconds: float

    @property
    def best(self) -> TrialResult | None:
        """The remedy that lowered the loss most below the control, if any did."""
        helped = [t for t in self.trials if t.gain > 0 and not t.diverged]
        return max(helped, key=lambda t: t.gain) if helped else None

    def summary(self) -> str:
        """One line per trial."""
        lines = [f"{self.control.name:7s} {self.control.loss_before:.4g} → {self.control.loss_after:.4g}"]
        for t in self.trials:
            outcome = t.note or ("diverged" if t.diverged else f"{t.loss_after:.4g} ({t.gain:+.3g} vs as is)")
            lines.append(f"{t.name:7s} {t.loss_before:.4g} → {outcome}")
        return "\n".join(lines)


def mean_loss(model: nn.Module, loss_fn: LossFn, batches: Sequence[Batch], seed: int = 0) -> float:
    """Mean of ``loss_fn(model(x), y)`` over ``batches`` without gradients (dropout seeded by ``seed``)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        values = [float(loss_fn(model(x), y)) for x, y in batches]
    return sum(values) / len(values)


def _train(
    model: nn.Module,
    optimizer: Any,
    loss_fn: LossFn,
    batches: Sequence[Batch],
    *,
    steps: int,
    lr_scale: Callable[[int], float] | None,
) -> bool:
    """Train the copy; False if a non-finite loss (or an optimizer's non-finite error) appeared."""
    base = [group["lr"] for group in optimizer.param_groups]
    for t in range(steps):
        if lr_scale is not None:
            for group, lr in zip(optimizer.param_groups, base, strict=True):
                group["lr"] = lr * lr_scale(t)
        x, y = batches[t % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss.detach()).all():
            return False
        loss.backward()
        try:
            optimizer.step()
        except Exception:  # e.g. ravine's NonFiniteError on a blown-up gradient
            return False
    return True


def _escape(model: nn.Module, loss_fn: LossFn, batch: Batch, seed: int) -> str:
    """Apply one escape step to the copy in place; the reason when none was taken."""
    from ravine.curvature import HessianOperator, escape_hessian

    with warnings.catch_warnings(record=True) as caught:  # e.g. "Hessian in eval mode": kept in the note
        warnings.simplefilter("always")
        H = HessianOperator(model, loss_fn, batch, allow_zero=True, seed=seed)
        result = escape_hessian(H, apply=True, max_hvps=200, tol=1e-3, seed=seed)
    notes = [str(w.message).split(";")[0] for w in caught[:2]]
    if not result.escaped:
        notes.insert(0, f"no escape step: {result.reason}")
    return "; ".join(notes)


def try_remedies(
    model: nn.Module,
    optimizer: Any,
    loss_fn: LossFn,
    batches: Sequence[Batch],
    *,
    remedies: Sequence[str] | VerdictKind = VerdictKind.STALLED,
    steps: int = 20,
    adam_lr: float = 1e-3,
    seed: int = 0,
) -> RemedyTrial:
    """Try remedies on copies of the run and report which lowered the loss (the run is never touched).

    Args:
        model: The user's model (read only).
        optimizer: Its optimizer (read only; copied with its state).
        loss_fn: ``loss_fn(model(inputs), targets)``.
        batches: ``(inputs, targets)`` batches the run has already seen (e.g. ``monitor.recent_batches``);
            trained on in this order, cycled, and the loss is measured as their mean.
        remedies: Names from ("lr*10", "lr/10", "warmup", "escape", "adam"), or a verdict kind whose
            remedies to try (:data:`REMEDY_TRIALS`).
        steps: Training steps per trial (bounded cost: (number of remedies + 1) × steps steps).
        adam_lr: Learning rate of the "adam" trial.
        seed: Seed for dropout in the trials and for the escape direction.

    Example:
        >>> import torch
        >>> torch.manual_seed(0) and None
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=1e-5)
        >>> batch = (torch.randn(64, 4), torch.randn(64, 1))
        >>> trial = try_remedies(model, opt, torch.nn.functional.mse_loss, [batch], remedies=["lr*10"])
        >>> trial.best.name
        'lr*10'
    """
    names = REMEDY_TRIALS[remedies] if isinstance(remedies, VerdictKind) else tuple(remedies)
    unknown = [n for n in names if n not in _DESCRIPTIONS or n == "as is"]
    if unknown:
        raise ConfigError(
            f"try_remedies: unknown remedies {unknown}; choose from {sorted(set(_DESCRIPTIONS) - {'as is'})}"
        )
    batches = list(batches)
    if not batches:
        raise ConfigError(
            "try_remedies: batches is empty; pass batches the run has seen (monitor.recent_batches)"
        )
    if steps < 1:
        raise ConfigError(f"try_remedies: steps must be >= 1, got {steps=}")
    start = time.perf_counter()
    with sandboxed():
        # Even the "before" loss is measured on a copy: a forward pass may draw from a generator the model owns.
        before = mean_loss(copy_run(model, None)[0], loss_fn, batches, seed)
        results: list[TrialResult] = []
        control_after = math.nan
        for name in ("as is", *names):
            clone, twin = copy_run(model, optimizer)
            note = ""
            scale: Callable[[int], float] | None = None
            if name == "lr*10":
                scale = lambda t: 10.0  # noqa: E731
            elif name == "lr/10":
                scale = lambda t: 0.1  # noqa: E731
            elif name == "warmup":
                scale = lambda t: (t + 1) / steps  # noqa: E731
            elif name == "adam":
                twin = torch.optim.Adam(clone.parameters(), lr=adam_lr)
            elif name == "escape":
                with torch.enable_grad():
                    note = _escape(clone, loss_fn, batches[0], seed)
            torch.manual_seed(seed)
            finite = _train(clone, twin, loss_fn, batches, steps=steps, lr_scale=scale)
            after = mean_loss(clone, loss_fn, batches, seed) if finite else math.inf
            # Diverged: non-finite, or blown far above where it started (float64 can hold 1e130).
            finite = finite and math.isfinite(after) and after <= 1e3 * max(abs(before), 1e-12)
            if name == "as is":
                control_after = after
            gain = control_after - after if finite else -math.inf
            results.append(
                TrialResult(
                    name, _DESCRIPTIONS[name], before, after if finite else math.inf, gain, not finite, note
                )
            )
    return RemedyTrial(results[0], tuple(results[1:]), steps, len(batches), time.perf_counter() - start)
