r"""Checkpoints as plain data, and torch.optim states mapped (or refused) at load.

**Plain data.** ``ChainOptimizer.state_dict()`` holds only tensors, numbers, strings, booleans, ``None`` and
lists/tuples/dicts of them, so ``torch.load(path)`` (``weights_only=True``, torch's default) reads it. A
group's :class:`~ravine.optim.Transform` and :class:`~ravine.optim.Schedule` are stored as their
description, ``{"ravine": "Adam", "args": {"beta1": 0.9, ...}}`` (nested for chains and composite
schedules), and rebuilt on load through their constructors, so a checkpoint is validated like fresh
arguments. A :class:`~ravine.optim.Lambda` schedule holds code: it is stored by the function's qualified name
and, on load, must match the function of the optimizer loading it.

**torch.optim states.** A state saved by torch's optimizer of the same rule loads exactly; the step count,
the state tensors and every group key carry over (``maximize`` and ``foreach`` honoured; ``fused=True``
honoured where ravine runs torch's fused kernel — adam, adamw, sgd/momentum, adagrad — and refused
elsewhere; ``capturable`` and ``differentiable`` refused when ``True``). A state saved by torch's fused
optimizer is the same state and loads the same way; a loaded group keeps the checkpoint's ``fused``, as in
torch:

============  ==============================  =================================================================
ravine        torch state it maps             notes
============  ==============================  =================================================================
sgd/momentum  SGD ``momentum_buffer``         torch keeps no step count: a buffer means ≥ 1 update taken, so
                                              the count is set to 1 (a ravine ``schedule=`` on such a group is
                                              refused: its position would be unknown)
adagrad       Adagrad ``step``, ``sum``       ``lr_decay`` and ``initial_accumulator_value`` from the group
rmsprop       RMSprop ``step``,               ``momentum_buffer`` when momentum > 0, ``grad_avg`` when centered
              ``square_avg``
adam          Adam ``step``, ``exp_avg``,     ``max_exp_avg_sq`` with amsgrad; ``decoupled_weight_decay=True``
              ``exp_avg_sq``                  (torch's AdamW group) becomes AdamW's decoupled decay
adamw         AdamW (same keys)
radam         RAdam (same keys)               ``decoupled_weight_decay`` as in torch
nadam, ...    NAdam, Adamax, Adadelta, Rprop  torch's keys (``mu_product``, ``exp_inf``, ``acc_delta``, ``prev``...)
adafactor     Adafactor ``step``,             ``row_var`` (…, R, 1) / ``col_var`` (…, 1, C) for tensors of 2+
              ``row_var``, ``col_var``,       dimensions, ``variance`` for the others: each parameter's keys and
              ``variance``                    shapes are checked (:func:`expected_state`)
muon          Muon ``momentum_buffer``        no step count (as SGD): set to 1, which Muon's rule never reads; a
                                              ravine ``schedule=`` on such a group is refused
============  ==============================  =================================================================

Anything else is refused by :func:`check_loaded_state` *at load*, with a :class:`~ravine.errors.DataError`
naming the group, the parameter and what differs (a missing or extra state key, a shape, a non-integer step,
an unknown group key).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ravine.errors import ConfigError, DataError
from ravine.optim._schedules import Lambda, Schedule
from ravine.optim._transforms import Transform

__all__ = [
    "call_with_fields",
    "check_loaded_state",
    "describe",
    "expected_state",
    "loaded_group",
    "normalize_step",
    "rebuild",
]

_TAG = "ravine"


def _registry() -> dict[str, type]:
    """Every Transform and Schedule class by name (ravine's and user subclasses)."""
    found: dict[str, type] = {}
    stack: list[type] = [Transform, Schedule]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.__name__, cls)
        stack.extend(cls.__subclasses__())
    return found


def describe(value: Any) -> Any:
    """``value`` as plain data: Transforms and Schedules become ``{"ravine": name, "args": {...}}``."""
    if isinstance(value, Lambda):
        fn = value.fn
        return {
            _TAG: "Lambda",
            "fn": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}",
        }
    if isinstance(value, Transform | Schedule):
        args = {k: describe(v) for k, v in vars(value).items() if not k.startswith("_")}
        return {_TAG: type(value).__name__, "args": args}
    if isinstance(value, tuple):
        return tuple(describe(v) for v in value)
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    raise DataError(
        f"state_dict: cannot store {value!r} ({type(value).__name__}) as plain data; keep param-group "
        "values to numbers, strings, tensors, ravine Transforms and Schedules"
    )


def rebuild(value: Any, *, current: Any = None, where: str = "load_state_dict") -> Any:
    """Inverse of :func:`describe` (``current``: the loading optimizer's value, used for Lambda)."""
    if isinstance(value, dict) and _TAG in value:
        name = value[_TAG]
        if name == "Lambda":
            if isinstance(current, Lambda) and describe(current) == value:
                return current
            raise DataError(
                f"{where}: the checkpoint's schedule is Lambda({value.get('fn')}), a Python function that a "
                "checkpoint cannot hold; build the optimizer with that same Lambda before loading"
            )
        cls = _registry().get(name)
        if cls is None:
            raise DataError(
                f"{where}: unknown ravine part {name!r} in the checkpoint; import its module first"
            )
        args = {k: rebuild(v, where=where) for k, v in dict(value.get("args", {})).items()}
        return _construct(cls, args, where)
    if isinstance(value, tuple):
        return tuple(rebuild(v, where=where) for v in value)
    if isinstance(value, list):
        return [rebuild(v, where=where) for v in value]
    if isinstance(value, dict):  # e.g. inject_hyperparams' name -> constant or schedule
        return {k: rebuild(v, where=where) for k, v in value.items()}
    return value


@functools.lru_cache(maxsize=64)
def _signature(cls: type) -> inspect.Signature:
    return inspect.signature(cls)


def call_with_fields(cls: type, fields: Mapping[str, Any]) -> Any:
    """``cls(...)`` called with the fields named like its constructor's parameters (positional-only and
    ``*args`` ones passed by position); the constructor validates them as fresh arguments."""
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for name, parameter in _signature(cls).parameters.items():
        if name not in fields:
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            positional.extend(fields[name])
        elif parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional.append(fields[name])
        else:
            keywords[name] = fields[name]
    return cls(*positional, **keywords)


def _construct(cls: type, args: dict[str, Any], where: str) -> Any:
    """``cls`` from its stored fields, through its constructor (so the values are validated again)."""
    try:
        built = call_with_fields(cls, args)
    except TypeError as error:
        raise DataError(f"{where}: cannot rebuild {cls.__name__} from {args!r}: {error}") from None
    stored = describe(args)
    rebuilt = {k: describe(v) for k, v in vars(built).items() if not k.startswith("_")}
    if rebuilt != stored:
        raise DataError(f"{where}: {cls.__name__} rebuilt from {stored!r} differs: {rebuilt!r}")
    return built


def normalize_step(value: Any, where: str) -> torch.Tensor:
    """A stored update count as torch's 0-d float32 CPU tensor; refuses negative or fractional counts."""
    raw = value.detach().reshape(-1) if isinstance(value, torch.Tensor) else value
    if isinstance(raw, torch.Tensor):
        if raw.numel() != 1:
            raise DataError(f"{where}: 'step' must be one number, got a tensor of shape {tuple(value.shape)}")
        raw = raw.item()
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise DataError(f"{where}: 'step' must be an integer count >= 0, got {value!r}")
    if raw < 0 or raw != int(raw):
        raise DataError(f"{where}: 'step' must be an integer count >= 0, got {raw!r}")
    return torch.tensor(float(raw), dtype=torch.float32)


def expected_state(transform: Transform, param: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The state keys ``transform`` keeps for ``param`` and their shapes (from an init on a meta tensor, so
    nothing is allocated): e.g. Adafactor's ``row_var`` (…, R, 1) and ``col_var`` (…, 1, C) for a matrix,
    ``variance`` for a vector; NAdam's 0-d ``mu_product``."""
    meta = torch.empty(param.shape, dtype=param.dtype, device="meta")
    return {
        key: tuple(values[0].shape) for key, values in transform.init([meta]).items() if values[0] is not None
    }


def check_loaded_state(
    entry: Mapping[str, Any],
    param: torch.Tensor,
    shapes: Mapping[str, tuple[int, ...]],
    *,
    where: str,
    has_schedule: bool,
) -> dict[str, Any]:
    """A loaded per-parameter state checked against the rule's keys and ``shapes``; returns it with a tensor
    step.

    Raises:
        DataError: a key missing or extra, a tensor of another shape, or a bad step count.
    """
    tensors = {k: v for k, v in entry.items() if k != "step" and v is not None}
    if not tensors and "step" not in entry:
        return {}
    keys = list(shapes)
    missing = [k for k in keys if k not in tensors]
    extra = [k for k in tensors if k not in keys]
    if missing or extra:
        raise DataError(
            f"{where}: the saved state has {sorted(tensors)} but this rule keeps {keys} "
            f"(missing {missing}, unexpected {extra}); was it saved by another optimizer or settings "
            "(e.g. amsgrad, centered, momentum)?"
        )
    out: dict[str, Any] = {}
    for key, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise DataError(f"{where}: state {key!r} must be a tensor, got {type(tensor).__name__}")
        expected = shapes[key]
        if tuple(tensor.shape) != expected:
            raise DataError(f"{where}: state {key!r} has shape {tuple(tensor.shape)}, expected {expected}")
        out[key] = tensor.detach().clone()  # never alias the source (e.g. a live torch optimizer's state)
    if "step" in entry:
        out["step"] = normalize_step(entry["step"], where)
    elif has_schedule:
        raise DataError(
            f"{where}: the saved state has no update count (torch's SGD keeps none) but this group has a "
            "ravine schedule, whose position would be unknown; drop schedule= or use a torch LR scheduler"
        )
    else:
        out["step"] = torch.tensor(1.0)  # a momentum buffer exists: at least one update was taken
    return out


def loaded_group(
    index: int,
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    defaults: Mapping[str, Any],
    *,
    check: Callable[[Mapping[str, Any]], None],
    where: str,
) -> dict[str, Any]:
    """The saved group ``theirs`` rebuilt, completed from the defaults, and checked for ``ours``."""
    if not isinstance(theirs, Mapping) or "params" not in theirs:
        raise DataError(f"{where}: group {index} must be a dict with 'params', got {theirs!r}")
    if len(theirs["params"]) != len(ours["params"]):
        raise DataError(
            f"{where}: group {index} has {len(theirs['params'])} parameters in the checkpoint, "
            f"{len(ours['params'])} here"
        )
    group = dict(theirs)
    for key in ("transform", "schedule"):
        if key in group:
            group[key] = rebuild(group[key], current=ours.get(key), where=where)
    for key, value in defaults.items():
        group.setdefault(key, value)
    known = {*defaults, *ours, "params", "initial_lr", "param_names"}
    unknown = sorted(str(k) for k in group if k not in known)
    if unknown:
        raise DataError(
            f"{where}: group {index} of the checkpoint has keys {unknown} that this optimizer does not use; "
            "was it saved by another optimizer?"
        )
    try:
        check({**group, "params": ours["params"]})
    except ConfigError as error:
        raise ConfigError(f"{where}: group {index}: {error}") from None
    return group
