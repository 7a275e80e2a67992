r"""Injected hyper-parameters (optax's ``inject_hyperparams``): a rule's numeric settings as state.

``inject_hyperparams(rule, "eps", beta1=schedule, max_norm=1.0)`` wraps any :class:`~ravine.optim.Transform` (a chain
included) so that the named numeric hyper-parameters of its parts are no longer fixed at construction:

* a :class:`~ravine.optim.Schedule` makes one a function of the step: the update that follows t updates uses
  ``schedule(t)`` (as a learning-rate schedule counts);
* a number makes one a constant that the user may change mid-run, like optax's
  ``opt_state.hyperparams["b2"] = 0.95``: :meth:`ChainOptimizer.set_hyperparams` (validated at the write)
  and :meth:`ChainOptimizer.hyperparams` (the values of the last update). In a
  :class:`~ravine.optim.ChainOptimizer` the current constants live in each param group as
  ``group["hyperparams"]`` (canonical name → number), so ``state_dict()`` saves them as plain data and
  ``load_state_dict()`` restores and re-validates them (``torch.load(weights_only=True)`` reads it);
* with no names at all, every float hyper-parameter of the rule is injected at its current value.

The learning rate is not a part's hyper-parameter: it stays ``group["lr"]`` × ``schedule=`` (torch's LR
schedulers write ``group["lr"]``). The presets (``ro.adam(...)``, ...) build their rule from group keys that
can already be written torch's way (``group["betas"] = (0.9, 0.95)``); to schedule one of a preset's settings,
build its rule from the parts and inject into that.

**Names.** A part's own attribute (``"beta1"``, ``"max_norm"``, ``"weight_decay"``), prefixed by the part's
index in a chain (``"2.beta1"``), by ``"inner."`` inside :class:`~ravine.optim.MultiSteps`, and by an element
index in a tuple (Rprop's ``"etas.0"``). A suffix that names one hyper-parameter only is enough
(``"beta1"`` for ``"2.beta1"``); an ambiguous or unknown name is refused with the valid ones listed. Flags and
strings (``amsgrad``, ``nesterov``, ``mask``) are structure, not numbers: they cannot be injected, and integer
ones (``ns_steps``, ``every``) only as constants (a schedule gives floats). A hyper-parameter that only sets
the initial state (AdagradSum's ``initial_accumulator_value``) reaches only parameters whose state is created
after the change.

**What runs.** At each update the rule runs as built with the current values: the parts that hold a changed
value are rebuilt *through their constructors* (validated as fresh arguments, so a schedule that leaves a
part's range raises :class:`~ravine.errors.ConfigError` naming the update, before that group changes), the
others reused, the chain joined as ``chain()`` joins it; so the result is bit-identical to the same rule
built by hand with those values. The last 8 builds are kept by their values (a bounded memo: a value that
changes every step never grows it). The
wrapped rule keeps the inner rule's state keys, so checkpoints of the parameters' state are the inner rule's.

**torch.compile.** Constants, written or not, trace into the graph; dynamo specialises a float on its first
value and makes it dynamic at its first change, so each injected constant costs at most one recompile (at its
first change), however often it is written.
A *schedule* needs the step count as a Python number, which the compiled step keeps as a tensor (so that
steps do not recompile): with a scheduled hyper-parameter the compiled optimizer step runs eagerly instead
(one graph break per step, no recompiles, the same numbers); ``fullgraph=True`` then refuses, with the
way out: inject it as a constant and write each step's value with ``set_hyperparams``. Under compile, write
through ``set_hyperparams`` (checked there): a value put into ``group["hyperparams"]`` by hand is checked
only by eager steps.

Example:
    >>> import torch
    >>> from ravine.optim import Adam, ChainOptimizer, LinearSchedule, inject_hyperparams
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> rule = inject_hyperparams(Adam(), "beta2", beta1=LinearSchedule(0.5, 1.0, 10, lr=0.9))
    >>> opt = ChainOptimizer([w], rule, lr=0.1)
    >>> w.grad = torch.ones(2)
    >>> opt.step()
    >>> opt.hyperparams()
    {'beta2': 0.999, 'beta1': 0.45}
    >>> opt.set_hyperparams(beta2=0.99)  # the next update uses β₂ = 0.99
"""

from __future__ import annotations

import copy
import inspect
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch

from ravine.errors import ConfigError, RavineError, UnsupportedError
from ravine.optim._checkpoint import call_with_fields
from ravine.optim._scalars import Scalar
from ravine.optim._schedules import Schedule
from ravine.optim._transforms import Chain, Transform, TransformState, _torch_rounding

__all__ = ["HyperValue", "InjectHyperparams", "inject_hyperparams", "resolve", "steps_in_python"]

HyperValue: TypeAlias = float | int | Schedule
"""What an injected hyper-parameter is: a constant (float, or int for an integer setting) or a Schedule."""
_OWNER = "inject_hyperparams"
_MEMO = 8
"""Rules kept built (by values): a few groups with different written values each hit; a schedule that moves
every step replaces the oldest."""


@dataclass(frozen=True)
class _Leaf:
    """One numeric hyper-parameter of the wrapped rule: where it is and what it needs."""

    path: tuple[str, ...]
    integer: bool
    value: float | int


_KINDS = {bool: "flag (True/False)", str: "string", type(None): "setting left unset (None)"}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _public(part: Transform) -> dict[str, Any]:
    return {k: v for k, v in vars(part).items() if not k.startswith("_")}


def _walk(node: Any, path: tuple[str, ...], found: dict[str, _Leaf], flags: dict[str, str]) -> None:
    """Collect the numeric leaves under ``node`` (and, for the error messages, its flags and strings)."""
    if isinstance(node, InjectHyperparams):
        raise ConfigError(
            f"{_OWNER}: the rule already contains an inject_hyperparams ({node!r}); inject once, around the "
            "whole rule, naming every hyper-parameter there"
        )
    if isinstance(node, Chain):
        for i, part in enumerate(node.transforms):
            _walk(part, (*path, str(i)), found, flags)
    elif isinstance(node, Transform):
        arguments = inspect.signature(type(node)).parameters
        for key, value in _public(node).items():
            if key in arguments:
                _walk(value, (*path, key), found, flags)
            else:  # derived or fixed by the class (AdagradMean's initial_accumulator_value): not a setting
                flags[".".join((*path, key))] = (
                    f"value {type(node).__name__} fixes (not a constructor argument)"
                )
    elif isinstance(node, tuple | list):
        for i, item in enumerate(node):
            _walk(item, (*path, str(i)), found, flags)
    elif _is_number(node):
        found[".".join(path)] = _Leaf(path, isinstance(node, int), node)
    elif path:
        flags[".".join(path)] = _KINDS.get(type(node), type(node).__name__)


def _numeric(rule: object) -> tuple[dict[str, _Leaf], dict[str, str]]:
    """The numeric hyper-parameters of ``rule`` by full name, and (for the messages) its flags and strings."""
    if not isinstance(rule, Transform):
        raise ConfigError(f"{_OWNER}: the rule must be a ravine Transform, got {rule!r}")
    leaves: dict[str, _Leaf] = {}
    flags: dict[str, str] = {}
    _walk(rule, (), leaves, flags)
    return leaves, flags


def _construct(cls: type, attrs: Mapping[str, Any]) -> Transform:
    """``cls`` built from its public attributes through its constructor (the values are validated again)."""
    built = call_with_fields(cls, attrs)
    if not isinstance(built, Transform):
        raise ConfigError(f"{_OWNER}: {cls.__name__}(...) did not build a Transform")
    return built


def _rebuilt(node: Any, changes: Mapping[tuple[str, ...], Any], *, validated: bool = True) -> Any:
    """``node`` with the leaves at ``changes`` (paths relative to it) replaced, rebuilt bottom-up; subtrees
    without a change are the original objects.

    ``validated``: through the constructors (values checked, as by hand). Otherwise shallow copies with the
    new values set (what a compiled step traces: the constructors' checks cannot run on dynamo's symbolic
    floats; no built-in rule derives anything from a numeric hyper-parameter at construction, which
    ``test_optim_inject`` checks for every part).
    """
    if () in changes:
        return changes[()]
    heads: dict[str, dict[tuple[str, ...], Any]] = {}
    for path, value in changes.items():
        heads.setdefault(path[0], {})[path[1:]] = value
    if isinstance(node, Chain):
        parts = list(node.transforms)
        for head, sub in heads.items():
            parts[int(head)] = _rebuilt(parts[int(head)], sub, validated=validated)
        # What chain(*parts) builds, without recomputing what only the structure decides (state keys, scope):
        # the same parts, with torch's rounding for a Momentum after a rule (a fresh one needs it again).
        joined = copy.copy(node)
        joined.transforms = tuple(_torch_rounding(parts)) if validated else tuple(parts)
        return joined
    if isinstance(node, tuple | list):
        items = list(node)
        for head, sub in heads.items():
            items[int(head)] = _rebuilt(items[int(head)], sub, validated=validated)
        return type(node)(items)
    assert isinstance(node, Transform)
    attrs = {head: _rebuilt(getattr(node, head), sub, validated=validated) for head, sub in heads.items()}
    if validated:
        return _construct(type(node), {**_public(node), **attrs})
    part = copy.copy(node)
    for key, value in attrs.items():
        setattr(part, key, value)
    return part


def _names(leaves: Mapping[str, _Leaf]) -> str:
    return ", ".join(repr(name) for name in leaves) or "none"


def _canonical(given: str, leaves: Mapping[str, _Leaf], flags: Mapping[str, str], rule: Transform) -> str:
    """The full name that ``given`` (a full name or a unique suffix) refers to."""
    if not isinstance(given, str):
        raise ConfigError(f"{_OWNER}: hyper-parameter names are strings, got {given!r}")
    if given in leaves:
        return given
    matches = [name for name in leaves if name.endswith("." + given)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(
            f"{_OWNER}: {given!r} is ambiguous in {rule!r}: it names {matches}; pass one of these full names"
        )
    flag = next((n for n in flags if n == given or n.endswith("." + given)), None)
    if flag is not None:
        raise ConfigError(
            f"{_OWNER}: {flag!r} of {rule!r} is a {flags[flag]}, not a numeric hyper-parameter, so it cannot be "
            f"injected (it fixes the rule's structure; build one rule per value); numeric ones: {_names(leaves)}"
        )
    raise ConfigError(
        f"{_OWNER}: {rule!r} has no numeric hyper-parameter {given!r}; valid names: {_names(leaves)}"
    )


def _checked_value(name: str, leaf: _Leaf, value: object) -> HyperValue:
    """``value`` for ``leaf`` as stored: a Schedule, an int for an integer setting, a float otherwise."""
    if isinstance(value, Schedule):
        if leaf.integer:
            raise ConfigError(
                f"{_OWNER}: {name} is an integer setting (now {leaf.value!r}) and a Schedule gives floats; "
                f"inject it as a constant int ({name}={leaf.value!r}) and change it with set_hyperparams"
            )
        return value
    if not _is_number(value):
        hint = "; pass float(value)" if isinstance(value, torch.Tensor) and value.numel() == 1 else ""
        raise ConfigError(
            f"{_OWNER}: {name} must be a number or a ravine Schedule, got {value!r} ({type(value).__name__}){hint}"
        )
    assert isinstance(value, int | float)
    if leaf.integer:
        if not isinstance(value, int):
            raise ConfigError(f"{_OWNER}: {name} is an integer setting, got {name}={value!r}")
        return value
    if not math.isfinite(value):
        raise ConfigError(f"{_OWNER}: {name} must be finite, got {name}={value!r}")
    return float(value)


class InjectHyperparams(Transform):
    """``inner`` with some numeric hyper-parameters held as constants or schedules (see the module docstring).

    Build it with :func:`inject_hyperparams`.

    Args:
        inner: the rule, e.g. ``chain(ClipByGlobalNorm(1.0), WeightDecay(1e-4), Adam())``.
        hyperparams: full or unique-suffix name → a number or a :class:`~ravine.optim.Schedule`; stored under
            full names.

    Raises:
        ConfigError: an unknown or ambiguous name (the valid ones are listed), a flag or string, a value
            that is not a number or Schedule, a Schedule for an integer setting, or a value the part refuses.
    """

    def __init__(self, inner: Transform, hyperparams: Mapping[str, HyperValue]) -> None:
        if not isinstance(hyperparams, Mapping):
            raise ConfigError(f"{_OWNER}: hyperparams must be a dict of name -> value, got {hyperparams!r}")
        leaves, flags = _numeric(inner)
        chosen: dict[str, HyperValue] = {}
        for given, value in hyperparams.items():
            name = _canonical(given, leaves, flags, inner)
            if name in chosen:
                raise ConfigError(f"{_OWNER}: {name!r} is given twice (as {given!r} and another name)")
            chosen[name] = _checked_value(name, leaves[name], value)
        if not chosen:
            raise ConfigError(f"{_OWNER}: name at least one hyper-parameter of {inner!r}: {_names(leaves)}")
        self.inner = inner
        self.hyperparams = chosen
        self._leaves = {name: leaves[name] for name in chosen}
        self._scheduled = tuple(name for name, value in chosen.items() if isinstance(value, Schedule))
        self._constant_names = frozenset(name for name in chosen if name not in self._scheduled)
        self._memo: OrderedDict[tuple[float | int, ...], Transform] = OrderedDict()
        self.reads_params = inner.reads_params
        self.scope = inner.scope
        self.defines_effective_lr = inner.defines_effective_lr
        self.no_effective_lr = inner.no_effective_lr
        self._hash = hash((InjectHyperparams, inner, tuple((k, repr(v)) for k, v in chosen.items())))
        self.at(1)  # every constant and each schedule's first value must suit its part now

    # ------------------------------------------------------------------------------------------ values
    def constants(self) -> dict[str, float | int]:
        """The injected constants at construction (full name → value): a param group's initial values."""
        return {k: v for k, v in self.hyperparams.items() if not isinstance(v, Schedule)}

    def scheduled(self) -> tuple[str, ...]:
        """Full names of the hyper-parameters that follow a schedule."""
        return self._scheduled

    def canonical(self, given: str) -> str:
        """The full name of an injected hyper-parameter given by its full name or a unique suffix."""
        leaves = self._leaves
        if given in leaves:
            return given
        matches = [name for name in leaves if name.endswith("." + str(given))]
        if len(matches) == 1:
            return matches[0]
        raise ConfigError(
            f"{_OWNER}: {given!r} is not one of the injected hyper-parameters ({_names(leaves)}); "
            "inject it when building the rule to change it during the run"
        )

    def written(
        self, current: Mapping[str, Any] | None, updates: Mapping[str, object], owner: str
    ) -> dict[str, float | int]:
        """A param group's constants ``current`` with ``updates`` (full or suffix name → number) applied, checked
        (names, kinds, and the rule built with them); a new dict, floats for float settings."""
        out = dict(self.constants() if current is None else current)
        for given, value in updates.items():
            name = self.canonical(given)
            if name in self._scheduled:
                raise ConfigError(
                    f"{owner}: {name} follows {self.hyperparams[name]!r}; a write would be overwritten at the "
                    "next update (inject it as a constant to set it by hand)"
                )
            out[name] = _checked_value(name, self._leaves[name], value)
        self.check_current(out, owner)
        return out

    def values(self, step: int, current: Mapping[str, Any] | None = None) -> dict[str, float | int]:
        """Every injected value at update ``step`` (from 1): schedules at ``step − 1``, constants from
        ``current`` (a param group's ``"hyperparams"``) or from construction."""
        out: dict[str, float | int] = {}
        for name, value in self.hyperparams.items():
            if isinstance(value, Schedule):
                out[name] = value(step - 1)
            else:
                out[name] = value if current is None else current.get(name, value)
        return out

    def check_current(self, current: object, owner: str) -> None:
        """Refuse a param group's ``"hyperparams"`` that is not exactly this rule's constants, by name and kind."""
        constants = self.constants()
        if not isinstance(current, Mapping):
            raise ConfigError(f"{owner}: the group's 'hyperparams' must be a dict, got {current!r}")
        missing = sorted(set(constants) - set(current))
        extra = sorted(str(k) for k in current if k not in constants)
        if missing or extra:
            scheduled = [k for k in extra if k in self._scheduled]
            why = f" ({scheduled} follow a schedule: a write would be overwritten)" if scheduled else ""
            raise ConfigError(
                f"{owner}: the group's 'hyperparams' has {sorted(map(str, current))} but the rule injects the "
                f"constants {sorted(constants)} (missing {missing}, unexpected {extra}){why}"
            )
        for name, value in current.items():
            _checked_value(name, self._leaves[name], value)
        self.at(1, current)

    # -------------------------------------------------------------------------------------- the rule
    def at(self, step: Scalar, current: Mapping[str, Any] | None = None) -> Transform:
        """The inner rule built with the values of update ``step`` (a tensor step: the compiled path,
        where a schedule is refused)."""
        if isinstance(step, torch.Tensor):
            if self._scheduled:
                raise UnsupportedError(
                    f"{_OWNER}: {list(self._scheduled)} follow a schedule, which needs the step count as a "
                    "Python number, but a compiled step keeps it as a tensor; under torch.compile inject "
                    "them as constants and write each step's value with optimizer.set_hyperparams(...) "
                    "(one recompile in all), or compile the forward/backward only"
                )
            values = self.values(1, current)
        else:
            values = self.values(int(step), current)
        if current is not None and current.keys() != self._constant_names:
            self.check_current(current, _OWNER)
        if torch.compiler.is_compiling():
            # No memo (dynamo would specialise on every value that keys it) and no constructor checks (they
            # cannot run on symbolic floats): the values were checked when written (set_hyperparams, load).
            # Every leaf is set (no comparison with the inner rule's value, which would guard on it).
            every = {self._leaves[name].path: value for name, value in values.items()}
            traced: Transform = _rebuilt(self.inner, every, validated=False)
            return traced
        key = tuple(values.values())
        try:
            built = self._memo.get(key)
        except TypeError:  # an unhashable value written into the group: the constructor will say why
            return self._build(values, step)
        if built is None:
            built = self._build(values, step)
            self._memo[key] = built
            while len(self._memo) > _MEMO:
                self._memo.popitem(last=False)
        else:
            self._memo.move_to_end(key)
        return built

    def _changes(self, values: Mapping[str, float | int]) -> dict[tuple[str, ...], float | int]:
        """The leaves whose value differs from the inner rule's, by path."""
        leaves = self._leaves
        return {
            leaves[name].path: value
            for name, value in values.items()
            if value != leaves[name].value or type(value) is not type(leaves[name].value)
        }

    def _build(self, values: Mapping[str, float | int], step: Scalar) -> Transform:
        changes = self._changes(values)
        if not changes:
            return self.inner
        try:
            built: Transform = _rebuilt(self.inner, changes)
        except RavineError as error:
            where = "" if isinstance(step, torch.Tensor) else f" at update {int(step)}"
            scheduled = {k: self.hyperparams[k] for k in self._scheduled}
            raise ConfigError(
                f"{_OWNER}{where}: the values {dict(values)} (schedules: {scheduled}) do not suit the rule: {error}"
            ) from None
        except TypeError as error:
            raise ConfigError(
                f"{_OWNER}: cannot rebuild {self.inner!r} with {dict(values)}: {error}"
            ) from None
        return built

    # ------------------------------------------------------------------------------ Transform protocol
    def init(self, params: Sequence[torch.Tensor]) -> TransformState:
        return self.inner.init(params)

    def state_keys(self) -> tuple[str, ...]:
        return self.inner.state_keys()

    def check_params(self, owner: str, params: Sequence[torch.Tensor]) -> None:
        self.inner.check_params(owner, params)

    def update(
        self, updates: list[torch.Tensor], state: TransformState, params: list[torch.Tensor], *, step: Scalar
    ) -> list[torch.Tensor]:
        return self.at(step).update(updates, state, params, step=step)

    def apply(
        self,
        updates: list[torch.Tensor],
        state: TransformState,
        params: list[torch.Tensor],
        *,
        step: Scalar,
        lr: Scalar,
    ) -> None:
        self.at(step).apply(updates, state, params, step=step, lr=lr)

    def denominator(self, state: TransformState, *, step: Scalar) -> list[torch.Tensor] | None:
        return self.at(step).denominator(state, step=step)

    def momentum_buffer(self, state: TransformState) -> list[torch.Tensor] | None:
        return self.inner.momentum_buffer(state)

    def __repr__(self) -> str:
        values = ", ".join(f"{k!r}: {v!r}" for k, v in self.hyperparams.items())
        return f"inject_hyperparams({self.inner!r}, {{{values}}})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, InjectHyperparams)
            and self.inner == other.inner
            and self.hyperparams == other.hyperparams
        )

    def __hash__(self) -> int:
        return self._hash


def inject_hyperparams(transform: Transform, /, *names: str, **values: HyperValue) -> InjectHyperparams:
    """``transform`` with numeric hyper-parameters injected as constants or schedules (module docstring).

    Args:
        transform: any rule, e.g. ``chain(ClipByGlobalNorm(1.0), Adam())``.
        *names: hyper-parameters to inject at their current values (full names or unique suffixes); with
            neither names nor values, every float hyper-parameter of the rule.
        **values: name → a number or a :class:`~ravine.optim.Schedule`, e.g. ``beta1=CosineDecay(100)``
            (a full name such as ``"2.beta1"`` through ``**{"2.beta1": ...}``).

    Example:
        >>> from ravine.optim import Adam, ClipByGlobalNorm, CosineDecay, chain, inject_hyperparams
        >>> rule = inject_hyperparams(chain(ClipByGlobalNorm(1.0), Adam()), "eps", max_norm=CosineDecay(100))
        >>> rule.hyperparams
        {'1.eps': 1e-08, '0.max_norm': CosineDecay(t_max=100, lr=1.0, eta_min=0.0)}
    """
    leaves, flags = _numeric(transform)
    chosen: dict[str, HyperValue] = {}
    if not names and not values:
        chosen = {name: leaf.value for name, leaf in leaves.items() if not leaf.integer}
    for given in names:
        chosen[given] = leaves[_canonical(given, leaves, flags, transform)].value
    for given, value in values.items():
        if given in chosen:
            raise ConfigError(f"{_OWNER}: {given!r} is given twice")
        chosen[given] = value
    return InjectHyperparams(transform, chosen)


def steps_in_python(transform: Transform) -> bool:
    """Whether ``transform`` needs the step count as a Python number (a scheduled injected hyper-parameter):
    a compiled optimizer step then runs it eagerly, outside the graph."""
    return isinstance(transform, InjectHyperparams) and bool(transform.scheduled())


def resolve(transform: Transform, group: Mapping[str, Any], step: Scalar) -> Transform:
    """The rule a param group runs at update ``step``: an :class:`InjectHyperparams` built with the group's
    current values (``group["hyperparams"]``), any other rule as it is."""
    if isinstance(transform, InjectHyperparams):
        return transform.at(step, group.get("hyperparams"))
    return transform
