"""Rendering of the diagnostician's results: curves, a rich terminal table and a self-contained HTML report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ravine.report._figures import new_figure, scale_to_data
from ravine.report.html import HtmlReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.table import Table

    from ravine.diagnose import Monitor, Verdict

__all__ = ["monitor_figure", "verdict_table", "verdict_text", "write_html"]


def _series(values: Sequence[float]) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values]


def monitor_figure(monitor: Monitor, *, title: str = "") -> Figure:
    """Loss, gradient norm, update/weight ratio and cosine of successive updates against step (log y where
    useful), with the verdict's onset marked."""
    hist = monitor.history
    figure = new_figure(width=9.0, height=6.0)
    axes = figure.subplots(2, 2, sharex=True)
    steps = hist.steps
    panels = (
        (axes[0][0], "loss", "loss", True),
        (axes[0][1], "grad_norm", "‖g‖ (before clipping)", True),
        (axes[1][0], "update_ratio", "‖Δθ‖/‖θ‖", True),
        (axes[1][1], "cos_prev", "cos(Δθ_t, Δθ_{t−1})", False),
    )
    verdict = monitor.last_verdict
    for ax, column, label, log in panels:
        values = _series(hist.columns[column])
        if log:
            values = [v if v > 0 else math.nan for v in values]
        ax.plot(steps, values, lw=0.8)
        ax.set_ylabel(label)
        if log:
            scale_to_data(ax)
        else:  # a cosine: the whole of [−1, 1], so that round-off near 1 does not look like a swing
            ax.set_ylim(-1.05, 1.05)
            ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        if verdict is not None and verdict.onset >= 0 and not verdict.healthy:
            ax.axvline(verdict.onset, color="#c05621", ls="--", lw=0.8, label=f"onset (step {verdict.onset})")
    if verdict is not None and verdict.onset >= 0 and not verdict.healthy:
        axes[0][0].legend(fontsize=8, loc="best")
    axes[1][0].set_xlabel("step")
    axes[1][1].set_xlabel("step")
    if title:
        figure.suptitle(title)
    return figure


def verdict_text(verdict: Verdict) -> str:
    """The verdict as plain text: summary, evidence (with steps) and remedies."""
    lines = [f"{verdict.kind.value}: {verdict.summary}"]
    for item in verdict.evidence:
        span = (
            f"step {item.first_step}"
            if item.first_step == item.last_step
            else (f"steps {item.first_step}–{item.last_step}")
        )
        detail = f" ({item.detail})" if item.detail else ""
        lines.append(f"  • {item.name} = {item.value:.4g} [{span}]{detail}")
    for remedy in verdict.remedies:
        lines.append(f"  → {remedy.title}: {remedy.detail}")
    return "\n".join(lines)


def verdict_table(rows: Sequence[tuple[str, str, Verdict, str]], *, title: str = "ravine diagnose") -> Table:
    """A rich table: name, expected, verdict, onset/latency column, summary."""
    from rich.table import Table

    table = Table(title=title)
    for header in ("run", "expected", "verdict", "detected", "summary"):
        table.add_column(header)
    for name, expected, verdict, detected in rows:
        ok = not expected or expected == verdict.kind.value
        style = "green" if ok else "red"
        table.add_row(name, expected, f"[{style}]{verdict.kind.value}[/]", detected, verdict.summary)
    return table


def write_html(
    path: Path | str,
    runs: Sequence[tuple[str, Monitor, str]],
    *,
    title: str = "ravine diagnose",
) -> Path:
    """One HTML file: for each run (name, monitor, description) the verdict, evidence, remedies and curves."""
    report = HtmlReport(
        title, subtitle="training stuck ≠ small gradient: ravine, saddle, minimum, noise or LR?"
    )
    summary: list[list[object]] = [["run", "verdict", "onset", "summary"]]
    for name, monitor, _ in runs:
        verdict = monitor.last_verdict or monitor.verdict()
        summary.append([name, verdict.kind.value, verdict.onset, verdict.summary])
    report.add_section("Verdicts", "", table=summary)
    for name, monitor, description in runs:
        verdict = monitor.last_verdict or monitor.verdict()
        evidence: list[list[object]] = [["evidence", "value", "steps", "detail"]]
        for item in verdict.evidence:
            evidence.append(
                [item.name, f"{item.value:.4g}", f"{item.first_step}–{item.last_step}", item.detail]
            )
        remedies = "\n\n".join(f"{r.title}: {r.detail}" for r in verdict.remedies)
        figure = monitor_figure(monitor, title=name)
        report.add_section(
            f"{name}: {verdict.kind.value}",
            f"{description}\n\n{verdict.summary}\n\n{remedies}",
            table=evidence if len(evidence) > 1 else None,
            figures=[(figure, "loss, gradient norm, update/weight ratio, cosine of successive updates")],
            css_class="verdict" if verdict.healthy else "verdict warn",
        )
        if monitor.errors:
            report.add_section(f"{name}: monitor errors", "\n\n".join(monitor.errors), css_class="warn")
    return report.write(path)
