r"""The ``torch.optim.Optimizer`` adapter around a chain of transforms.

Per parameter, ``optimizer.state[p]`` holds ``"step"`` (a 0-d float32 CPU tensor, as torch's: updates taken
by this parameter) and the chain's state tensors under their keys (``"exp_avg"``, ``"momentum_buffer"``, ... —
torch's names), so ``state_dict()`` / ``load_state_dict()`` work as in torch, a resumed run continues
bit-identically, and torch's own states load exactly (:mod:`ravine.optim._checkpoint`).

Each step: (1) gather the parameters that have a gradient; sparse gradients raise
:class:`~ravine.errors.UnsupportedError`; (2) unless ``nonfinite="off"``, check all gradients of all groups
for NaN/Inf with one fused reduction — by default raise :class:`~ravine.errors.NonFiniteError` *before any
parameter or state is touched*; with ``nonfinite="skip"`` skip the whole step and count it in
:attr:`ChainOptimizer.skipped_steps`; (3) per group, η_t = group["lr"] × schedule(step − 1) and the chain's
fused :meth:`~ravine.optim.Transform.apply` updates state and parameters with ``torch._foreach_*`` ops
(group ``foreach=False``: the same code one parameter at a time; ``maximize=True``: on −g; ``fused=True``
on the presets whose rule torch fuses: torch's own fused CPU kernel on the same state, see
:mod:`ravine.optim._fused`).

Under ``torch.compile`` the step traces without a graph break (step counts, bias corrections and
schedules stay tensors: one graph for every step) and the NaN/Inf guard skips inside the graph instead of
raising (see :meth:`ChainOptimizer.step`).

A rule built with :func:`~ravine.optim.inject_hyperparams` runs, at each update, as built with the group's
current values: ``group["hyperparams"]`` (its constants, written with :meth:`ChainOptimizer.set_hyperparams`)
and its schedules at that update (:mod:`ravine.optim._inject`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Literal, TypeAlias, cast, overload

import torch

from ravine.errors import ConfigError, DataError, NonFiniteError, RavineError, UnsupportedError
from ravine.optim import _checkpoint, _fused, _group_wide, _inject
from ravine.optim._clipping import ClipByGlobalNorm
from ravine.optim._foreach import (
    all_finite,
    by_count,
    chunk_plan,
    finite_flag,
    held,
    real,
    real_views,
)
from ravine.optim._groups import TORCH_KEYWORDS, check_eps_dtype, check_torch_keywords, torch_keywords
from ravine.optim._inspect import LayerLR, lr_summary
from ravine.optim._scalars import Scalar, scalar_dtype
from ravine.optim._schedules import Schedule
from ravine.optim._transforms import Chain, Transform

__all__ = ["ChainOptimizer", "LayerLR", "NonFinitePolicy", "ScheduleFactory", "TransformFactory"]

TransformFactory: TypeAlias = Callable[[Mapping[str, Any]], Transform]
"""Builds a group's transform from its hyper-parameters (how the presets support per-group values)."""
ScheduleFactory: TypeAlias = Callable[[Mapping[str, Any]], Schedule | None]
NonFinitePolicy: TypeAlias = Literal["raise", "skip", "off"]

_NOT_RULE = frozenset({"params", "lr", "initial_lr", "param_names", "hyperparams", *TORCH_KEYWORDS})
"""Group keys that do not change the transform or schedule (left out of the plan cache's key); a group's
injected ``"hyperparams"`` are read at each update (:func:`ravine.optim._inject.resolve`)."""
_PLAN_CACHE = 64
"""Most (transform, schedule) plans kept: OneCycleLR/CyclicLR edit betas/momentum every step."""


class ChainOptimizer(torch.optim.Optimizer):
    r"""A ``torch.optim.Optimizer`` that runs θ ← θ − η_t·d_t with d_t from a :class:`Transform` chain.

    Args:
        params: parameters or param groups, as for any torch optimizer (a group may override ``lr``, the
            preset's hyper-parameters, ``transform`` or ``schedule``).
        transform: a :class:`Transform` (e.g. ``chain(WeightDecay(1e-4), Adam())``), or a function that
            builds one from a group's hyper-parameters (what the presets pass). Wrapped in
            :func:`~ravine.optim.inject_hyperparams`, its numeric hyper-parameters become per-group state:
            :meth:`hyperparams`, :meth:`set_hyperparams`.
        lr: η, the base learning rate (≥ 0); torch's LR schedulers edit it as usual.
        schedule: optional :class:`Schedule` multiplying ``lr`` (η_t = lr × schedule(t), t = updates already
            taken by the parameter), or a function building one from a group.
        defaults: extra hyper-parameters stored in each param group (used by ``transform`` factories).
        nonfinite: ``"raise"`` (default): NaN/Inf in a gradient raises :class:`NonFiniteError` before any
            parameter or state changes; ``"skip"``: the step is skipped and counted in
            :attr:`skipped_steps`; ``"off"``: no check (as torch; NaN then spreads into θ). The check is one
            read of every gradient (about 0.5 ms per million float32 parameters on a CPU core); a group led
            by :class:`ClipByGlobalNorm` is checked by the clip's own norm, at no extra cost.
        foreach: ``True``/``None`` (default): multi-tensor ``torch._foreach_*`` kernels;
            ``False``: the same rule one parameter at a time.
        fused: ``True`` runs the step through torch's fused CPU kernel given by ``fused_rule`` (the
            presets adam, adamw, sgd, momentum and adagrad pass theirs); refused without one.
        fused_rule: builds a group's :class:`~ravine.optim._fused.FusedRule` (which torch kernel, with
            which hyper-parameters) from its hyper-parameters; ``None``: ``fused=True`` is refused.
        chunk_bytes: on CPU, run the foreach rule over chunks of about this many parameter bytes so that
            each chunk stays in cache across the rule's ops (default 512 KiB; ``None``: one chunk); a
            parameter over twice this size is cut into flat slices. Results do not depend on it (all
            ops of the built-in rules are elementwise).
        name: shown in error messages.

    Example:
        >>> import torch
        >>> from ravine.optim import Adam, ChainOptimizer, WeightDecay, chain
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = ChainOptimizer([w], chain(WeightDecay(0.0), Adam()), lr=0.1)
        >>> (w**2).sum().backward()
        >>> opt.step()
        >>> w.detach()  # Adam's first step moves every coordinate by lr
        tensor([ 0.9000, -1.9000])
        >>> opt.effective_lr(w) * opt.momentum_buffer(w)  # the step, η/σ ⊙ m
        tensor([ 0.1000, -0.1000])
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        transform: Transform | TransformFactory,
        *,
        lr: float | torch.Tensor = 1e-3,
        schedule: Schedule | ScheduleFactory | None = None,
        defaults: Mapping[str, Any] | None = None,
        nonfinite: NonFinitePolicy = "raise",
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        chunk_bytes: int | None = 1 << 19,
        fused_rule: _fused.FusedFactory | None = None,
        name: str = "optimizer",
    ) -> None:
        self._name = name
        self._fused_factory = fused_rule
        if nonfinite not in ("raise", "skip", "off"):
            raise ConfigError(f"{name}: nonfinite must be 'raise', 'skip' or 'off', got {nonfinite=!r}")
        self.nonfinite: NonFinitePolicy = nonfinite
        if chunk_bytes is not None and (not isinstance(chunk_bytes, int) or chunk_bytes < 1):
            raise ConfigError(f"{name}: chunk_bytes must be an integer >= 1 or None, got {chunk_bytes=!r}")
        self.chunk_bytes = chunk_bytes
        self._skipped = 0
        self._traced_skips = torch.zeros((), dtype=torch.int64)  # counted inside compiled steps
        keywords = torch_keywords(
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            capturable=capturable,
            differentiable=differentiable,
        )
        all_defaults: dict[str, Any] = {"lr": lr, **(defaults or {}), **keywords}
        if isinstance(transform, Transform):
            all_defaults["transform"] = transform
            self._transform_factory: TransformFactory | None = None
        elif callable(transform):
            self._transform_factory = transform
        else:
            raise ConfigError(f"{name}: transform must be a Transform or a factory, got {transform!r}")
        if isinstance(schedule, Schedule) or schedule is None:
            all_defaults["schedule"] = schedule
            self._schedule_factory: ScheduleFactory | None = None
        elif callable(schedule):
            self._schedule_factory = schedule
        else:
            raise ConfigError(f"{name}: schedule must be a Schedule, a factory or None, got {schedule!r}")
        self._plans: OrderedDict[Hashable, tuple[Transform, Schedule | None]] = OrderedDict()
        super().__init__(params, all_defaults)

    @property
    def skipped_steps(self) -> int:
        """Steps skipped for a NaN/Inf gradient (``nonfinite="skip"``; any policy but "off" when compiled)."""
        return self._skipped + int(self._traced_skips.item())

    @skipped_steps.setter
    def skipped_steps(self, value: int) -> None:
        self._skipped = int(value)
        self._traced_skips.zero_()

    # ----------------------------------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (validated: float dense parameters, valid hyper-parameters)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            for p in group["params"]:
                if not (p.is_floating_point() or p.is_complex()):
                    raise UnsupportedError(
                        f"{self._name}: parameters must be floating point or complex tensors, got "
                        f"dtype={p.dtype}; convert the model with .float() or .double()"
                    )
                if p.is_sparse:
                    raise UnsupportedError(f"{self._name}: sparse parameters are not supported")
            transform = self._plan(group)[0]
            if isinstance(transform, _inject.InjectHyperparams):  # each group its own values (like "lr")
                group["hyperparams"] = dict(group.get("hyperparams", transform.constants()))
            self._check_group(group)
        except Exception:
            self.param_groups.pop()
            raise

    def _check_group(self, group: Mapping[str, Any]) -> None:
        """Everything a group must satisfy before it steps: keywords, hyper-parameters, ε vs dtype."""
        check_torch_keywords(self._name, group)
        transform, _ = self._plan(group)
        transform.check_params(self._name, group["params"])
        if isinstance(transform, _inject.InjectHyperparams):
            if "hyperparams" in group:
                transform.check_current(group["hyperparams"], self._name)
        elif "hyperparams" in group:
            raise ConfigError(
                f"{self._name}: this group has 'hyperparams' but its rule {transform!r} injects none; "
                "build the rule with ravine.optim.inject_hyperparams(...)"
            )
        self._check_eps(_inject.resolve(transform, group, 1), group["params"])
        if group.get("fused") is True:
            _fused.check_fusable(self._name, self._fused_rule(group), group["params"])

    def _check_eps(self, rule: Transform, params: Iterable[torch.Tensor]) -> None:
        parts = rule.transforms if isinstance(rule, Chain) else (rule,)
        eps = [getattr(part, "eps", None) for part in parts]
        check_eps_dtype(self._name, [e for e in eps if isinstance(e, float)], params)

    def _fused_rule(self, group: Mapping[str, Any]) -> _fused.FusedRule:
        """The torch fused kernel call of a ``fused=True`` group, or why there is none."""
        if self._fused_factory is None:
            raise UnsupportedError(
                f"{self._name}: fused=True runs torch's fused CPU kernels, which exist for the presets "
                f"{_fused.FUSED_PRESETS} only; {self._name} has none: drop fused (the default foreach step), "
                "or torch.compile the training step"
            )
        if group.get("transform") is not None:
            raise UnsupportedError(
                f"{self._name}: fused=True in a param group with its own transform: torch's fused kernel "
                f"runs the preset's rule only; drop fused in that group (its transform then runs foreach)"
            )
        return self._fused_factory(group)

    def _plan(self, group: Mapping[str, Any]) -> tuple[Transform, Schedule | None]:
        if not torch.compiler.is_compiling():
            self._check_lr(group["lr"])
        key: Hashable
        try:
            key = tuple((k, group[k]) for k in sorted(k for k in group if k not in _NOT_RULE))
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self._plans:
            return self._plans[key]
        transform = group.get("transform")
        if transform is None:
            if self._transform_factory is None:
                raise ConfigError(f"{self._name}: this param group has no transform")
            transform = self._transform_factory(group)
        if not isinstance(transform, Transform):
            raise ConfigError(f"{self._name}: transform must be a Transform, got {transform!r}")
        schedule = group.get("schedule")
        if schedule is None and self._schedule_factory is not None:
            schedule = self._schedule_factory(group)
        if schedule is not None and not isinstance(schedule, Schedule):
            raise ConfigError(f"{self._name}: schedule must be a Schedule or None, got {schedule!r}")
        plan = (transform, schedule)
        if key is not None:
            self._plans[key] = plan
            while len(self._plans) > _PLAN_CACHE:
                self._plans.popitem(last=False)
        return plan

    def _check_lr(self, lr: Any) -> None:
        if isinstance(lr, torch.Tensor):
            if lr.numel() != 1:
                raise ConfigError(
                    f"{self._name}: lr must be a number, got a tensor of shape {tuple(lr.shape)}"
                )
            lr = lr.item()
        if not isinstance(lr, int | float) or isinstance(lr, bool) or not math.isfinite(lr) or lr < 0:
            raise ConfigError(f"{self._name}: lr must be a finite number >= 0, got lr={lr!r}")

    @overload
    def learning_rate(self, group: Mapping[str, Any], step: float) -> float: ...
    @overload
    def learning_rate(self, group: Mapping[str, Any], step: torch.Tensor) -> torch.Tensor: ...
    def learning_rate(self, group: Mapping[str, Any], step: Scalar) -> Scalar:
        """η for the ``step``-th update (from 1) of ``group``: group["lr"] × schedule(step − 1).

        A float for a number ``step``; a 0-d float64 tensor for a tensor ``step`` (the compiled path).
        """
        _, schedule = self._plan(group)
        if isinstance(step, torch.Tensor):
            lr = group["lr"]
            base = torch.as_tensor(lr, dtype=torch.float64)
            return base if schedule is None else base * schedule.values((step - 1).to(torch.float64))
        lr = float(group["lr"])
        return lr if schedule is None else lr * schedule(int(step) - 1)

    # ------------------------------------------------------------------------------------------- step
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every parameter that has a gradient; returns ``closure()``'s loss if given.

        Eager: a NaN/Inf gradient raises :class:`NonFiniteError` (``nonfinite="raise"``) or skips the step
        (``"skip"``) before anything changes. Under ``torch.compile`` the check cannot raise without a
        host sync (a graph break), so both policies skip the step inside the graph instead: parameters,
        state and step counts keep their values, and :attr:`skipped_steps` counts it. Step counts are
        tensors, so steps do not recompile; with a torch LR scheduler pass ``lr=torch.tensor(...)`` (as for
        torch.optim), or each new learning rate recompiles.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            work: list[tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor]]] = []
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                grads = [cast(torch.Tensor, p.grad) for p in params]
                for g in grads:
                    if g.is_sparse:
                        raise UnsupportedError(
                            f"{self._name}: sparse gradients are not supported "
                            "(e.g. nn.Embedding(sparse=True)); use dense gradients"
                        )
                if params:
                    work.append((group, params, grads))
            if torch.compiler.is_compiling():
                if any(_inject.steps_in_python(self._plan(group)[0]) for group, _, _ in work):
                    _eager_step(self, work)  # a graph break: the step runs eagerly, nothing recompiles
                else:
                    self._step_traced(work)
                return loss
            self._step_eager(work)
        return loss

    def _step_eager(self, work: list[tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor]]]) -> None:
        """The eager step: the finite check over all groups, then each group's update.

        A group led by a global-norm clip is checked by the clip's own norm (finite iff every gradient is,
        barring overflow of the squares, which the exact check then settles): one read of its gradients
        serves both, and the norm is handed to the clip.
        """
        norms: dict[int, torch.Tensor] = {}
        if self.nonfinite != "off":
            plain: list[torch.Tensor] = []
            for group, _, grads in work:
                if group.get("fused") is not True and _group_wide.leading_clip(self._plan(group)[0]):
                    norms[id(group)] = ClipByGlobalNorm.total_norm([real(g) for g in grads])
                else:
                    plain += grads
            finite = all_finite(plain) and all(
                bool(norm.isfinite()) or all_finite(gs)
                for (group, _, gs) in work
                if (norm := norms.get(id(group))) is not None
            )
            if not finite:
                if self.nonfinite == "skip":
                    self._skipped += 1
                    return
                raise NonFiniteError(
                    f"{self._name}: a gradient contains NaN or Inf; no parameter or state was changed. "
                    "Lower the learning rate, clip gradients, or pass nonfinite='skip' to skip such steps"
                )
        for group, params, grads in work:
            self._step_group(group, params, grads, norms.get(id(group)))

    def _ensure_state(self, group: Mapping[str, Any], params: list[torch.Tensor]) -> Transform:
        """The group's transform, after creating the state of parameters that have none."""
        transform, _ = self._plan(group)
        fresh = [p for p in params if p not in self.state or "step" not in self.state[p]]
        if fresh:
            initial = transform.init(fresh)
            for i, p in enumerate(fresh):
                entry = self.state[p]
                entry["step"] = torch.zeros((), dtype=torch.float32)
                for key, values in initial.items():
                    if values[i] is not None:  # a rule may keep a key for some parameters only (Adafactor)
                        entry[key] = values[i]
        return transform

    def _step_group(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        norm: torch.Tensor | None = None,
    ) -> None:
        """One group's update; ``norm``: the global norm of its gradients if the guard already took it."""
        if group.get("fused") is True:
            self._step_fused(group, params, grads)
            return
        transform = self._ensure_state(group, params)
        keys = transform.state_keys()
        states = [self.state[p] for p in params]
        torch._foreach_add_([entry["step"] for entry in states], 1.0)
        if group.get("maximize"):
            grads = list(torch._foreach_neg(grads))
        foreach = group.get("foreach") is not False
        buckets = by_count(params, grads, states)
        try:  # an injected value the rule refuses raises before this group changes
            rules = {step: _inject.resolve(transform, group, step) for step, _, _, _ in buckets}
        except RavineError:
            torch._foreach_sub_([entry["step"] for entry in states], 1.0)
            raise
        views = [real_views(ps, gs, es, keys) for _, ps, gs, es in buckets]
        if transform.scope == "group":
            _group_wide.step_group_wide(
                group,
                rules,
                buckets,
                views,
                keys,
                foreach=foreach,
                norm=norm,
                learning_rate=self.learning_rate,
                chunk_bytes=self.chunk_bytes,
            )
            return
        for (step, _, _, _), (ps, gs, es) in zip(buckets, views, strict=True):
            lr = self.learning_rate(group, step)
            rule = rules[step]
            if foreach:
                for chunk_grads, state, chunk_params in chunk_plan(
                    ps, gs, es, keys, self.chunk_bytes, scope=transform.scope
                ):
                    rule.apply(chunk_grads, state, chunk_params, step=step, lr=lr)
            else:
                for p, g, entry in zip(ps, gs, es, strict=True):
                    rule.apply([g], {key: [held(entry, key)] for key in keys}, [p], step=step, lr=lr)

    def _step_fused(
        self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor]
    ) -> None:
        """A ``fused=True`` group's update: torch's fused kernel per update count on the state."""
        rule = self._fused_rule(group)
        self._ensure_state(group, params)
        states = [self.state[p] for p in params]
        torch._foreach_add_([entry["step"] for entry in states], 1.0)  # torch counts before its kernel
        maximize = bool(group.get("maximize"))
        for count, ps, gs, es in by_count(params, grads, states):
            rule.run(
                ps,
                gs,
                {key: [entry[key] for entry in es] for key in rule.state_keys},
                [entry["step"] for entry in es],
                lr=self.learning_rate(group, count) if rule.schedules_lr else float(group["lr"]),
                maximize=maximize,
                first_step=count == 1,
            )

    def _step_traced(self, work: list[tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor]]]) -> None:
        """The step under ``torch.compile``: tensor step counts, per-parameter rule, in-graph finite guard."""
        plans = [(self._ensure_state(group, params), group, params, grads) for group, params, grads in work]
        guarded = self.nonfinite != "off"
        touched: list[torch.Tensor] = []
        saved: list[torch.Tensor] = []
        if guarded:
            ok = finite_flag([g for _, _, gs in work for g in gs])
            for transform, _, params, _ in plans:
                for p in params:
                    entry = self.state[p]
                    touched += [p, entry["step"], *(entry[k] for k in transform.state_keys() if k in entry)]
            saved = [t.clone() for t in touched]
        for transform, group, params, grads in plans:
            keys = transform.state_keys()
            signed = list(torch._foreach_neg(grads)) if group.get("maximize") else grads
            entries = [self.state[p] for p in params]
            torch._foreach_add_([entry["step"] for entry in entries], 1.0)
            ps, gs, es = real_views(params, signed, entries, keys)
            # One parameter at a time (their counts may differ). A chain's leading group-wide parts (a
            # global norm) see the whole group first; any other rule that needs the whole group runs at the
            # first parameter's count.
            lead = 0
            if transform.scope == "group":
                first = entries[0]["step"].to(torch.float64)
                whole = {key: [held(entry, key) for entry in es] for key in keys}
                lead, gs = _group_wide.group_wide_first(
                    _inject.resolve(transform, group, first), gs, whole, ps, first
                )
            spans = (
                [(0, len(ps))]
                if transform.scope == "group" and not lead
                else [(i, i + 1) for i in range(len(ps))]
            )
            for lo, hi in spans:
                step = entries[lo]["step"].to(torch.float64)
                lr = self.learning_rate(group, step)
                state = {key: [held(entry, key) for entry in es[lo:hi]] for key in keys}
                rule = _inject.resolve(transform, group, step)
                if lead:
                    assert isinstance(rule, Chain)
                    rule.apply_from(lead, gs[lo:hi], state, ps[lo:hi], step=step, lr=lr)
                else:
                    rule.apply(gs[lo:hi], state, ps[lo:hi], step=step, lr=lr)
        if guarded:
            for current, old in zip(touched, saved, strict=True):
                current.copy_(torch.where(ok, current, old))
            self._traced_skips.add_((~ok).to(device="cpu", dtype=torch.int64))

    # ------------------------------------------------------------------------------------- inspection
    def _locate(self, param: torch.Tensor) -> tuple[dict[str, Any], dict[str, Any]]:
        for group in self.param_groups:
            if any(p is param for p in group["params"]):
                entry = self.state.get(param)
                if not entry or entry.get("step", 0) == 0:
                    raise DataError(
                        f"{self._name}: this parameter has taken no step yet; "
                        "effective_lr and momentum_buffer are defined after its first update"
                    )
                return group, entry
        raise DataError(f"{self._name}: the tensor given is not a parameter of this optimizer")

    def effective_lr(self, param: torch.Tensor) -> torch.Tensor:
        r"""η_t/σ_t per element for ``param`` at its last update (computed now from state; a new tensor).

        η_t uses the group's *current* ``lr`` and the schedule at the last update; σ_t is the chain's
        :meth:`~ravine.optim.Transform.denominator` (1 for plain SGD/momentum). For Adam/RAdam σ includes
        the bias correction of m, so ``effective_lr(p) * momentum_buffer(p)`` is the last step (without
        weight decay). Weight decay is not part of σ.
        """
        group, entry = self._locate(param)
        transform, _ = self._plan(group)
        if not transform.defines_effective_lr:
            raise UnsupportedError(f"{self._name}: {transform!r}: {transform.no_effective_lr}")
        step = int(entry["step"])
        lr = self.learning_rate(group, step)
        state = {key: [held(entry, key)] for key in transform.state_keys()}
        with torch.no_grad():
            sigma = _inject.resolve(transform, group, step).denominator(state, step=step)
            if sigma is None:
                return torch.full_like(param, float(lr)).detach()
            return lr / sigma[0]

    def pre_clip_norm(self, group: int = 0) -> float | None:
        """The gradient norm before clipping at the last step of param group ``group`` (None if the rule has
        no clipping part or nothing has stepped): the global norm for ``ClipByGlobalNorm``, the norm over all
        of the group's parameters for ``AdaptiveClip``. One host sync; call it when you log."""
        keys = [
            k for k in self._plan(self.param_groups[group])[0].state_keys() if k.endswith("pre_clip_norm")
        ]
        entries = [self.state[p] for p in self.param_groups[group]["params"] if p in self.state]
        values = [entry[keys[0]] for entry in entries if keys and keys[0] in entry]
        if not values:
            return None
        transform = self._plan(self.param_groups[group])[0]
        if transform.scope == "group":
            return float(values[0])
        return float(torch.linalg.vector_norm(torch.stack([v.double() for v in values])))

    def defines_effective_lr(self, group: Mapping[str, Any]) -> bool:
        """Whether :meth:`effective_lr` is defined for ``group``'s rule (not for sign rules, e.g. Lion)."""
        return self._plan(group)[0].defines_effective_lr

    # ------------------------------------------------------------------------- injected hyper-parameters
    def _injected(self, index: int) -> tuple[_inject.InjectHyperparams, dict[str, Any], int]:
        """Group ``index``'s injecting rule, the group, and its last update count (0 before any)."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.param_groups):
            raise ConfigError(
                f"{self._name}: group must be an index in [0, {len(self.param_groups)}), got group={index!r}"
            )
        group = self.param_groups[index]
        transform, _ = self._plan(group)
        if not isinstance(transform, _inject.InjectHyperparams):
            raise ConfigError(
                f"{self._name}: param group {index} runs {transform!r}, which injects no hyper-parameters; "
                "build the optimizer with ravine.optim.inject_hyperparams(rule, ...) as its transform"
            )
        steps = [int(self.state[p]["step"]) for p in group["params"] if "step" in self.state.get(p, {})]
        return transform, group, max(steps, default=0)

    def hyperparams(self, group: int = 0) -> dict[str, float | int]:
        """The injected hyper-parameters of param group ``group`` (full name → value) as its last update
        used them, scheduled ones included (before any update: the values of the first). A new dict."""
        transform, entry, step = self._injected(group)
        return transform.values(max(step, 1), entry.get("hyperparams"))

    def set_hyperparams(
        self,
        values: Mapping[str, float | int] | None = None,
        /,
        *,
        group: int | None = None,
        **named: float | int,
    ) -> None:
        """Change injected constants from the next update on (optax's ``state.hyperparams[name] = value``).

        Args:
            values: full or unique-suffix name → number (for full names such as ``"2.beta2"``).
            group: the param group; ``None``: every group whose rule injects them.
            **named: name → number, e.g. ``beta2=0.95``.

        Raises:
            ConfigError: no such injected constant (a scheduled one is refused: the schedule would overwrite
                it), a value that is not a number, or one the rule refuses (checked as a constructor checks
                its arguments, and ε against the parameters' dtype); nothing changes then.
        """
        updates = {**(values or {}), **named}
        indices = range(len(self.param_groups)) if group is None else [group]
        candidates = [
            i
            for i in indices
            if group is not None or isinstance(self._plan(self.param_groups[i])[0], _inject.InjectHyperparams)
        ]
        if not candidates:
            self._injected(0)  # raises: no group injects
        planned = []
        for i in candidates:  # every group checked before any changes
            transform, entry, step = self._injected(i)
            current = transform.written(entry.get("hyperparams"), updates, self._name)
            self._check_eps(transform.at(step + 1, current), entry["params"])
            planned.append((entry, current))
        for entry, current in planned:
            entry["hyperparams"] = current

    def momentum_buffer(self, param: torch.Tensor) -> torch.Tensor | None:
        """A copy of the momentum buffer m_t of ``param`` (``exp_avg`` / ``momentum_buffer``), or ``None``."""
        group, entry = self._locate(param)
        transform, _ = self._plan(group)
        state = {key: [held(entry, key)] for key in transform.state_keys()}
        buffers = transform.momentum_buffer(state)
        return None if buffers is None else buffers[0].detach().clone()

    def lr_summary(self, named_parameters: Iterable[tuple[str, torch.Tensor]] | None = None) -> list[LayerLR]:
        """Per-parameter min/median/max of η_t/σ_t (and ‖m_t‖), for every parameter that has stepped.

        Args:
            named_parameters: e.g. ``model.named_parameters()``, for names; otherwise ``"group0.param3"``.
        """
        return lr_summary(self, named_parameters)

    # ------------------------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """torch's state dict as plain data (transforms and schedules described), plus ``"ravine"``.

        Loads with ``torch.load(..., weights_only=True)``; see :mod:`ravine.optim._checkpoint`.
        """
        state = super().state_dict()
        for group in state["param_groups"]:
            for key in ("transform", "schedule", "hyperparams"):  # hyperparams: a copy, not the live dict
                if key in group:
                    group[key] = _checkpoint.describe(group[key])
        state["ravine"] = {"skipped_steps": self.skipped_steps}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of :meth:`state_dict`, or of the matching torch optimizer (mapped exactly).

        Everything is checked before anything changes: the group count and sizes, each group's keys and
        hyper-parameters (as at construction), and each parameter's state keys, shapes and step count.

        Raises:
            DataError: the checkpoint does not fit this optimizer (the message names what differs).
            ConfigError: a hyper-parameter in it is invalid.
        """
        where = f"{self._name}.load_state_dict"
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise DataError(
                f"{where}: expected a dict with 'state' and 'param_groups', got {type(state_dict)}"
            )
        saved = dict(state_dict)
        extra = saved.pop("ravine", {})
        if not isinstance(extra, Mapping):
            raise DataError(f"{where}: the 'ravine' entry must be a dict, got {extra!r}")
        groups, states = saved["param_groups"], saved["state"]
        if len(groups) != len(self.param_groups):
            raise DataError(
                f"{where}: the checkpoint has {len(groups)} param groups, this optimizer {len(self.param_groups)}"
            )
        new_groups: list[dict[str, Any]] = []
        new_state: dict[Any, Any] = {}
        for gi, (ours, theirs) in enumerate(zip(self.param_groups, groups, strict=True)):
            new_groups.append(
                _checkpoint.loaded_group(
                    gi, ours, theirs, self.defaults, check=self._check_group, where=where
                )
            )
            transform, schedule = self._plan({**new_groups[-1], "params": ours["params"]})
            for pi, (pid, param) in enumerate(zip(theirs["params"], ours["params"], strict=True)):
                entry = states.get(pid)
                if entry is None:
                    continue
                if not isinstance(entry, Mapping):
                    raise DataError(
                        f"{where}: group {gi}, parameter {pi}: state must be a dict, got {entry!r}"
                    )
                checked = _checkpoint.check_loaded_state(
                    entry,
                    param,
                    _checkpoint.expected_state(transform, param),
                    where=f"{where}: group {gi}, parameter {pi} (shape {tuple(param.shape)})",
                    has_schedule=schedule is not None,
                )
                if checked:
                    new_state[pid] = checked
        super().load_state_dict({"state": new_state, "param_groups": new_groups})
        for entry in self.state.values():
            if "step" in entry:  # torch moves tensors to the parameter's device; counts stay on the CPU
                entry["step"] = _checkpoint.normalize_step(entry["step"], where)
            if "mu_product" in entry:  # torch keeps NAdam's μ product in its scalar dtype
                entry["mu_product"] = entry["mu_product"].to(scalar_dtype())
        self.skipped_steps = int(extra.get("skipped_steps", 0))

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}[{self._name}] ("]
        for i, group in enumerate(self.param_groups):
            transform, schedule = self._plan(group)
            lines.append(f"  group {i}: lr={group['lr']}, transform={transform!r}, schedule={schedule!r}")
        lines.append(")")
        return "\n".join(lines)


def _eager_step_outside_the_graph(
    optimizer: ChainOptimizer, work: list[tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor]]]
) -> None:
    """:meth:`ChainOptimizer._step_eager` outside the graph, for a rule that needs the step count as a Python
    number (a scheduled injected hyper-parameter): dynamo breaks the graph here and runs it eagerly."""
    with torch.no_grad():
        optimizer._step_eager(work)


_eager_step: Callable[
    [ChainOptimizer, list[tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor]]]], None
] = torch.compiler.disable(
    _eager_step_outside_the_graph,
    reason="ravine.optim: a scheduled injected hyper-parameter needs the step count as a Python number, so "
    "the optimizer step runs eagerly (one graph break); for fullgraph=True inject it as a constant and "
    "write each value with optimizer.set_hyperparams(...)",
)
