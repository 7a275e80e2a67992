"""Dead or saturated units, a collapsed (constant) predictor, and the gradient's profile through depth.

Measured in a probe on the probe batch (one forward pass, no backward): forward hooks on the activation
modules record which units are zero (ReLU family) or saturated (tanh/sigmoid family: |derivative| < 1e-3)
on every sample; the model's outputs give their spread across the batch; the best *constant* predictor's
loss on the same batch (no model evaluation; the natural constants: the log class frequencies, the targets'
mean, the model's own mean output) says whether the model does better than predicting one value for every
input. The hooks are removed before the probe returns, the pass runs without gradient and the caller
isolates the RNG and buffers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["UnitsProbe", "constant_predictor_loss", "depth_profile", "probe_units"]

_ZERO_AT_REST = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Threshold)
_SATURATING = (nn.Tanh, nn.Sigmoid, nn.Hardsigmoid, nn.Softsign)


@dataclass(frozen=True)
class UnitsProbe:
    """What :func:`probe_units` measured (NaN where not measurable)."""

    dead_share: float
    dead_layers: tuple[tuple[str, float], ...]
    output_spread: float
    constant_loss: float
    probe_loss: float


def _inactive(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """Per unit (the output's non-batch elements): True where the unit passes no gradient on any sample."""
    flat = out.detach().flatten(1) if out.dim() > 1 else out.detach().reshape(-1, 1)
    if isinstance(module, nn.Tanh | nn.Softsign):
        return (flat.abs() > 0.9995).all(0)
    if isinstance(module, nn.Sigmoid | nn.Hardsigmoid):
        return ((flat < 5e-4) | (flat > 1 - 5e-4)).all(0)
    if isinstance(module, nn.Hardtanh) and not isinstance(module, nn.ReLU6):
        return ((flat <= module.min_val) | (flat >= module.max_val)).all(0)
    if isinstance(module, nn.ReLU6):
        return ((flat <= 0) | (flat >= 6)).all(0)
    return (flat == 0).all(0)


def _candidates(outputs: torch.Tensor, targets: Any) -> list[torch.Tensor]:
    """Constant rows worth trying: the model's mean output, the targets' mean (regression), the log class
    frequencies (classification: the optimal constant logits of cross-entropy)."""
    rows = [outputs.detach().mean(0)]
    if isinstance(targets, torch.Tensor):
        if targets.is_floating_point() and targets.shape == outputs.shape:
            rows.append(targets.detach().to(outputs.dtype).mean(0))
        elif not targets.is_floating_point() and outputs.dim() == 2 and targets.dim() == 1:
            counts = torch.bincount(
                targets.detach().reshape(-1).long().clamp_min(0), minlength=outputs.shape[1]
            )
            frequency = counts[: outputs.shape[1]].to(outputs.dtype) / max(int(counts.sum()), 1)
            rows.append(frequency.clamp_min(1e-12).log())
    return rows


def constant_predictor_loss(
    loss_fn: Callable[[Any, Any], torch.Tensor], outputs: torch.Tensor, targets: Any
) -> float:
    """The lowest loss of a constant output (the same row for every sample) among the natural candidates.

    Exact for cross-entropy (the log class frequencies: ln C for C balanced classes) and the mean squared error
    (the targets' mean: their variance); for other losses the better of the model's mean output and those.

    Example:
        >>> import torch
        >>> y = torch.tensor([0.0, 2.0, 4.0]).unsqueeze(1)
        >>> round(constant_predictor_loss(torch.nn.functional.mse_loss, torch.zeros(3, 1), y), 4)
        2.6667
    """
    if outputs.dim() == 0 or outputs.shape[0] < 1:
        return math.nan
    best = math.inf
    with torch.no_grad():
        for row in _candidates(outputs, targets):
            try:
                value = float(loss_fn(row.expand_as(outputs), targets))
            except Exception:  # a loss that does not accept this candidate
                continue
            if math.isfinite(value):
                best = min(best, value)
    return best if math.isfinite(best) else math.nan


def probe_units(
    model: nn.Module, loss_fn: Callable[[Any, Any], torch.Tensor], inputs: Any, targets: Any
) -> UnitsProbe:
    """Dead/saturated units of hooked activation modules, output spread, constant-predictor and model loss."""
    records: list[tuple[str, torch.Tensor]] = []
    handles = []
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, _args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[0] > 1:
            records.append((names.get(module, type(module).__name__), _inactive(module, out)))

    for module in model.modules():
        if isinstance(module, _ZERO_AT_REST + _SATURATING):
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            outputs = model(inputs)
            probe_loss = float(loss_fn(outputs, targets)) if isinstance(outputs, torch.Tensor) else math.nan
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(outputs, torch.Tensor) or outputs.dim() == 0 or outputs.shape[0] < 2:
        return UnitsProbe(math.nan, (), math.nan, math.nan, probe_loss)
    layers: dict[str, list[torch.Tensor]] = {}
    for name, inactive in records:
        layers.setdefault(name, []).append(inactive)
    dead_layers = tuple(
        (name, float(torch.cat(parts).float().mean())) for name, parts in layers.items() if parts
    )
    total = sum(int(torch.cat(parts).numel()) for parts in layers.values())
    dead = sum(int(torch.cat(parts).sum()) for parts in layers.values())
    flat = outputs.detach().double().flatten(1)
    rms = float(flat.pow(2).mean().sqrt())
    spread = float(flat.std(0, unbiased=False).pow(2).mean().sqrt()) / max(rms, 1e-30)
    return UnitsProbe(
        dead / total if total else math.nan,
        dead_layers,
        spread,
        constant_predictor_loss(loss_fn, outputs, targets),
        probe_loss,
    )


def depth_profile(names: Sequence[str], params: Sequence[torch.Tensor]) -> tuple[tuple[str, float], ...]:
    """Per weight matrix/kernel (``dim ≥ 2``), in the model's order: ‖g‖/‖θ‖, the relative gradient."""
    out: list[tuple[str, float]] = []
    with torch.no_grad():
        for name, p in zip(names, params, strict=True):
            if p.dim() < 2 or p.grad is None or p.grad.is_sparse:
                continue
            weight = float(p.detach().norm())
            out.append((name, float(p.grad.norm()) / weight if weight > 0 else math.nan))
    return tuple(out)
