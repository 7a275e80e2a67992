"""Verdict accuracy, false alarms, detection delay and the cost of the remedy trial, on the labelled suite.

    .venv/bin/python -m benchmarks.verdicts --markdown /tmp/bench/verdicts.md [--seeds 3] [--healthy-seeds 4]
        [--healthy-steps 1500]

- **Accuracy**: every stuck scenario (``ravine.diagnose.scenarios.SCENARIOS``) at ``--seeds`` seeds; correct
  when the monitor's final regime is the expected kind. Detection delay: steps from the scenario's onset to
  the monitor *entering* the expected regime (after hysteresis).
- **False alarms**: every healthy scenario at ``--healthy-seeds`` seeds × ``--healthy-steps`` steps; the
  share of the reported verdicts (one per 25 steps) that are not healthy, and the runs with any alarm.
- **Remedy trial cost**: :func:`ravine.diagnose.try_remedies` (4 remedies + the control × 20 steps) and
  :func:`ravine.diagnose.lr_range_test` (100 steps) on the MNIST-1D MLP, against 20 plain training steps of the
  same model (interleaved medians).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from collections import defaultdict

import torch

from benchmarks._report import Section, Targets, emit, fmt_time
from benchmarks._timing import conditions, interleaved_medians
from ravine.diagnose import VerdictKind, lr_range_test, try_remedies
from ravine.diagnose.scenarios import HEALTHY, SCENARIOS, run_scenario


def accuracy(seeds: int) -> tuple[Section, float, float, list[int]]:
    section = Section(
        "Verdict accuracy and detection delay on the labelled suite",
        [
            "scenario",
            "model",
            "optimizer",
            "expected",
            "correct",
            "delay (steps, per seed)",
            "verdicts given",
        ],
        left=(0, 1, 2, 3, 6),
    )
    correct = total = 0
    delays: list[int] = []
    for name, scenario in SCENARIOS.items():
        hits, lat, given = 0, [], []
        for seed in range(seeds):
            result = run_scenario(scenario, seed=seed)
            hits += result.correct
            lat.append("—" if result.latency is None else str(result.latency))
            if result.latency is not None and result.correct:
                delays.append(result.latency)
            given.append(result.verdict.kind.value)
            print(
                f"{name} seed {seed}: {result.verdict.kind.value} (delay {result.latency})", file=sys.stderr
            )
        correct += hits
        total += seeds
        kinds = ", ".join(sorted(set(given)))
        section.rows.append(
            [
                name,
                scenario.model,
                scenario.optimizer,
                scenario.expected.value,
                f"{hits}/{seeds}",
                ", ".join(lat),
                kinds,
            ]
        )
    return section, correct / total, float(total), delays


def false_alarms(seeds: int, steps: int) -> tuple[Section, float, int, int]:
    section = Section(
        "False alarms over long healthy runs",
        [
            "scenario",
            "model",
            "optimizer",
            "runs × steps",
            "reported verdicts",
            "not healthy",
            "runs with an alarm",
        ],
        left=(0, 1, 2),
    )
    judged_all = alarms_all = runs_alarmed = runs = 0
    for name, scenario in HEALTHY.items():
        judged = alarms = alarmed = 0
        kinds: dict[str, int] = defaultdict(int)
        for seed in range(seeds):
            result = run_scenario(scenario, seed=seed, steps=steps)
            reported = [kind for _, kind in result.monitor.regimes.reported]
            bad = [kind for kind in reported if kind is not VerdictKind.HEALTHY]
            for kind in bad:
                kinds[kind.value] += 1
            judged += len(reported)
            alarms += len(bad)
            alarmed += bool(bad)
            print(f"{name} seed {seed}: {len(bad)}/{len(reported)} alarms", file=sys.stderr)
        detail = f"{alarms} ({alarms / judged:.1%})" + (f": {dict(kinds)}" if kinds else "")
        section.rows.append(
            [
                name,
                scenario.model,
                scenario.optimizer,
                f"{seeds} × {steps}",
                str(judged),
                detail,
                f"{alarmed}/{seeds}",
            ]
        )
        judged_all += judged
        alarms_all += alarms
        runs_alarmed += alarmed
        runs += seeds
    return section, alarms_all / judged_all, runs_alarmed, runs


def trial_cost() -> tuple[Section, dict[str, float]]:
    from ravine.diagnose.scenarios.builders import healthy_mlp_adam

    run = healthy_mlp_adam(0)
    batches = [run.batch(step) for step in range(8)]

    def plain() -> None:
        model, optimizer = run.model, run.optimizer
        from ravine.diagnose._sandbox import copy_run

        model, optimizer = copy_run(model, optimizer)
        for step in range(20):
            x, y = batches[step % len(batches)]
            optimizer.zero_grad()
            run.loss_fn(model(x), y).backward()
            optimizer.step()

    times = interleaved_medians(
        {
            "20 plain steps (on a copy)": plain,
            "try_remedies(STALLED): control + 4 remedies × 20 steps": lambda: try_remedies(
                run.model, run.optimizer, run.loss_fn, batches, remedies=VerdictKind.STALLED, steps=20
            ),
            "lr_range_test: 100 steps": lambda: lr_range_test(run.model, run.optimizer, run.loss_fn, batches),
        },
        repeats=5,
    )
    base = times["20 plain steps (on a copy)"]
    section = Section(
        "Cost of the remedy trial and the LR range test (MNIST-1D MLP 40-64-64-10, Adam, batch 64)",
        ["what", "median time", "vs 20 plain steps"],
    )
    for name, seconds in times.items():
        section.rows.append([name, fmt_time(seconds), f"{seconds / base:.1f}×"])
    section.notes.append(
        "interleaved medians of 5 repeats after one warm-up; the copies are included in every row"
    )
    return section, times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--healthy-seeds", type=int, default=4)
    parser.add_argument("--healthy-steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = shlex.join([".venv/bin/python", "-m", "benchmarks.verdicts", *sys.argv[1:]])
    start = conditions(args.threads)
    acc_section, acc, total, delays = accuracy(args.seeds)
    fa_section, rate, alarmed, runs = false_alarms(args.healthy_seeds, args.healthy_steps)
    cost_section, times = trial_cost()
    targets = Targets()
    targets.add("verdict accuracy on the stuck suite", f"{acc:.1%} of {int(total)} runs", acc >= 0.95)
    targets.add(
        "detection delay ≤ 200 steps",
        f"median {statistics.median(delays):.0f}, max {max(delays)} steps" if delays else "—",
        bool(delays) and max(delays) <= 200,
    )
    targets.add(
        "false alarms ≤ 1% of healthy verdicts", f"{rate:.2%} ({alarmed}/{runs} runs with any)", rate <= 0.01
    )
    remedy = times["try_remedies(STALLED): control + 4 remedies × 20 steps"]
    targets.add("remedy trial bounded: ≈ (remedies + 1) × steps", f"{fmt_time(remedy)}", None)
    lines = [
        f"`{command}`",
        "",
        f"Start: {start}.",
        "",
        "### Targets",
        "",
        "| target | measured | met |",
        "| --- | --- | :---: |",
    ]
    for target, measured, met in targets.lines:
        lines.append(f"| {target} | {measured} | {'—' if met is None else ('yes' if met else '**no**')} |")
    lines += [
        "",
        acc_section.markdown(),
        fa_section.markdown(),
        cost_section.markdown(),
        f"End: {conditions(args.threads)}.",
        "",
    ]
    emit("\n".join(lines), args.markdown)


if __name__ == "__main__":
    main()
