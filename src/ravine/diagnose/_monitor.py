"""The Monitor: two lines in any PyTorch loop, a verdict with evidence at any time.

Example:
    >>> import torch
    >>> from ravine.diagnose import Monitor
    >>> model = torch.nn.Linear(3, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> monitor = Monitor(model, optimizer)
    >>> x, y = torch.randn(32, 3), torch.randn(32, 1)
    >>> for _ in range(5):
    ...     optimizer.zero_grad()
    ...     loss = torch.nn.functional.mse_loss(model(x), y)
    ...     loss.backward()
    ...     monitor.step(loss)          # after backward, before clipping and optimizer.step()
    ...     optimizer.step()
    >>> monitor.verdict().kind.value
    'healthy'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from ravine.diagnose._classify import classify_plateau
from ravine.diagnose._config import MonitorConfig
from ravine.diagnose._history import History
from ravine.diagnose._probes import isolated, probe_curvature_noise
from ravine.diagnose._records import CriticalPointRecord, ProbeRecord, Verdict, VerdictKind
from ravine.diagnose._rows import Row, RowBuffer, as_tensor
from ravine.diagnose._signals import UpdateTracker, effective_lr_stats, layer_grad_norms
from ravine.diagnose._verdict import judge
from ravine.errors import ConfigError, MonitorWarning

__all__ = ["Monitor"]

Placement = Literal["auto", "before", "after"]
LossFn = Callable[[Any, Any], torch.Tensor]


def _unwrap(optimizer: Any) -> Any:
    """The torch optimizer inside a framework's wrapper (accelerate's ``AcceleratedOptimizer``, Lightning's
    ``LightningOptimizer``), whose own step hooks would never fire; anything else as it is."""
    seen = 0
    while seen < 4 and isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
        seen += 1
    return optimizer


class Monitor:
    """Watches a training loop and gives a verdict: ravine, LR too small, saddle, minimum, noise, ...

    Call :meth:`step` once per optimizer step, **after** ``loss.backward()`` and **before** gradient clipping
    and ``optimizer.step()``: the gradient norm is then the unclipped one (clipping happens after the monitor
    read it). Calling it after ``optimizer.step()`` works too (the gradients are then whatever clipping left);
    the placement is detected on the first call from whether the optimizer has stepped since the monitor was
    made, or can be given as ``placement=``. With gradient accumulation, call it once per optimizer step, or
    on every micro-batch: calls without an optimizer step in between are merged (losses averaged, the last
    accumulated gradient kept) when the optimizer is given.

    Per step it reads the gradients once (their norms); the update Δθ is measured on sampled pairs of steps
    (``MonitorConfig.update_every``), the curvature and noise probes every ``probe_every`` steps, and the
    Hessian (via :mod:`ravine.curvature`) only on a small-gradient plateau.

    The monitor never changes the trajectory: it reads ``p.grad`` and the parameters, keeps copies in its own
    buffers, runs probes by double backward with the global RNG and the module buffers saved and restored, and
    draws no random numbers from the global generator. It never raises into the loop unless ``strict=True``;
    its failures are collected in :attr:`errors` and warned about once (:class:`MonitorWarning`); warnings
    raised inside its probes (e.g. about BatchNorm evaluated in eval mode) are kept in :attr:`notes`.

    Args:
        model: The module being trained; its parameters with ``requires_grad`` are watched (frozen ones are
            listed in :attr:`frozen`).
        optimizer: Any ``torch.optim.Optimizer`` (ravine's or not). Gives the learning rate, the optimizer-step
            count and, for adaptive ones whose state is readable, the per-element effective learning rate.
        loss_fn: ``loss_fn(model(inputs), targets)`` for the probes, used with ``monitor.step(loss,
            batch=(inputs, targets))``.
        config: Cadences and thresholds.
        strict: Raise the monitor's own errors instead of collecting them.
        seed: Seed of the Hessian classification's random start vectors.
        placement: "auto", "before" or "after" ``optimizer.step()``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        loss_fn: LossFn | None = None,
        config: MonitorConfig | None = None,
        strict: bool = False,
        seed: int = 0,
        placement: Placement = "auto",
    ) -> None:
        if placement not in ("auto", "before", "after"):
            raise ConfigError(f"Monitor: placement must be 'auto', 'before' or 'after', got {placement=}")
        optimizer = _unwrap(optimizer)
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ConfigError("Monitor: the model has no trainable parameters (all have requires_grad=False)")
        # Parameters ordered by (device, dtype) group, so that flat buffers line up with them.
        keys: dict[tuple[torch.device, torch.dtype], int] = {}
        for _, p in named:
            keys.setdefault((p.device, p.dtype), len(keys))
        named.sort(key=lambda item: keys[(item[1].device, item[1].dtype)])
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.config = config or MonitorConfig()
        self.strict = strict
        self.seed = seed
        self.placement: Placement = placement
        self.names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self.frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
        self.history = History(list(self.names))
        self.probes: list[ProbeRecord] = []
        self.critical_points: list[CriticalPointRecord] = []
        self.timeline: list[tuple[int, VerdictKind]] = []
        self.errors: list[str] = []
        self.notes: list[str] = []
        numel = sum(p.numel() for p in self.params)
        every = self.config.update_every or (1 if numel <= self.config.small_model else 10)
        self._tracker = UpdateTracker(
            self.params,
            every=every,
            weight_every=self.config.weight_norm_every,
            distance_every=self.config.distance_every,
            extra=self.config.probe_every,
        )
        self._warned = False
        self._optimizer_steps = 0
        self._steps_at_last_call = -1
        self._count = 0
        self._verdict: Verdict | None = None
        self._rows = RowBuffer(self.history)
        self._last_batch: Any = None
        self._last_closure: Callable[[], torch.Tensor] | None = None
        self._hook: Any = None
        if optimizer is not None:
            try:
                self._hook = optimizer.register_step_post_hook(self._on_optimizer_step)
            except Exception as error:  # an optimizer look-alike without torch's hooks: judge without them
                self._fail("optimizer hook", error)

    # ------------------------------------------------------------------ public API
    def step(
        self,
        loss: torch.Tensor | float | None = None,
        *,
        batch: Any = None,
        closure: Callable[[], torch.Tensor] | None = None,
    ) -> None:
        """Record one optimizer step: call after ``loss.backward()``.

        Args:
            loss: The step's loss (a tensor is kept on its device until the next flush; None if not known).
            batch: ``(inputs, targets)`` of this step, for the probes (needs ``loss_fn``).
            closure: Alternatively, a function that recomputes the loss on this step's data (probes only).
        """
        try:
            self._step(loss, batch, closure)
        except Exception as error:
            if self.strict:
                raise
            self._fail("step", error)

    def add_loss(self, loss: torch.Tensor | float) -> None:
        """Set the loss of the most recent step (for integrations that see the loss after the gradients)."""
        try:
            if self._rows.reopen_last():
                self._rows.pending[-1].loss = as_tensor(loss)
        except Exception as error:
            if self.strict:
                raise
            self._fail("add_loss", error)

    def verdict(self) -> Verdict:
        """Judge the history now (running a Hessian classification if a small-gradient plateau needs one)."""
        try:
            self._flush()
            self._judge(self.history.steps[-1] if self.history.steps else -1)
        except Exception as error:
            if self.strict:
                raise
            self._fail("verdict", error)
        if self._verdict is None:
            return Verdict(VerdictKind.HEALTHY, "no steps recorded yet", -1)
        return self._verdict

    def close(self) -> None:
        """Remove the optimizer hook and flush; the monitor's data stays readable."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._flush()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    @property
    def last_verdict(self) -> Verdict | None:
        """The most recent verdict, without judging again."""
        return self._verdict

    # ------------------------------------------------------------------ recording
    def _fail(self, where: str, error: BaseException | str) -> None:
        text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
        message = f"step {self._count}: {where}: {text}"
        if len(self.errors) < 100:
            self.errors.append(message)
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"ravine Monitor: {message} (further errors in monitor.errors)", MonitorWarning, stacklevel=3
            )

    def _on_optimizer_step(self, *args: object, **kwargs: object) -> None:
        self._optimizer_steps += 1

    def _step(
        self, loss: torch.Tensor | float | None, batch: Any, closure: Callable[[], torch.Tensor] | None
    ) -> None:
        if self.optimizer is not None:
            if self._steps_at_last_call < 0 and self.placement == "auto":
                self.placement = "after" if self._optimizer_steps > 0 else "before"
            if self._steps_at_last_call == self._optimizer_steps and self._rows.reopen_last():
                self._rows.merge_micro_batch(layer_grad_norms(self.params)[0], loss)
                return
            self._steps_at_last_call = self._optimizer_steps
        layer_grad, missing = layer_grad_norms(self.params)
        if missing == len(self.params):
            self._fail("gradients", "no parameter has a gradient; call monitor.step after backward")
        count = self._count
        lr = math.nan
        if self.optimizer is not None and self.optimizer.param_groups:
            lr = float(self.optimizer.param_groups[0].get("lr", math.nan))
        update = self._tracker.record(count)
        self._rows.pending.append(Row(count, as_tensor(loss), layer_grad, lr, update))
        self._count += 1
        self._last_batch = batch
        self._last_closure = closure
        cfg = self.config
        if (
            cfg.probe_every
            and count > 0
            and count % cfg.probe_every == 0
            and (closure is not None or batch is not None)
        ):
            self._probe(count, batch, closure)
        if len(self._rows.pending) > cfg.flush_every:
            self._flush(keep_last=True)
        if count > 0 and count % cfg.judge_every == 0:
            self._flush()
            self._judge(count)

    def _flush(self, *, keep_last: bool = False) -> None:
        """Move pending rows to the history (one host transfer); ``keep_last`` leaves the newest row pending,
        since micro-batches may still be merged into it."""
        self._rows.flush(placement=self.placement, keep_last=keep_last)

    # ------------------------------------------------------------------ judging and probing
    def _judge(self, step: int) -> None:
        hist = self.history
        th = self.config.thresholds
        verdict = judge(
            hist.columns, hist.steps, probes=self.probes, critical_points=self.critical_points, thresholds=th
        )
        # A small-gradient plateau nobody has classified yet: ask the Hessian, then judge again.
        if verdict.kind is VerdictKind.CRITICAL_POINT and self.config.classify and self._classify(step):
            verdict = judge(
                hist.columns,
                hist.steps,
                probes=self.probes,
                critical_points=self.critical_points,
                thresholds=th,
            )
        previous = self._verdict
        onset = previous.onset if previous is not None and previous.kind is verdict.kind else verdict.step
        self._verdict = Verdict(
            verdict.kind, verdict.summary, verdict.step, verdict.evidence, verdict.remedies, onset
        )
        self.timeline.append((verdict.step, verdict.kind))

    def _classify(self, step: int) -> bool:
        """Classify the current point with ravine.curvature; False when there is no batch or loss_fn."""
        if self._last_batch is None or self.loss_fn is None:
            return False
        inputs, targets = _split_batch(self._last_batch)
        take = self.config.probe_batch
        with isolated(self.model):
            record, caught = classify_plateau(
                self.model,
                self.loss_fn,
                (inputs[:take], targets[:take]),
                self.names,
                step=step,
                max_dense_params=self.config.max_dense_params,
                lanczos_hvps=self.config.lanczos_hvps,
                saddle_tol=self.config.saddle_tol,
                seed=self.seed,
            )
        self.notes.extend(f"step {step}: classification: {message}" for message in caught[:10])
        self.critical_points.append(record)
        return True

    def _probe(self, step: int, batch: Any, closure: Callable[[], torch.Tensor] | None) -> None:
        halves: list[Callable[[], torch.Tensor]]
        sizes: list[int]
        train_size = 1
        if closure is not None:
            halves, sizes = [closure], [1]
        else:
            if self.loss_fn is None:
                return
            inputs, targets = _split_batch(batch)
            train_size = len(inputs)
            take = min(train_size, self.config.probe_batch)
            loss_fn = self.loss_fn
            model = self.model
            if take >= 4:
                half = take // 2
                xa, ya, xb, yb = inputs[:half], targets[:half], inputs[half:take], targets[half:take]
                halves = [lambda: loss_fn(model(xa), ya), lambda: loss_fn(model(xb), yb)]
                sizes = [half, take - half]
            else:
                x1, y1 = inputs[:take], targets[:take]
                halves, sizes = [lambda: loss_fn(model(x1), y1)], [take]
        direction = self._tracker.update_direction(step)
        with isolated(self.model):
            result = probe_curvature_noise(
                self.params, direction, halves, train_batch_size=train_size, half_sizes=sizes
            )
        lr = math.nan
        if self.optimizer is not None and self.optimizer.param_groups:
            lr = float(self.optimizer.param_groups[0].get("lr", math.nan))
        eff_max, eff_median = effective_lr_stats(self.optimizer, self.params)
        self.probes.append(
            ProbeRecord(
                step=step,
                curvature=result.curvature,
                overshoot=result.overshoot,
                lr=lr,
                stability_limit=2.0 / lr if lr > 0 and math.isfinite(lr) else math.nan,
                effective_lr_max=eff_max,
                effective_lr_median=eff_median,
                snr=result.snr,
                noise_scale=result.noise_scale,
            )
        )


def _split_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ConfigError(
        f"Monitor: batch must be an (inputs, targets) pair for loss_fn(model(inputs), targets), got "
        f"{type(batch).__name__}; pass closure= for other layouts"
    )
