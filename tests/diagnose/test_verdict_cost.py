"""Verdicts from the running whole-history summary equal full rescans, and their work does not grow with the run."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterator
from typing import SupportsIndex, overload

from ravine.diagnose import COLUMNS, CriticalPointRecord, ProbeRecord, Thresholds, Verdict, VerdictKind, judge
from ravine.diagnose._history import Columns
from ravine.diagnose._window import MARGIN, finite, history_totals, spike_starts

Row = dict[str, float]


def _row(rng: random.Random, t: int, length: int) -> Row:
    """A scripted run: fall, ravine plateau, small-gradient plateau, crawl, adaptive bursts, fall, blow-up,
    NaN at the end (positions scale with ``length``)."""
    u = t / length
    noise = 1.0 + 0.02 * rng.gauss(0.0, 1.0)
    row: Row = dict.fromkeys(COLUMNS, math.nan)
    lr, eff, cos, ratio, grad = 0.1, 0.1, 0.6, 1e-3, 1.0
    if u < 0.15:
        loss = 1.0 * math.exp(-t / (0.04 * length)) + 0.01
    elif u < 0.30:
        loss, cos = 0.03, -0.5
    elif u < 0.45:
        loss, grad = 0.02, 1e-4
    elif u < 0.60:
        loss, ratio, cos = 0.02 * (1.0 - 0.02 * (u - 0.45)), 1e-7, 0.9
    elif u < 0.75:
        loss = 0.02
        phase = t % 400
        if phase in (198, 199):
            eff = 3.0  # the effective step jumps just before the spike
        if 200 <= phase < 206:
            loss = 2.0 * (1.0 + phase - 200)
    elif u < 0.90:
        loss = 0.02 * math.exp(-(t - 0.75 * length) / (0.1 * length))
    else:
        loss = 0.02 * math.exp((t - 0.9 * length) / (0.004 * length))
        grad = math.exp((t - 0.9 * length) / (0.002 * length))
    row["loss"] = loss * noise if t < length - 3 else math.nan
    row["grad_norm"] = grad * (1.0 + 0.05 * rng.gauss(0.0, 1.0))
    row["lr"] = lr
    if t % 2 == 0:  # the update is measured on every other step
        row["eff_lr"] = eff * (1.0 + 0.01 * rng.gauss(0.0, 1.0))
        row["update_ratio"] = ratio
        row["cos_prev"] = max(-1.0, min(1.0, cos + 0.1 * rng.gauss(0.0, 1.0)))
    return row


def _probes(length: int) -> list[ProbeRecord]:
    return [
        ProbeRecord(
            step=s,
            overshoot=0.01 if 0.45 <= s / length < 0.6 else 0.5,
            effective_lr_max=1e-3 * (1.0 + (s % 400 > 190) * 9.0 * (0.6 <= s / length < 0.75)),
            snr=math.nan if s < 0.5 * length else 5.0,
        )
        for s in range(25, length, 25)
    ]


def _critical_points(length: int) -> list[CriticalPointRecord]:
    return [CriticalPointRecord(int(0.35 * length), "saddle", 1e-4, -0.5, 3.0, "dense", (("w", 1.0),))]


def _append(columns: dict[str, list[float]], steps: list[int], step: int, row: Row) -> None:
    steps.append(step)
    for name in COLUMNS:
        columns[name].append(row[name])


def _pop(columns: dict[str, list[float]], steps: list[int]) -> None:
    steps.pop()
    for column in columns.values():
        column.pop()
    if isinstance(columns, Columns):
        columns.shrunk(len(steps))


def _judge(columns: dict[str, list[float]], steps: list[int], length: int) -> Verdict:
    probes = [p for p in _probes(length) if p.step <= steps[-1]]
    points = [c for c in _critical_points(length) if c.step <= steps[-1]]
    return judge(columns, steps, probes=probes, critical_points=points)


def _with_onset(previous: Verdict | None, verdict: Verdict) -> Verdict:
    """The monitor's onset rule: kept while the kind stays the same."""
    onset = previous.onset if previous is not None and previous.kind is verdict.kind else verdict.step
    return Verdict(verdict.kind, verdict.summary, verdict.step, verdict.evidence, verdict.remedies, onset)


def test_running_summary_verdicts_equal_full_rescans() -> None:
    length, every = 20_000, 100
    rng = random.Random(0)
    rows = [_row(rng, t, length) for t in range(length)]
    columns: dict[str, list[float]] = Columns({name: [] for name in COLUMNS})
    steps: list[int] = []
    incremental: Verdict | None = None
    rescanned: Verdict | None = None
    kinds: set[VerdictKind] = set()
    for t, row in enumerate(rows):
        _append(columns, steps, t, row)
        if t % 25 == 24:  # the monitor reopens its newest row (micro-batches), sometimes a few
            for _ in range(1 + (t % 75 == 49) * 3):
                _pop(columns, steps)
            for s in range(len(steps), t + 1):
                _append(columns, steps, s, rows[s])
        if t == length // 2:  # rows rewritten deeper than the margin: the summary must be rebuilt
            for _ in range(3 * MARGIN):
                _pop(columns, steps)
            for s in range(len(steps), t + 1):
                _append(columns, steps, s, {**rows[s], "grad_norm": 50.0} if s % 7 == 0 else rows[s])
        if (t % every != 0 or t == 0) and t != length - 1:
            continue
        incremental = _with_onset(incremental, _judge(columns, steps, length))
        plain = {name: list(values) for name, values in columns.items()}  # no summary: one full pass
        rescanned = _with_onset(rescanned, _judge(plain, list(steps), length))
        assert repr(incremental) == repr(rescanned), f"step {t}"
        kinds.add(incremental.kind)
        th = Thresholds()
        since = max(20, len(steps) - th.burst_memory)
        totals = history_totals(columns, th, since)
        effs = finite([e / lr for e, lr in zip(plain["eff_lr"], plain["lr"], strict=True)])
        assert totals.best_loss == min(finite(plain["loss"]))
        assert totals.grad_max == max(finite(plain["grad_norm"]))
        assert totals.eff_median == statistics.median(effs)
        loss = plain["loss"]
        assert totals.spike_rows == [i for i in range(since, len(loss)) if spike_starts(loss, i, 10.0)]
    assert {
        VerdictKind.HEALTHY,
        VerdictKind.RAVINE_OSCILLATION,
        VerdictKind.SADDLE_POINT,
        VerdictKind.LR_TOO_SMALL,
        VerdictKind.ADAPTIVE_LR_BURSTS,
        VerdictKind.DIVERGING,
    } <= kinds, kinds


class _CountingList(list[float]):
    """A column that counts the rows read from it."""

    touched = 0

    @overload
    def __getitem__(self, index: SupportsIndex) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> list[float]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> float | list[float]:
        if isinstance(index, slice):
            part = super().__getitem__(index)
            _CountingList.touched += len(part)
            return part
        _CountingList.touched += 1
        return super().__getitem__(index)

    def __iter__(self) -> Iterator[float]:
        _CountingList.touched += len(self)
        return super().__iter__()


def _rows_touched_by_one_verdict(length: int) -> int:
    rng = random.Random(1)
    columns: dict[str, list[float]] = Columns({name: _CountingList() for name in COLUMNS})
    steps: list[int] = []

    def row(t: int) -> Row:
        values = dict.fromkeys(COLUMNS, math.nan)
        spike = t % 500 == 250
        values.update(loss=(50.0 if spike else 1.0) * (1 + 0.1 * rng.random()), grad_norm=1.0 + rng.random())
        values.update(lr=0.1, eff_lr=0.1 * (1 + rng.random()), cos_prev=rng.uniform(-1, 1), update_ratio=1e-3)
        return values

    for t in range(length):
        _append(columns, steps, t, row(t))
        if t % 25 == 24:
            judge(columns, steps)
    for t in range(length, length + 25):
        _append(columns, steps, t, row(t))
    _CountingList.touched = 0
    judge(columns, steps)
    return _CountingList.touched


def test_verdict_work_does_not_grow_with_history() -> None:
    short, long = _rows_touched_by_one_verdict(2_500), _rows_touched_by_one_verdict(40_000)
    th = Thresholds()
    # Window statistics, the newest rows (each read with the steps before it for the spike test) and the
    # spikes' neighbourhoods: independent of the length of the history.
    assert long <= short + 200
    assert long < 30 * th.window + 25 * (MARGIN + 25) + 5 * 101
