r"""ravine.optim — θ ← θ − (η_t/σ_t)·m_t as composable parts behind a drop-in torch optimizer.

Contract for other engineers (keep these names and signatures):

**Transforms** (:mod:`ravine.optim._transforms`, :mod:`ravine.optim._preconditioners`). A
:class:`Transform` holds hyper-parameters only (Python floats); state is a
``TransformState = dict[str, list[torch.Tensor]]`` (one tensor per parameter per key) owned by the caller:

* ``init(params) -> TransformState``
* ``update(updates, state, params, *, step) -> list[Tensor]`` — ``step`` counts from 1. Inputs are read-only
  (never modified in place); the returned tensors are new or alias state (e.g. the momentum buffer), so
  treat them as read-only until the next update. The direction is unit-free: the caller applies
  θ ← θ − η_t·d with its own η_t (float or tensor, e.g. one per configuration).
* ``denominator(state, *, step) -> list[Tensor] | None`` — σ_t per element (None when the transform does
  not divide). For Adam/RAdam σ_t includes the bias correction of m, so (η_t/σ_t)·m_t is the step.
* ``momentum_buffer(state)`` — the momentum buffer m_t, or None; ``apply(..., lr=)`` — fused update + step.
* ``chain(*transforms)`` composes left to right.

Weight decay: coupled L2 (:class:`WeightDecay`, g + λθ, torch's SGD/Adam/RMSprop/Adagrad) goes *before* the
preconditioner; decoupled (:class:`DecoupledWeightDecay`, AdamW) goes *after* it and needs no learning
rate: θ − η(d + λθ) = (1 − ηλ)θ − ηd.

**Schedules** (:mod:`ravine.optim._schedules`): ``schedule(step) -> float`` with ``step`` = updates
already taken (0 first, as torch's LR schedulers); ``schedule.table(n)`` → float64 tensor for 0..n−1.

**Optimizer**: :class:`ChainOptimizer` (a ``torch.optim.Optimizer``): η_t = group["lr"] × schedule(t);
``step(closure)``, ``zero_grad()``, param groups, ``state_dict()``, torch LR schedulers;
``effective_lr(p)``, ``momentum_buffer(p)``, ``lr_summary(model.named_parameters())`` → :class:`LayerLR`,
computed on demand from state. NaN/Inf gradients raise :class:`~ravine.errors.NonFiniteError` before any
change (``nonfinite="skip"`` skips and counts). Presets ``sgd, momentum, adagrad, rmsprop, adam, adamw,
radam`` and ``nadam, adamax, adadelta, rprop, adafactor, muon`` take torch.optim's argument names, defaults and keywords
(``maximize``, ``foreach``; ``fused=True`` on adam, adamw, sgd, momentum and adagrad runs torch's own fused
CPU kernel on the same state (:mod:`ravine.optim._fused`) and is refused elsewhere;
``capturable``/``differentiable`` refused with what to use instead) and
match torch.optim to rtol 1e-5 (float32); ``lion`` follows Chen et al. 2023. More parts: NAdam, Adamax,
Adadelta, Lion, Rprop, Adafactor (factored σ_t), MuonMomentum + NewtonSchulz (orthogonalised m_t);
ClipByGlobalNorm, ClipByValue, AdaptiveClip (pre-clip norm kept); MultiSteps;
weight-decay masks (``mask="matrices"``, :func:`weight_decay_groups`); :func:`inject_hyperparams` (optax's:
any numeric hyper-parameter of a rule as a constant the user may change mid-run, ``set_hyperparams``, or a
:class:`Schedule` of the step; saved in ``state_dict()``). ``state_dict()`` is plain data
(``torch.load(weights_only=True)``); complex parameters are updated as torch does (``view_as_real``).

Example:
    >>> import torch
    >>> from ravine.optim import ChainOptimizer, CosineDecay, Momentum, WeightDecay, chain
    >>> model = torch.nn.Linear(4, 1)
    >>> opt = ChainOptimizer(
    ...     model.parameters(), chain(WeightDecay(1e-4), Momentum(0.9)), lr=0.1, schedule=CosineDecay(100)
    ... )
    >>> model(torch.ones(1, 4)).sum().backward()
    >>> opt.step()
    >>> round(opt.effective_lr(model.bias).item(), 6)  # η_0 = 0.1 × cos-schedule(0) = 0.1, σ = 1
    0.1
"""

from __future__ import annotations

from ravine.optim._accumulate import MultiSteps
from ravine.optim._adaptive import Adadelta, Adamax, NAdam
from ravine.optim._clipping import AdaptiveClip, ClipByGlobalNorm, ClipByValue
from ravine.optim._factored import Adafactor
from ravine.optim._inject import InjectHyperparams, inject_hyperparams
from ravine.optim._masks import weight_decay_groups
from ravine.optim._optimizer import (
    ChainOptimizer,
    LayerLR,
    NonFinitePolicy,
    ScheduleFactory,
    TransformFactory,
)
from ravine.optim._orthogonal import MuonMomentum, NewtonSchulz
from ravine.optim._preconditioners import AdagradMean, AdagradSum, Adam, RAdam, RMSProp
from ravine.optim._presets import adagrad, adam, adamw, momentum, radam, rmsprop, sgd
from ravine.optim._presets_extra import adadelta, adafactor, adamax, lion, muon, nadam, rprop
from ravine.optim._schedules import (
    Constant,
    CosineDecay,
    ExponentialDecay,
    InverseSqrtDecay,
    InverseTimeDecay,
    Lambda,
    LinearSchedule,
    LinearWarmup,
    Product,
    ResNetWarmup,
    Schedule,
    Sequential,
    StepDecay,
    TransformerSchedule,
)
from ravine.optim._sign import Lion, Rprop
from ravine.optim._transforms import (
    Chain,
    DecoupledWeightDecay,
    EmaMomentum,
    Identity,
    Momentum,
    Transform,
    TransformState,
    WeightDecay,
    chain,
)

PRESETS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw", "radam")
"""Names of the presets, in the lectures' order."""
EXTRA_PRESETS = ("nadam", "adamax", "adadelta", "rprop", "adafactor", "muon", "lion")
"""Presets beyond the lectures (torch 2.13's NAdam, Adamax, Adadelta, Rprop, Adafactor, Muon; Lion)."""

__all__ = [
    "EXTRA_PRESETS",
    "PRESETS",
    "Adadelta",
    "Adafactor",
    "AdagradMean",
    "AdagradSum",
    "Adam",
    "Adamax",
    "AdaptiveClip",
    "Chain",
    "ChainOptimizer",
    "ClipByGlobalNorm",
    "ClipByValue",
    "Constant",
    "CosineDecay",
    "DecoupledWeightDecay",
    "EmaMomentum",
    "ExponentialDecay",
    "Identity",
    "InjectHyperparams",
    "InverseSqrtDecay",
    "InverseTimeDecay",
    "Lambda",
    "LayerLR",
    "LinearSchedule",
    "LinearWarmup",
    "Lion",
    "Momentum",
    "MultiSteps",
    "MuonMomentum",
    "NAdam",
    "NewtonSchulz",
    "NonFinitePolicy",
    "Product",
    "RAdam",
    "RMSProp",
    "ResNetWarmup",
    "Rprop",
    "Schedule",
    "ScheduleFactory",
    "Sequential",
    "StepDecay",
    "Transform",
    "TransformFactory",
    "TransformState",
    "TransformerSchedule",
    "WeightDecay",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "chain",
    "inject_hyperparams",
    "lion",
    "momentum",
    "muon",
    "nadam",
    "radam",
    "rmsprop",
    "rprop",
    "sgd",
    "weight_decay_groups",
]
