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
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from ravine.diagnose._cadence import ProbeCadence
from ravine.diagnose._classify import classify_plateau
from ravine.diagnose._config import MonitorConfig, check_config
from ravine.diagnose._decide import decide
from ravine.diagnose._history import History
from ravine.diagnose._inputs import (
    RecentBatches,
    StepCounter,
    check_loss,
    check_model,
    check_optimizer,
    check_probe_inputs,
    unwrap,
    unwrap_model,
)
from ravine.diagnose._isolation import ProbeGenerators, isolated
from ravine.diagnose._live import Live, VerdictCallback
from ravine.diagnose._logs import Capped
from ravine.diagnose._probing import build_probe, split_batch
from ravine.diagnose._records import (
    CriticalPointRecord,
    ProbeRecord,
    Regime,
    SharpnessRecord,
    Verdict,
    VerdictKind,
)
from ravine.diagnose._regimes import RegimeTracker
from ravine.diagnose._rows import Row, RowBuffer, as_tensor
from ravine.diagnose._signals import layer_grad_norms
from ravine.diagnose._updates import UpdateTracker
from ravine.errors import ConfigError, MonitorWarning

__all__ = ["Monitor"]

Placement = Literal["auto", "before", "after"]
LossFn = Callable[[Any, Any], torch.Tensor]

RECENT_BATCHES = 8
"""Most batches kept in ``monitor.recent_batches``."""

HEALTHY_WINDOWS = 32
"""With ``probe_max_every=None``, the probes back off up to this many windows apart while the run is healthy."""


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
        on_verdict: VerdictCallback | None = None,
        loggers: Sequence[Any] = (),
    ) -> None:
        if placement not in ("auto", "before", "after"):
            raise ConfigError(f"Monitor: placement must be 'auto', 'before' or 'after', got {placement=}")
        if loss_fn is not None and not callable(loss_fn):
            raise ConfigError(
                f"Monitor: loss_fn must be callable as loss_fn(outputs, targets), got {loss_fn!r}"
            )
        if not isinstance(strict, bool):
            raise ConfigError(f"Monitor: strict must be True or False, got {strict=!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"Monitor: seed must be an integer >= 0, got {seed=!r}")
        self.config = check_config(config)
        optimizer = unwrap(optimizer)
        model = unwrap_model(model)
        named = check_model(model)
        # Parameters ordered by (device, dtype) group, so that flat buffers line up with them.
        keys: dict[tuple[torch.device, torch.dtype], int] = {}
        for _, p in named:
            keys.setdefault((p.device, p.dtype), len(keys))
        named.sort(key=lambda item: keys[(item[1].device, item[1].dtype)])
        check_optimizer(optimizer, [p for _, p in named])
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.strict = strict
        self.seed = seed
        self.placement: Placement = placement
        self.names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self.frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
        cfg = self.config
        th = cfg.thresholds
        recent = max(cfg.history_window, th.burst_memory + 2 * th.window + 256 + cfg.judge_every)
        self.history = History(list(self.names), recent=recent, layer_window=cfg.layer_window)
        self.probes: Capped[ProbeRecord] = Capped(head=16, tail=cfg.max_records)
        self.critical_points: Capped[CriticalPointRecord] = Capped(head=4, tail=cfg.max_records)
        self.sharpness: list[SharpnessRecord] = []
        self.regimes = RegimeTracker(window=th.window)
        self.recent_batches = RecentBatches(RECENT_BATCHES, cfg.recent_batch_bytes)
        """The newest batches given to :meth:`step` (at most 8, within ``MonitorConfig.recent_batch_bytes``;
        for :func:`~ravine.diagnose.try_remedies` and :func:`~ravine.diagnose.lr_range_test`)."""
        self._probe_key: object = None
        self.errors: Capped[str] = Capped(head=50, tail=50)
        self.notes: Capped[str] = Capped(head=50, tail=200)
        self.refused_steps: Capped[int] = Capped(head=16, tail=cfg.max_records)
        """Steps at which the optimizer was called but did not step (it raised, e.g. on a NaN gradient)."""
        numel = sum(p.numel() for p in self.params)
        every = cfg.update_every or (1 if numel <= cfg.small_model else 10)
        self._tracker = UpdateTracker(
            self.params,
            every=every,
            weight_every=cfg.weight_norm_every,
            distance_every=cfg.distance_every,
            extra=cfg.probe_every,
            sketch=cfg.sketch_size,
            seed=seed,
        )
        self._generators = ProbeGenerators(seed + 1)
        self.cadence = ProbeCadence(
            cfg.probe_every,
            max_every=cfg.probe_max_every or th.window,
            budget=cfg.probe_budget,
            healthy_max_every=cfg.probe_max_every or HEALTHY_WINDOWS * th.window,
        )
        """When the probes run (adaptive: see :mod:`ravine.diagnose._cadence`)."""
        self._probe_kind = VerdictKind.HEALTHY  # the regime at the last probe (presumed healthy at first)
        self._warned: set[str] = set()
        self._first_call = True
        self._closed = False
        self._checked_probe_inputs = False
        self._count = 0
        self._verdict: Verdict | None = None
        self._rows = RowBuffer(self.history)
        self._live = Live(self, on_verdict, loggers)
        self._last_batch: Any = None
        self._last_closure: Callable[[], torch.Tensor] | None = None
        self._counter = StepCounter(None, self.params)
        if optimizer is not None:
            try:
                self._counter = StepCounter(optimizer, self.params)
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
            closure: Alternatively, a function that recomputes and returns the loss on this step's data
                (probes only). It must not call ``backward`` or ``zero_grad`` (a torch.optim-style closure is
                refused on the first call, with the gradients left as they were).

        Raises:
            ConfigError: On the first call, for a loss that is not a scalar, a batch that is not an
                ``(inputs, targets)`` pair, a ``loss_fn`` that does not return a scalar tensor, or a closure
                that calls ``backward``. The monitor's own failures are never raised (unless ``strict``).
        """
        if self._closed:
            self._warn_once("closed", "monitor.step() after close(): this step is not recorded")
            return
        check_loss(loss)
        if not self._checked_probe_inputs and (batch is not None or closure is not None):
            self._check_probe_inputs(batch, closure)
        try:
            self._step(loss, batch, closure)
        except Exception as error:
            if self.strict:
                raise
            self._fail("step", error)

    def add_loss(self, loss: torch.Tensor | float) -> None:
        """Set the loss of the most recent step (for integrations that see the loss after the gradients)."""
        check_loss(loss)
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
            self._judge(self.history.steps[-1] if len(self.history) else -1)
        except Exception as error:
            if self.strict:
                raise
            self._fail("verdict", error)
        if self._verdict is None:
            return Verdict(VerdictKind.HEALTHY, "no steps recorded yet", -1)
        return self._verdict

    def flush(self) -> None:
        """Move the pending rows to :attr:`history` and the loggers now (one host synchronisation; the
        monitor does this by itself every ``flush_every`` steps and at each verdict)."""
        try:
            self._flush(keep_last=True)
        except Exception as error:
            if self.strict:
                raise
            self._fail("flush", error)

    def close(self) -> None:
        """Remove the optimizer hooks, flush, and close the loggers; the monitor's data stays readable."""
        if self._closed:
            return
        self._counter.remove()
        self._flush()
        self._closed = True
        self._live.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    @property
    def timeline(self) -> list[Regime]:
        """The regimes so far (kind, onset, last judged step), oldest first; the last one is current."""
        return self.regimes.timeline

    @property
    def last_verdict(self) -> Verdict | None:
        """The most recent verdict, without judging again."""
        return self._verdict

    # ------------------------------------------------------------------ recording
    def _fail(self, where: str, error: BaseException | str) -> None:
        text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
        message = f"step {self._count}: {where}: {text}"
        self.errors.append(message)
        self._warn_once("error", f"{message} (further errors in monitor.errors)")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"ravine Monitor: {message}", MonitorWarning, stacklevel=4)

    def _check_probe_inputs(self, batch: Any, closure: Callable[[], torch.Tensor] | None) -> None:
        """On the first call with probe inputs (see :func:`~ravine.diagnose._inputs.check_probe_inputs`)."""
        self._checked_probe_inputs = True
        try:
            with isolated(self.model, self._generators):
                check_probe_inputs(self, batch, closure)
        except ConfigError:
            raise  # the inputs are not what the monitor was promised: say so now, where they are given
        except (
            Exception
        ) as error:  # the user's model or loss failed: the probes will too; never stop training
            if self.strict:
                raise
            self._fail("probe inputs", error)

    def _step(
        self, loss: torch.Tensor | float | None, batch: Any, closure: Callable[[], torch.Tensor] | None
    ) -> None:
        attempts, stepped, changed = self._counter.since_last_call()
        if self.optimizer is not None:
            if self._first_call and self.placement == "auto":
                self.placement = "after" if stepped > 0 else "before"
            hooked = bool(self._counter.handles)
            if not self._first_call and hooked and attempts == 0 and self._rows.reopen_last():
                if not changed:  # gradient accumulation: one more micro-batch of the same step
                    self._rows.merge_micro_batch(layer_grad_norms(self.params)[0], loss)
                    return
                self._warn_once(
                    "other optimizer",
                    "the parameters changed but the optimizer given to the Monitor did not step: is another "
                    "optimizer stepping the model? Each call is recorded as a step; pass that optimizer",
                )
            if attempts > stepped:
                # The optimizer was called but refused (it raised): that row stays its own step.
                refused = self._count if self.placement == "after" else self._count - 1
                self.refused_steps.append(refused)
                self.notes.append(f"step {refused}: the optimizer was called but did not step (it raised)")
        self._first_call = False
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
        if batch is not None:
            self.recent_batches.append(batch)
        cfg = self.config
        self.cadence.tick()
        if count > 0 and self.cadence.due(count) and (closure is not None or batch is not None):
            self._probe(count, batch, closure)
        if len(self._rows.pending) > cfg.flush_every:
            self._flush(keep_last=True)
        if count > 0 and count % cfg.judge_every == 0:
            self._flush()
            self._judge(count)

    def _flush(self, *, keep_last: bool = False) -> None:
        """Move pending rows to the history (one host transfer); ``keep_last`` leaves the newest row pending,
        since micro-batches may still be merged into it."""
        before = len(self.history)
        self._rows.flush(placement=self.placement, keep_last=keep_last)
        self._live.rows_added(before)

    # ------------------------------------------------------------------ judging and probing
    def _judge(self, step: int) -> None:
        previous = self._verdict
        with isolated(self.model, self._generators):
            self._verdict = decide(self, step)
        self._live.judged(previous, self._verdict)

    def _classify(self, step: int) -> bool:
        """Classify the current point with ravine.curvature; False when there is no batch or loss_fn."""
        if self._last_batch is None or self.loss_fn is None:
            return False
        inputs, targets = split_batch(self._last_batch)
        take = self.config.probe_batch
        with isolated(self.model, self._generators):
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

    def _probe(
        self, step: int, batch: Any, closure: Callable[[], torch.Tensor] | None, *, asked: bool = False
    ) -> bool:
        """Probe at ``step`` (``asked``: the rules want the evidence now); False without probe inputs."""
        if closure is None and (self.loss_fn is None or batch is None):
            return False
        start = time.perf_counter()
        try:
            with isolated(self.model, self._generators):
                self.probes.append(build_probe(self, step, batch, closure))
        finally:
            kind = self._verdict.kind if self._verdict is not None else VerdictKind.HEALTHY
            self.cadence.done(
                step,
                seconds=time.perf_counter() - start,
                steady=kind is self._probe_kind and not asked,
                healthy=kind is VerdictKind.HEALTHY,
            )
            self._probe_kind = kind
        return True

    def _probe_asked(self, step: int) -> bool:
        """A probe the rules asked for at a judgement (none in the window): on this step's batch or closure."""
        if not self.config.probe_every:
            return False
        return self._probe(step, self._last_batch, self._last_closure, asked=True)
