"""What a monitor's probes compute: one :class:`ProbeRecord` per probe, and the on-demand sharpness test.

The monitor decides *when* (cadence, budget); these functions decide *what*: the curvature along the last
update and the half-batch gradient noise (:mod:`ravine.diagnose._probes`), the gradient of the objective the
optimizer actually minimises (with its coupled weight decay), dead units and the constant predictor's loss
(:mod:`ravine.diagnose._units`), the relative gradient through depth, and — only when the rules ask for it —
the (preconditioned) sharpness against the optimizer's stability limit (:mod:`ravine.diagnose._sharpness`).
Every pass runs under :func:`~ravine.diagnose._isolation.isolated` (nested in the monitor's own block: private
generators for dropout, module buffers restored).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ravine.diagnose._isolation import isolated
from ravine.diagnose._probes import probe_curvature_noise
from ravine.diagnose._records import ProbeRecord
from ravine.diagnose._sharpness import measure_sharpness
from ravine.diagnose._signals import effective_lr_stats
from ravine.diagnose._terms import optimizer_terms
from ravine.diagnose._units import depth_profile, probe_units

__all__ = ["batch_key", "build_probe", "sharpen", "split_batch"]

MAX_SHARPNESS_RECORDS = 200


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` of a batch given to the monitor."""
    from ravine.errors import ConfigError

    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ConfigError(
        f"Monitor: batch must be an (inputs, targets) pair for loss_fn(model(inputs), targets), got "
        f"{type(batch).__name__}; pass closure= for other layouts"
    )


def batch_key(inputs: Any) -> tuple[tuple[int, ...], float]:
    """A cheap fingerprint of a batch's inputs (shape and the sum of its first 256 values)."""
    if not isinstance(inputs, torch.Tensor):
        return ((id(inputs),), 0.0)
    with torch.no_grad():
        head = inputs.detach().reshape(-1)[:256]
        return (tuple(inputs.shape), float(head.double().sum()) if head.numel() else 0.0)


def build_probe(
    monitor: Any, step: int, batch: Any, closure: Callable[[], torch.Tensor] | None
) -> ProbeRecord:
    """The probe record at ``step`` for a :class:`~ravine.diagnose.Monitor` (``batch`` or ``closure``)."""
    terms = optimizer_terms(monitor.optimizer)
    halves: list[Callable[[], torch.Tensor]]
    sizes: list[int]
    train_size = 1
    note = ""
    inputs = targets = None
    if closure is not None:
        halves, sizes = [closure], [1]
        note = "closure= gives one loss: pass batch=(inputs, targets) and loss_fn for a noise probe"
    else:
        inputs, targets = split_batch(batch)
        train_size = len(inputs)
        take = min(train_size, monitor.config.probe_batch)
        loss_fn, model = monitor.loss_fn, monitor.model
        if take >= 4:
            half = take // 2
            xa, ya, xb, yb = inputs[:half], targets[:half], inputs[half:take], targets[half:take]
            halves = [lambda: loss_fn(model(xa), ya), lambda: loss_fn(model(xb), yb)]
            sizes = [half, take - half]
        else:
            x1, y1 = inputs[:take], targets[:take]
            halves, sizes = [lambda: loss_fn(model(x1), y1)], [take]
            note = (
                f"the batch has {train_size} sample(s): the noise probe compares two halves and needs at "
                "least 4; the per-sample gradient noise is not measured"
            )
        inputs, targets = inputs[:take], targets[:take]
    direction = monitor._tracker.update_direction(step)
    units = None
    with isolated(monitor.model):
        result = probe_curvature_noise(
            monitor.params,
            direction,
            halves,
            train_batch_size=train_size,
            half_sizes=sizes,
            coupled_decay=terms.coupled_decay,
        )
        if inputs is not None and monitor.loss_fn is not None:
            units = probe_units(monitor.model, monitor.loss_fn, inputs, targets)
    key = batch_key(inputs) if inputs is not None else ((), math.nan)
    # Full batch: every probe so far saw the same inputs (unknown at the first probe).
    previous = monitor.probes[-1] if monitor.probes else None
    if monitor._probe_key is None:
        monitor._probe_key = key
    full_batch = (
        inputs is not None
        and previous is not None
        and (previous.full_batch or len(monitor.probes) == 1)
        and key == monitor._probe_key
    )
    lr = terms.lr
    eff_max, eff_median = effective_lr_stats(monitor.optimizer, monitor.params)
    return ProbeRecord(
        step=step,
        curvature=result.curvature,
        overshoot=result.overshoot,
        lr=lr,
        stability_limit=2.0 / lr if lr > 0 and math.isfinite(lr) else math.nan,
        effective_lr_max=eff_max,
        effective_lr_median=eff_median,
        snr=result.snr,
        noise_scale=result.noise_scale,
        trace_sigma=result.trace_sigma,
        signal=result.signal,
        batch_size=train_size,
        full_batch=full_batch,
        noise_note=note,
        objective_grad_norm=result.objective_grad_norm,
        dead_share=units.dead_share if units else math.nan,
        dead_layers=units.dead_layers if units else (),
        output_spread=units.output_spread if units else math.nan,
        constant_loss=units.constant_loss if units else math.nan,
        probe_loss=units.probe_loss if units else math.nan,
        depth_profile=depth_profile(monitor.names, monitor.params),
    )


def sharpen(monitor: Any, step: int) -> bool:
    """Measure the (preconditioned) sharpness now and keep it on ``monitor.sharpness``; False without data."""
    batch = monitor._last_batch
    if batch is None or monitor.loss_fn is None or monitor.optimizer is None:
        return False
    inputs, targets = split_batch(batch)
    take = monitor.config.probe_batch
    with isolated(monitor.model):
        record, caught = measure_sharpness(
            monitor.model,
            monitor.loss_fn,
            (inputs[:take], targets[:take]),
            names=monitor.names,
            params=monitor.params,
            optimizer=monitor.optimizer,
            terms=optimizer_terms(monitor.optimizer),
            step=step,
            max_hvps=monitor.config.lanczos_hvps,
            seed=monitor.seed,
        )
    monitor.notes.extend(f"step {step}: sharpness: {message}" for message in caught[:3])
    monitor.sharpness.append(record)
    del monitor.sharpness[:-MAX_SHARPNESS_RECORDS]
    return True
