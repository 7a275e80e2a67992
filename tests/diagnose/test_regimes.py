"""Stable verdicts: one per regime, with hysteresis; the verdict of a steady run never changes once begun."""

from __future__ import annotations

import torch
from torch import nn

from ravine.diagnose import Monitor, RegimeTracker, Verdict, VerdictKind
from ravine.diagnose.scenarios import SCENARIOS

K = VerdictKind


def _feed(tracker: RegimeTracker, kinds: list[VerdictKind], every: int = 25) -> list[VerdictKind]:
    return [tracker.update(Verdict(k, k.value, every * (i + 1))).kind for i, k in enumerate(kinds)]


def test_single_contrary_judgements_never_flip_a_regime() -> None:
    tracker = RegimeTracker(window=100)
    raw = [K.LR_TOO_SMALL] * 4 + [K.HEALTHY, K.LR_TOO_SMALL, K.NOISE_DOMINATED, K.LR_TOO_SMALL, K.HEALTHY] * 6
    reported = _feed(tracker, raw)
    # Presumed healthy until two judgements agree on the problem; from then on one regime.
    assert reported[0] is K.HEALTHY and set(reported[1:]) == {K.LR_TOO_SMALL}
    assert [r.kind for r in tracker.timeline] == [K.HEALTHY, K.LR_TOO_SMALL]


def test_clear_counter_evidence_switches_with_the_onset_where_it_began() -> None:
    tracker = RegimeTracker(window=100)
    _feed(tracker, [K.HEALTHY] * 4 + [K.SADDLE_POINT] * 4)
    assert [(r.kind, r.onset) for r in tracker.timeline] == [(K.HEALTHY, 25), (K.SADDLE_POINT, 125)]
    assert tracker.timeline[-1].entered == 150  # detected one judgement after the evidence began
    # Leaving a problem regime takes the window's majority, not two judgements.
    reported = _feed(tracker, [K.HEALTHY] * 2)
    assert reported[-1] is K.SADDLE_POINT


def test_memory_is_bounded() -> None:
    tracker = RegimeTracker(window=50, max_judgements=10, max_regimes=3)
    _feed(tracker, [K.HEALTHY, K.HEALTHY, K.DIVERGING] * 40, every=10)
    assert len(tracker.judgements) == 10 and len(tracker.timeline) <= 3


def test_a_steady_run_keeps_its_verdict_when_asked_at_every_step() -> None:
    """LR far too small on a real net (the issue's flip-flopping run: 1e-5 on MNIST-1D-like data): once the
    regime began, asking at any step gives the same verdict, with the same onset."""
    scenario = SCENARIOS["lr-small-cnn-momentum"]
    run = scenario.build(0)
    monitor = Monitor(run.model, run.optimizer, loss_fn=run.loss_fn)
    kinds: list[tuple[int, VerdictKind, int]] = []
    for step in range(500):
        x, y = run.batch(step)
        run.optimizer.zero_grad()
        loss = run.loss_fn(run.model(x), y)
        loss.backward()
        monitor.step(loss, batch=(x, y))
        run.optimizer.step()
        if step >= 60 and step % 3 == 0:
            verdict = monitor.verdict()
            kinds.append((step, verdict.kind, verdict.onset))
    begun = [i for i, (_, kind, _) in enumerate(kinds) if kind is K.LR_TOO_SMALL]
    assert begun, kinds[:5]
    after = kinds[begun[0] :]
    assert {kind for _, kind, _ in after} == {K.LR_TOO_SMALL}
    assert len({onset for _, _, onset in after}) == 1
    assert [r.kind for r in monitor.timeline] == [K.HEALTHY, K.LR_TOO_SMALL]  # presumed healthy at first


def test_a_steady_healthy_noisy_run_stays_healthy() -> None:
    torch.manual_seed(0)
    x = torch.randn(2048, 10)
    y = x @ torch.randn(10, 1) + 0.5 * torch.randn(2048, 1)
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    monitor = Monitor(model, optimizer, loss_fn=nn.functional.mse_loss)
    generator = torch.Generator().manual_seed(0)
    for _ in range(600):
        rows = torch.randint(0, 2048, (16,), generator=generator)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x[rows]), y[rows])
        loss.backward()
        monitor.step(loss, batch=(x[rows], y[rows]))
        optimizer.step()
    assert [r.kind for r in monitor.timeline] == [K.HEALTHY], monitor.timeline
