"""The tour's chapter on :mod:`ravine.diagnose`: the diagnostician on labelled stuck runs."""

from __future__ import annotations

import math

from ravine.claims import Claim
from ravine.progress import Progress
from ravine.tour._model import Chapter

__all__ = ["KEY", "chapter"]

KEY = "diagnose"


def chapter(*, full: bool, progress: Progress) -> Chapter:
    """The diagnostician on the labelled stuck runs: verdicts, latencies, and one run's curves."""
    from ravine.diagnose.scenarios import SCENARIOS, run_scenario
    from ravine.report.diagnose import monitor_figure, verdict_text

    scenarios = list(SCENARIOS.values())
    table: list[list[object]] = [["run", "model", "optimizer", "expected", "verdict", "detected after onset"]]
    correct = 0
    latencies = []
    figures = []
    for index, scenario in enumerate(scenarios):
        result = run_scenario(scenario, seed=0)
        correct += result.correct
        if result.latency is not None:
            latencies.append(result.latency)
        table.append(
            [
                scenario.name,
                scenario.model,
                scenario.optimizer,
                scenario.expected.value,
                result.verdict.kind.value,
                "—" if result.latency is None else f"{result.latency} steps",
            ]
        )
        if index < 2 or not result.correct:
            figures.append(
                (
                    f"diagnose-{scenario.name}",
                    monitor_figure(result.monitor, title=scenario.name),
                    verdict_text(result.verdict),
                )
            )
        progress(index + 1, len(scenarios))
    worst = max(latencies) if latencies else math.inf
    return Chapter(
        key=KEY,
        title="The diagnostician: why is this training run stuck?",
        text=(
            "The lecture's first question when the loss stops falling: is the gradient small? If not, the "
            "run is not at a critical point but bouncing between the walls of a ravine, and the learning "
            "rate is the problem; if it is, the Hessian tells a saddle (there is a way down) from a local "
            "minimum. ravine's Monitor attaches to a training loop in two lines, records cheap per-step "
            "signals, probes the curvature now and then, and gives a verdict with its evidence and the "
            "lecture's remedies. Here it watches labelled stuck runs (models and optimizers of several kinds) "
            "and says what it sees; the captions under the figures are its verdicts, verbatim."
        ),
        table=table,
        claims=[
            Claim(
                statement="the verdict names the labelled problem (≥ 95% of runs)",
                holds=correct >= 0.95 * len(scenarios),
                evidence=f"{correct}/{len(scenarios)} right",
            ),
            Claim(
                statement="the verdict appears within 200 steps of the problem's onset",
                holds=worst <= 200,
                evidence=f"slowest detection: {worst} steps after onset",
            ),
        ],
        figures=figures,
    )
