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
local-minimum-like, diverging, noise-dominated, adaptive-LR bursts, healthy — with the evidence (numbers and
the steps they came from) and remedies from the lectures. Built-in labelled scenarios are in
:mod:`ravine.diagnose.scenarios`; Lightning and Hugging Face callbacks in :mod:`ravine.diagnose.integrations`.
"""

from __future__ import annotations

from ravine.diagnose._config import MonitorConfig, Thresholds
from ravine.diagnose._history import COLUMNS, History
from ravine.diagnose._monitor import Monitor
from ravine.diagnose._records import (
    CriticalPointRecord,
    Evidence,
    ProbeRecord,
    Remedy,
    Verdict,
    VerdictKind,
)
from ravine.diagnose._verdict import judge
from ravine.errors import MonitorWarning

__all__ = [
    "COLUMNS",
    "CriticalPointRecord",
    "Evidence",
    "History",
    "Monitor",
    "MonitorConfig",
    "MonitorWarning",
    "ProbeRecord",
    "Remedy",
    "Thresholds",
    "Verdict",
    "VerdictKind",
    "judge",
]
