"""The training diagnostician: *training stuck ≠ small gradient*.

Attach a :class:`Monitor` to any PyTorch loop in two lines; ask it for a :class:`Verdict` at any time::

    monitor = ravine.diagnose.Monitor(model, optimizer, loss_fn=loss_fn)   # loss_fn optional (probes)
    ...
    loss.backward()
    monitor.step(loss, batch=(x, y))    # after backward, before clipping and optimizer.step()
    optimizer.step()
    ...
    print(monitor.verdict())

The verdict is one of :class:`VerdictKind` — ravine oscillation, LR too small, saddle point,
local-minimum-like, diverging, diverged and stuck, dead units / constant predictor, vanishing/exploding
gradients, noise-dominated, adaptive-LR bursts, stalled (cause not determined), healthy — with the evidence
(numbers and the steps they came from) and remedies from the lectures. Verdicts are regimes with hysteresis
(``monitor.timeline``); :func:`try_remedies` runs the remedies on copies first and :func:`lr_range_test`
sweeps the learning rate on a copy. Built-in labelled scenarios are in
:mod:`ravine.diagnose.scenarios`; Lightning and Hugging Face callbacks in :mod:`ravine.diagnose.integrations`.
"""

from __future__ import annotations

from ravine.diagnose._config import MonitorConfig, Thresholds
from ravine.diagnose._ddp_noise import NoiseScaleEstimate, NoiseScaleHook
from ravine.diagnose._history import COLUMNS, History
from ravine.diagnose._live import FunctionLogger, MonitorLogger
from ravine.diagnose._lr_range import LRRangeResult, lr_range_test
from ravine.diagnose._monitor import Monitor
from ravine.diagnose._records import (
    CriticalPointRecord,
    Evidence,
    ProbeRecord,
    Regime,
    Remedy,
    SharpnessRecord,
    Verdict,
    VerdictKind,
)
from ravine.diagnose._regimes import RegimeTracker
from ravine.diagnose._terms import OptimizerTerms, optimizer_terms
from ravine.diagnose._trials import RemedyTrial, TrialResult, try_remedies
from ravine.diagnose._verdict import judge
from ravine.errors import MonitorWarning

__all__ = [
    "COLUMNS",
    "CriticalPointRecord",
    "Evidence",
    "FunctionLogger",
    "History",
    "LRRangeResult",
    "Monitor",
    "MonitorConfig",
    "MonitorLogger",
    "MonitorWarning",
    "NoiseScaleEstimate",
    "NoiseScaleHook",
    "OptimizerTerms",
    "ProbeRecord",
    "Regime",
    "RegimeTracker",
    "Remedy",
    "RemedyTrial",
    "SharpnessRecord",
    "Thresholds",
    "TrialResult",
    "Verdict",
    "VerdictKind",
    "judge",
    "lr_range_test",
    "optimizer_terms",
    "try_remedies",
]
