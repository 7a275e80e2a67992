r"""``fused=True``: the step of adam, adamw, sgd/momentum and adagrad through torch's own fused CPU kernels.

torch ships one fused multi-tensor kernel per rule (``torch._fused_adam_``, ``torch._fused_adamw_``,
``torch._fused_sgd_``, ``torch._fused_adagrad_``): it reads θ, g and the state once and writes θ and the
state once, at about the memory bound. A preset with ``fused=True`` calls that kernel on ravine's own state
(torch's names: ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, ``momentum_buffer``, ``sum``, and the 0-d
float32 ``step``), so checkpoints, the torch ↔ ravine state mapping, :meth:`~ravine.optim.ChainOptimizer.
effective_lr`, ``momentum_buffer`` and ``lr_summary`` are unchanged, and the result is bit-identical to
``torch.optim.X(..., fused=True)``.

================  ====================================================================================
preset            kernel and group keys it reads
================  ====================================================================================
adam              ``_fused_adam_``: betas, eps, weight_decay (coupled L2), amsgrad, maximize; with
                  ``decoupled_weight_decay=True`` ``_fused_adamw_``
adamw             ``_fused_adamw_`` (the same keys, decoupled decay)
sgd / momentum    ``_fused_sgd_``: momentum, dampening, nesterov, weight_decay, maximize (the first step of
                  a parameter sets b₁ = g₁ + λθ, as torch)
adagrad           ``_fused_adagrad_``: lr_decay (applied by the kernel), weight_decay, eps,
                  initial_accumulator_value (the ``sum`` it starts from), maximize; ``mean=True`` has no
                  kernel and is refused
================  ====================================================================================

The learning rate is read each step from the group (torch LR schedulers and param-group edits apply), times
the ravine ``schedule=`` at the parameter's update count, as in the eager step. The NaN/Inf guard runs
before the kernel exactly as in the eager step (``nonfinite="raise"`` raises before anything changes,
``"skip"`` skips and counts). What fused costs:

* ``nonfinite="off"``: exactly torch's fused step (one kernel call per update count and dtype, plus a few
  microseconds of Python per group).
* with the guard (``"raise"``, the default, or ``"skip"``): torch's fused step plus one read of every
  gradient before it (4 of Adam's 28 bytes per float32 parameter, 4 of SGD-momentum's and Adagrad's 20). A
  lone read stream runs at about half the fused kernel's bytes per second on a CPU core, so on the project's
  machine this read (≈ 5 ms per 10M float32 parameters) adds 30–40% to torch's fused step; see
  BENCHMARKS.md. The read cannot share the kernel's pass: the verdict must come before anything changes.
  torch's ``found_inf`` argument would not save it either — the kernel only reads that flag, something must
  still compute it from the gradients, and on CPU the host read of the verdict is free anyway.

Refused with :class:`~ravine.errors.UnsupportedError` (at construction, ``add_param_group`` and
``load_state_dict``): a preset or :class:`~ravine.optim.ChainOptimizer` without a torch kernel, a group
with its own ``transform``, complex, non-CPU or non-floating parameters, and a torch whose build lacks the
CPU kernel (torch < 2.4; ravine itself imports on older torch). Under ``torch.compile`` the kernels do not
trace (functionalisation refuses their in-place lists), so a compiled step runs the group's rule as
ravine's compiled code instead (equal up to rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ravine.errors import UnsupportedError

__all__ = ["FUSED_PRESETS", "FusedFactory", "FusedRule", "adagrad", "adam", "check_fusable", "sgd"]

FUSED_PRESETS = "adam, adamw, sgd, momentum and adagrad"
"""The presets whose rule torch fuses (named in every refusal)."""

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class FusedRule:
    """One group's call of a torch fused kernel: which kernel, its hyper-parameters, the state it reads.

    Attributes:
        kernel: ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"adagrad"`` (torch's ``_fused_<kernel>_``).
        state_keys: the state tensors passed to the kernel, in its argument order.
        options: the kernel's keyword arguments (``lr`` and ``maximize`` are added per step).
        schedules_lr: whether the optimizer multiplies ``lr`` by the group's schedule; ``False`` when the
            kernel applies the decay itself (Adagrad's ``lr_decay``).
    """

    kernel: str
    state_keys: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    schedules_lr: bool = True

    def run(
        self,
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        state: Mapping[str, list[torch.Tensor]],
        steps: list[torch.Tensor],
        *,
        lr: float | torch.Tensor,
        maximize: bool,
        first_step: bool,
    ) -> None:
        """One fused update of ``params`` (CPU); ``steps`` already count this update.

        torch's kernels take one dtype per call, so parameters of several dtypes make one call per dtype.
        """
        dtypes = {p.dtype for p in params}
        if len(dtypes) > 1:
            for dtype in dtypes:
                same = [i for i, p in enumerate(params) if p.dtype == dtype]
                self.run(
                    [params[i] for i in same],
                    [grads[i] for i in same],
                    {key: [values[i] for i in same] for key, values in state.items()},
                    [steps[i] for i in same],
                    lr=lr,
                    maximize=maximize,
                    first_step=first_step,
                )
            return
        fn = kernel(self.kernel)
        lists = [state[key] for key in self.state_keys]
        if self.kernel in ("adam", "adamw"):
            amsgrad = bool(self.options["amsgrad"])
            fn(
                params,
                grads,
                lists[0],
                lists[1],
                lists[2] if amsgrad else [],
                steps,
                lr=lr,
                maximize=maximize,
                grad_scale=None,
                found_inf=None,
                **self.options,
            )
        elif self.kernel == "sgd":
            fn(
                params,
                grads,
                lists[0] if lists else [],
                lr=lr,
                maximize=maximize,
                is_first_step=first_step and bool(lists),
                grad_scale=None,
                found_inf=None,
                **self.options,
            )
        else:
            fn(
                params,
                grads,
                lists[0],
                steps,
                lr=lr,
                maximize=maximize,
                grad_scale=None,
                found_inf=None,
                **self.options,
            )


FusedFactory = Callable[[Mapping[str, Any]], FusedRule]
"""Builds a group's :class:`FusedRule` from its hyper-parameters (what the presets pass)."""


def adam(group: Mapping[str, Any]) -> FusedRule:
    """torch's fused Adam (coupled L2) or AdamW (``decoupled_weight_decay=True``) for ``group``."""
    beta1, beta2 = group["betas"]
    amsgrad = bool(group["amsgrad"])
    keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad else ("exp_avg", "exp_avg_sq")
    return FusedRule(
        "adamw" if group.get("decoupled_weight_decay") else "adam",
        keys,
        {
            "amsgrad": amsgrad,
            "beta1": float(beta1),
            "beta2": float(beta2),
            "weight_decay": float(group["weight_decay"]),
            "eps": float(group["eps"]),
        },
    )


def sgd(group: Mapping[str, Any]) -> FusedRule:
    """torch's fused SGD (momentum buffer only when momentum > 0) for ``group``."""
    mu = float(group["momentum"])
    return FusedRule(
        "sgd",
        ("momentum_buffer",) if mu > 0 else (),
        {
            "weight_decay": float(group["weight_decay"]),
            "momentum": mu,
            "dampening": float(group["dampening"]),
            "nesterov": bool(group["nesterov"]),
        },
    )


def adagrad(group: Mapping[str, Any]) -> FusedRule:
    """torch's fused Adagrad for ``group`` (its lr_decay in the kernel unless the group has a schedule)."""
    if group["mean"]:
        raise UnsupportedError(
            "adagrad: fused=True with mean=True is not supported: torch's fused Adagrad is the summed rule "
            "only; drop fused (the default foreach step) or use mean=False"
        )
    own_schedule = group.get("schedule") is not None
    return FusedRule(
        "adagrad",
        ("sum",),
        {
            "lr_decay": 0.0 if own_schedule else float(group["lr_decay"]),
            "weight_decay": float(group["weight_decay"]),
            "eps": float(group["eps"]),
        },
        schedules_lr=own_schedule,
    )


_KERNELS = {
    "adam": "_fused_adam_",
    "adamw": "_fused_adamw_",
    "sgd": "_fused_sgd_",
    "adagrad": "_fused_adagrad_",
}
_PROBED: dict[tuple[str, int], str | None] = {}


def _probe(name: str, fn: Callable[..., None]) -> None:
    """Call torch's kernel once on a 1-element float32 CPU tensor (raises where the build lacks it)."""
    one = [torch.zeros(1)]
    steps = [torch.ones(())]
    common: dict[str, Any] = {"maximize": False, "grad_scale": None, "found_inf": None}
    if name == "sgd":
        fn(
            one,
            [torch.zeros(1)],
            [],
            weight_decay=0.0,
            momentum=0.0,
            lr=0.0,
            dampening=0.0,
            nesterov=False,
            is_first_step=False,
            **common,
        )
    elif name == "adagrad":
        fn(
            one,
            [torch.zeros(1)],
            [torch.zeros(1)],
            steps,
            lr=0.0,
            lr_decay=0.0,
            weight_decay=0.0,
            eps=1e-10,
            **common,
        )
    else:
        fn(
            one,
            [torch.zeros(1)],
            [torch.zeros(1)],
            [torch.zeros(1)],
            [],
            steps,
            amsgrad=False,
            lr=0.0,
            beta1=0.9,
            beta2=0.999,
            weight_decay=0.0,
            eps=1e-8,
            **common,
        )


def missing_kernel(name: str) -> str | None:
    """Why this torch cannot run the fused CPU kernel ``name`` (``None`` when it can); probed once."""
    attribute = _KERNELS[name]
    fn = getattr(torch, attribute, None)
    if fn is None:
        return f"torch {torch.__version__} has no torch.{attribute}"
    key = (name, id(fn))
    if key not in _PROBED:
        try:
            _probe(name, fn)
            _PROBED[key] = None
        except (RuntimeError, NotImplementedError, TypeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            _PROBED[key] = f"torch {torch.__version__}'s torch.{attribute} has no CPU kernel ({first})"
    return _PROBED[key]


def kernel(name: str) -> Callable[..., None]:
    """torch's fused kernel ``name``, or :class:`UnsupportedError` saying why this torch lacks it."""
    why = missing_kernel(name)
    if why is not None:
        raise UnsupportedError(
            f"fused=True needs torch's fused CPU kernel: {why}; upgrade torch (>= 2.4) or drop fused"
        )
    fn: Callable[..., None] = getattr(torch, _KERNELS[name])
    return fn


def check_fusable(owner: str, rule: FusedRule, params: Sequence[torch.Tensor]) -> None:
    """Refuse parameters torch's fused CPU kernels cannot update, and a torch without the kernel."""
    for p in params:
        if p.is_complex():
            raise UnsupportedError(
                f"{owner}: fused=True does not support complex parameters (got dtype={p.dtype}; torch's "
                "fused kernels refuse them too); drop fused: the foreach step updates complex parameters "
                "as torch does"
            )
        if p.device.type != "cpu":
            raise UnsupportedError(
                f"{owner}: fused=True runs torch's fused CPU kernels on ravine's CPU step counts; got a "
                f"parameter on {p.device}; drop fused (the foreach step), or use torch.optim's fused "
                "optimizer on that device"
            )
        if p.dtype not in _FLOAT_DTYPES:
            raise UnsupportedError(
                f"{owner}: fused=True supports float16, bfloat16, float32 and float64 parameters, got "
                f"dtype={p.dtype}; drop fused"
            )
    try:
        kernel(rule.kernel)
    except UnsupportedError as error:
        raise UnsupportedError(f"{owner}: {error}") from None
