r"""Many optimizer configurations on one surface, advanced together in one vectorized loop.

Every configuration is a point θ ∈ ℝ² moved by θ ← θ − η_t·d_t, d_t from a :mod:`ravine.optim` transform
chain. Configurations whose chains are equal (same parts, same hyper-parameters) form one group and share
one (n_group, 2) parameter tensor, so a step costs the same handful of tensor operations whether a group
holds 1 or 1,000 configurations. The learning rates are a precomputed (steps, n) table (each config's
schedule), applied as a per-row (n, 1) tensor.

The hot loop is kept minimal: one closed-form gradient for *all* configurations, written straight into a
preallocated chunk buffer; per group one ``transform.update`` and one ``addcmul`` writing θ_{t+1} into the
next row of the chunk buffer, or, for the fused group of GD / heavy ball / Adagrad / RMSProp, nine NumPy
operations on the same memory (:mod:`ravine.surfaces._fused`). Loss, gradient norm and the finiteness
check are computed once per chunk, vectorized over the chunk's steps, and only every k-th step is kept.

Transforms are applied to the (n, 2) tensor as a single parameter, so only *element-wise* transforms
(momentum, every σ kind, weight decay) keep the configurations independent; a transform that reduces over
the parameter (e.g. clipping by global norm) would couple the rows of a group.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ravine.errors import ConfigError, DataError
from ravine.optim import Identity, Schedule, Transform
from ravine.surfaces._base import Surface, as_surface
from ravine.surfaces._fused import MixedRule
from ravine.surfaces._setup import (
    Group,
    LearningRates,
    check_finite,
    group_configs,
    positive,
    recorded_steps,
    sigma_schedule,
    start_points,
    take_rows,
)

__all__ = ["LabConfig", "LabRun", "run_lab"]


@dataclass(frozen=True)
class LabConfig:
    """One optimizer configuration: a transform chain, a learning rate (constant or schedule), a start.

    Attributes:
        label: Name shown in tables and legends (unique within a run).
        transform: A :mod:`ravine.optim` transform or chain; ``Identity()`` is plain gradient descent.
        lr: η, a positive float, or a :class:`ravine.optim.Schedule` giving η_t (t = updates taken).
        start: Start point (x, y); ``None`` takes the run's start (by default the surface's).
    """

    label: str
    transform: Transform = field(default_factory=Identity)
    lr: float | Schedule = 1e-2
    start: tuple[float, float] | None = None


@dataclass(frozen=True)
class LabRun:
    """What a run recorded; every tensor has configurations along axis 1 in the order given.

    Attributes:
        surface: Name of the surface.
        labels: Configuration labels.
        num_steps: Updates taken.
        steps: int64 (R,): the step t of each recorded row (θ_t before update t+1; the last row is t = T).
        loss: (R, n) loss at θ_t.
        grad_norm: (R, n) ‖∇L(θ_t)‖.
        theta_steps: int64 (P,): steps of the recorded trajectory rows.
        theta: (P, n, 2) the trajectories.
        sigma_steps: int64 (S,): updates t (0-based) whose σ and η/σ were recorded.
        sigma: (S, n, 2) σ_t per axis used by update t+1 (ones when the chain divides by nothing).
        effective_lr: (S, n, 2) η_t/σ_t per axis.
        final_theta: (n, 2) θ_T.
        final_loss: (n,) L(θ_T).
        seconds: Wall time of the loop.
    """

    surface: str
    labels: tuple[str, ...]
    num_steps: int
    steps: torch.Tensor
    loss: torch.Tensor
    grad_norm: torch.Tensor
    theta_steps: torch.Tensor
    theta: torch.Tensor
    sigma_steps: torch.Tensor
    sigma: torch.Tensor
    effective_lr: torch.Tensor
    final_theta: torch.Tensor
    final_loss: torch.Tensor
    seconds: float

    def index(self, label: str) -> int:
        """Column of the configuration ``label``."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise ConfigError(
                f"no configuration {label!r} in this run; labels: {list(self.labels)}"
            ) from None


def run_lab(
    surface: Surface | str | Callable[[torch.Tensor], torch.Tensor],
    configs: Sequence[LabConfig],
    *,
    steps: int,
    start: Sequence[float] | torch.Tensor | None = None,
    record_every: int = 1,
    theta_every: int | None = None,
    sigma_every: int | None = None,
    sigma_steps: Sequence[int] | None = None,
    dtype: torch.dtype = torch.float64,
    chunk: int = 2048,
    on_nonfinite: str = "raise",
    progress: Callable[[int, int], None] | None = None,
    fuse: bool = True,
) -> LabRun:
    """Run every configuration for ``steps`` updates on ``surface``, all at once.

    Args:
        surface: A :class:`Surface`, a built-in name, or a callable ``f(theta (..., 2)) -> (...)``.
        configs: The configurations (labels must be unique).
        steps: Number of updates T.
        start: Start point (2,) or one per config (n, 2); default: the surface's start.
        record_every: Keep loss and ‖g‖ at every k-th step (and always at T).
        theta_every: Keep the trajectory every k-th step (default: ``record_every``).
        sigma_every: Keep σ and η/σ every k-th update (default: ``record_every``). σ costs a few tensor
            operations per recorded update, so a sparse or log-spaced choice keeps long runs fast.
        sigma_steps: Instead of ``sigma_every``: the updates t (0-based, < steps) whose σ to keep, e.g.
            log-spaced for log-x plots.
        dtype: float64 (default; the lecture's 1e-100 losses need it) or float32.
        chunk: Steps per chunk buffer (memory ≈ chunk·n·48 bytes).
        on_nonfinite: ``"raise"`` a :class:`NonFiniteError` naming config and step, or ``"keep"`` going.
        progress: Called as ``progress(steps_done, steps)`` after each chunk.
        fuse: advance the groups of GD, heavy ball (no dampening, no Nesterov), Adagrad and RMSProp (not
            centered) with one update whose coefficients differ per configuration
            (:mod:`ravine.surfaces._fused`), so four rules cost about what one does; ``False``: one update
            per group by the rules' own transforms. The results agree to float rounding (an ulp or so per
            step), so they differ visibly only where the dynamics are chaotic.

    Returns:
        A :class:`LabRun`.

    Example:
        >>> from ravine.optim import AdagradMean
        >>> run = run_lab("ravine", [LabConfig("gd", lr=1e-2), LabConfig("adagrad", AdagradMean(), 0.2)],
        ...               steps=1000, record_every=100)
        >>> run.loss.shape, run.theta.shape
        (torch.Size([11, 2]), torch.Size([11, 2, 2]))
    """
    surf = as_surface(surface)
    labels = _check_configs(configs)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"run_lab: steps must be an integer >= 0, got {steps!r}")
    if dtype not in (torch.float64, torch.float32):
        raise ConfigError(f"run_lab: dtype must be torch.float64 or torch.float32, got {dtype}")
    if on_nonfinite not in ("raise", "keep"):
        raise ConfigError(f"run_lab: on_nonfinite must be 'raise' or 'keep', got {on_nonfinite!r}")
    every = positive("record_every", record_every)
    th_every = positive("theta_every", every if theta_every is None else theta_every)
    sg_steps = sigma_schedule(
        steps, positive("sigma_every", every if sigma_every is None else sigma_every), sigma_steps
    )
    chunk = positive("chunk", chunk)
    if not isinstance(fuse, bool):
        raise ConfigError(f"run_lab: fuse must be True or False, got {fuse!r}")

    groups = group_configs([c.transform for c in configs], fuse=fuse)
    order = [c for g in groups for c in g.columns]
    ordered = [configs[c] for c in order]
    olabels = [c.label for c in ordered]
    n = len(ordered)
    theta0 = start_points(surf, [c.start for c in ordered], olabels, start, dtype)
    _probe(surf, theta0)
    rates = LearningRates(olabels, [c.lr for c in ordered], steps, dtype)

    rec = _Recorder(steps, every=every, theta_every=th_every, sigma_steps=sg_steps, n=n, dtype=dtype)
    began = time.perf_counter()
    keep = on_nonfinite == "keep"
    final = _advance(
        surf,
        groups,
        theta0,
        rates,
        rec,
        steps=steps,
        chunk=chunk,
        labels=olabels,
        keep=keep,
        progress=progress,
    )
    final_loss = surf.loss(final)
    final_grad = surf.gradient(final)
    if on_nonfinite == "raise":
        check_finite(final_loss.unsqueeze(0), final_grad.unsqueeze(0), steps, olabels, surf)
    rec.loss[-1] = final_loss
    rec.grad_norm[-1] = torch.linalg.vector_norm(final_grad, dim=-1)
    rec.theta[-1] = final
    seconds = time.perf_counter() - began
    effective_lr = rates.at(sg_steps).unsqueeze(-1) / rec.sigma

    inverse: slice | torch.Tensor = slice(None)  # the groups' column order back to the configs' order
    if order != list(range(n)):
        inverse = torch.empty(n, dtype=torch.long)
        inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(n)
    return LabRun(
        surface=surf.name,
        labels=labels,
        num_steps=steps,
        steps=rec.steps,
        loss=rec.loss[:, inverse],
        grad_norm=rec.grad_norm[:, inverse],
        theta_steps=rec.theta_steps,
        theta=rec.theta[:, inverse],
        sigma_steps=sg_steps,
        sigma=rec.sigma[:, inverse],
        effective_lr=effective_lr[:, inverse],
        final_theta=final[inverse],
        final_loss=final_loss[inverse],
        seconds=seconds,
    )


def _check_configs(configs: Sequence[LabConfig]) -> tuple[str, ...]:
    if not configs:
        raise ConfigError("run_lab: give at least one LabConfig")
    labels = tuple(c.label for c in configs)
    if len(set(labels)) != len(labels):
        raise ConfigError(f"run_lab: configuration labels must be unique, got {list(labels)}")
    for c in configs:
        if not isinstance(c.transform, Transform):
            raise ConfigError(
                f"config {c.label!r}: transform must be a ravine.optim Transform, got {c.transform!r}"
            )
    return labels


def _probe(surface: Surface, theta0: torch.Tensor) -> None:
    """One loss evaluation at the start points: the surface must give one scalar per point."""
    n = theta0.shape[0]
    probe = surface.loss(theta0)
    if not isinstance(probe, torch.Tensor) or tuple(probe.shape) != (n,):
        shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
        raise DataError(
            f"surface {surface.name!r}: loss must give one scalar per point, i.e. shape ({n},) for points of "
            f"shape ({n}, 2), got {shape}"
        )


class _Recorder:
    """The recorded rows (loss, ‖g‖ every k steps; θ every k_θ; σ at chosen updates) and where they go."""

    def __init__(
        self,
        steps: int,
        *,
        every: int,
        theta_every: int,
        sigma_steps: torch.Tensor,
        n: int,
        dtype: torch.dtype,
    ) -> None:
        self.every, self.theta_every = every, theta_every
        self.steps = recorded_steps(steps, every, include_last=True)
        self.theta_steps = recorded_steps(steps, theta_every, include_last=True)
        self.sigma_list = [*sigma_steps.tolist(), -1]  # sentinel: the loop compares with the next one
        self.loss = torch.empty(len(self.steps), n, dtype=dtype)
        self.grad_norm = torch.empty(len(self.steps), n, dtype=dtype)
        self.theta = torch.empty(len(self.theta_steps), n, 2, dtype=dtype)
        self.sigma = torch.ones(len(sigma_steps), n, 2, dtype=dtype)
        self.row = self.theta_row = self.sigma_row = 0

    def chunk(
        self, t0: int, count: int, losses: torch.Tensor, gnorms: torch.Tensor, thetas: torch.Tensor
    ) -> None:
        self.row = take_rows(self.row, t0, count, self.every, [(self.loss, losses), (self.grad_norm, gnorms)])
        self.theta_row = take_rows(self.theta_row, t0, count, self.theta_every, [(self.theta, thetas)])


def _advance(
    surf: Surface,
    groups: list[Group],
    theta0: torch.Tensor,
    rates: LearningRates,
    rec: _Recorder,
    *,
    steps: int,
    chunk: int,
    labels: Sequence[str],
    keep: bool,
    progress: Callable[[int, int], None] | None,
) -> torch.Tensor:
    """The hot loop; returns θ_T. Chunks of K steps live in preallocated buffers: θ (K + 1, n, 2) and
    [g; scratch] (K, 2, n, 2), whose scratch half is where a fused group squares its gradient."""
    n = theta0.shape[0]
    K = min(chunk, max(steps, 1))
    thbuf = torch.empty(K + 1, n, 2, dtype=theta0.dtype)
    gbuf = torch.empty(K, 2, n, 2, dtype=theta0.dtype)
    thbuf[0] = theta0
    th_views, g_views = thbuf.unbind(0), gbuf[:, 0].unbind(0)
    for g in groups:
        g.state = g.transform.init([th_views[0][g.lo : g.hi]])
    dividing = [g for g in groups if g.transform.denominator(g.state, step=1) is not None]
    gradient = surf.gradient
    fast = _closed_form_gradient(surf, theta0)
    steppers = [_Stepper(g, thbuf, gbuf, rates) for g in groups]
    sigma_list, sigma = rec.sigma_list, rec.sigma
    t0 = 0
    while t0 < steps:
        k_n = min(K, steps - t0)
        table = rates.chunk(t0, k_n) if rates.tables else None
        plan = [stepper.plan(t0, k_n, table) for stepper in steppers]
        with torch.inference_mode(fast), np.errstate(all="ignore"):  # a diverging run is reported below
            for k in range(k_n):
                step = t0 + k + 1
                gradient(th_views[k], out=g_views[k])
                for advance in plan:
                    advance(k, step)
                if step - 1 == sigma_list[rec.sigma_row]:
                    for g in dividing:
                        den = g.transform.denominator(g.state, step=step)
                        if den is not None:
                            sigma[rec.sigma_row, g.lo : g.hi] = den[0]
                    rec.sigma_row += 1
        grads = gbuf[:k_n, 0]
        losses = surf.loss(thbuf[:k_n])
        gnorms = torch.linalg.vector_norm(grads, dim=-1)
        if not keep:
            check_finite(losses, grads, t0, labels, surf)
        rec.chunk(t0, k_n, losses, gnorms, thbuf[:k_n])
        thbuf[0] = thbuf[k_n]
        t0 += k_n
        if progress is not None:
            progress(t0, steps)
    return thbuf[0].clone()


class _Stepper:
    """One group's update θ_{t+1} = θ_t − η_t·d_t in the hot loop, with its views of the buffers made once.

    A :class:`MixedRule` group runs its NumPy step on the buffers' memory; any other group calls its
    transform's ``update`` and one ``addcmul`` (plain GD: just the ``addcmul``).
    """

    def __init__(self, group: Group, thbuf: torch.Tensor, gbuf: torch.Tensor, rates: LearningRates) -> None:
        lo, hi = group.lo, group.hi
        self.group = group
        self.varying = any(c in rates.tables for c in range(lo, hi))
        self.mixed = isinstance(group.transform, MixedRule)
        if self.mixed:
            assert isinstance(group.transform, MixedRule)
            self.rule = group.transform
            self.step = self.rule.stepper(
                group.state, list(gbuf[:, :, lo:hi].numpy()), list(thbuf[:, lo:hi].numpy())
            )
            self.lr_array = np.ascontiguousarray(
                np.broadcast_to(rates.constant[lo:hi].numpy()[:, None], (hi - lo, 2))
            )
        else:
            self.th_views = thbuf[:, lo:hi].unbind(0)
            self.g_views = gbuf[:, 0, lo:hi].unbind(0)
            self.lr_view = rates.constant[lo:hi].unsqueeze(-1)

    def plan(self, t0: int, count: int, table: torch.Tensor | None) -> Callable[[int, int], None]:
        """The step function for updates t0 + 1 … t0 + count (``table``: the chunk's η_t, (count, n, 1))."""
        group = self.group
        lo, hi = group.lo, group.hi
        if self.mixed:
            rho = self.rule.rho(group.state, range(t0 + 1, t0 + count + 1))
            rhos = list(rho) if self.rule.averaged else [rho] * count
            if self.varying:
                assert table is not None
                lrs = list(
                    np.ascontiguousarray(np.broadcast_to(table[:, lo:hi].numpy(), (count, hi - lo, 2)))
                )
            else:
                lrs = [self.lr_array] * count
            step = self.step

            def mixed(k: int, t: int) -> None:
                del t
                step(k, rhos[k], lrs[k])

            return mixed
        if self.varying:
            assert table is not None
            glr: Sequence[torch.Tensor] = table[:, lo:hi].unbind(0)
        else:
            glr = [self.lr_view] * count
        transform, state, identity = group.transform, group.state, group.identity
        gth, gg, addcmul = self.th_views, self.g_views, torch.addcmul

        def other(k: int, step: int) -> None:
            d = gg[k] if identity else transform.update([gg[k]], state, [gth[k]], step=step)[0]
            addcmul(gth[k], glr[k], d, value=-1.0, out=gth[k + 1])

        return other


def _closed_form_gradient(surface: Surface, theta0: torch.Tensor) -> bool:
    """Whether the surface's gradient works in ``torch.inference_mode`` (a closed form, not autograd).

    The hot loop then runs in inference mode: the same operations and results, less dispatch per op (each
    step is a handful of operations on tiny tensors, so dispatch is most of its cost). Autograd
    gradients (the default :meth:`Surface.gradient`, user callables) fail there, so one gradient at the
    start points is tried and compared.
    """
    reference = surface.gradient(theta0)
    out = torch.empty_like(theta0)
    try:
        with torch.inference_mode():
            surface.gradient(theta0.clone(), out=out)
    except Exception:  # any failure there: keep the ordinary mode
        return False
    return bool(torch.equal(out, reference))
