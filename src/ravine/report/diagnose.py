"""Rendering of the diagnostician's results: curves, a rich terminal table and a self-contained HTML report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ravine.report._figures import new_figure, scale_to_data
from ravine.report.html import HtmlReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from rich.table import Table

    from ravine.diagnose import History, LRRangeResult, Monitor, Verdict

__all__ = [
    "envelope",
    "lr_range_figure",
    "monitor_figure",
    "regimes_figure",
    "verdict_table",
    "verdict_text",
    "write_html",
]


def _series(values: Sequence[float]) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values]


def envelope(
    ax: Axes, history: History, column: str, *, positive: bool = False, color: str = "#2b6cb0"
) -> bool:
    """Draw a column of a long run's history: the exact line where its rows are kept one by one (the first
    rows and the recent window), and for the older rows, which the history keeps as blocks, the band from
    each block's min to its max with the block medians as the line. ``positive``: values ≤ 0 are left out (a
    log axis). Returns whether any downsampled block was drawn."""

    def clean(value: float) -> float:
        return value if math.isfinite(value) and (value > 0 or not positive) else math.nan

    blocks = history.blocks(column)
    xs = [(first + last) / 2 for first, last, *_ in blocks]
    ax.plot(xs, [clean(mid) for *_, mid, _ in blocks], lw=0.8, color=color)
    band_x: list[float] = []
    band_lo: list[float] = []
    band_hi: list[float] = []
    for first, last, lo, _, hi in blocks:
        if last == first:
            if band_x and not math.isnan(band_x[-1]):
                band_x.append(math.nan)  # a gap: the band ends where the exact rows begin
                band_lo.append(math.nan)
                band_hi.append(math.nan)
            continue
        band_x += [first, last]
        band_lo += [clean(lo)] * 2
        band_hi += [clean(hi)] * 2
    if not band_x:
        return False
    ax.fill_between(band_x, band_lo, band_hi, color=color, alpha=0.25, lw=0, label="min–max of older steps")
    return True


def monitor_figure(monitor: Monitor, *, title: str = "") -> Figure:
    """Loss, gradient norm, update/weight ratio and cosine of successive updates against step (log y where
    useful), with the verdict's onset marked. On a long run, the loss and gradient-norm panels show the
    older steps' min–max band around their medians (:func:`envelope`) and the recent ones exactly."""
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
    banded = False
    for ax, column, label, log in panels:
        if column in ("loss", "grad_norm"):
            banded = envelope(ax, hist, column, positive=log) or banded
        else:
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
    if banded or (verdict is not None and verdict.onset >= 0 and not verdict.healthy):
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


def lr_range_figure(result: LRRangeResult, *, title: str = "LR range test") -> Figure:
    """The LR range test: raw and smoothed loss against η (log x), the suggested rate, the run's own rate and
    where the sweep diverged (:func:`ravine.diagnose.lr_range_test`)."""
    figure = new_figure(width=7.0, height=4.5)
    ax = figure.subplots()
    ax.plot(result.lrs, _series(list(result.losses)), lw=0.6, alpha=0.4, label="loss")
    ax.plot(result.lrs, _series(list(result.smoothed)), lw=1.4, label="smoothed loss")
    ax.set_xscale("log")
    marks = (
        (result.suggested_lr, "#2f855a", "suggested (steepest descent)"),
        (result.current_lr, "#2b6cb0", "the run's η"),
        (result.diverged_at, "#c05621", "diverged"),
    )
    for value, color, label in marks:
        if math.isfinite(value) and value > 0:
            ax.axvline(value, color=color, ls="--", lw=0.9, label=f"{label}: {value:.2g}")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return figure


def regimes_figure(monitor: Monitor, *, title: str = "") -> Figure:
    """The loss against step (a long run's older steps as a min–max band, :func:`envelope`) with the monitor's
    regimes shaded, each labelled with its kind and onset."""
    hist = monitor.history
    figure = new_figure(width=9.0, height=3.5)
    ax = figure.subplots()
    positive = all(v > 0 for v in hist.columns["loss"] if math.isfinite(v))
    envelope(ax, hist, "loss", positive=positive, color="#2d3748")
    if positive:
        ax.set_yscale("log")
    palette = ("#c6f6d5", "#fed7d7", "#feebc8", "#bee3f8", "#e9d8fd", "#fefcbf")
    regimes = monitor.timeline
    colors: dict[str, str] = {}
    for i, regime in enumerate(regimes):
        end = (
            regimes[i + 1].onset if i + 1 < len(regimes) else (hist.steps[-1] if hist.steps else regime.onset)
        )
        color = colors.setdefault(regime.kind.value, palette[len(colors) % len(palette)])
        ax.axvspan(regime.onset, max(end, regime.onset + 1), color=color, alpha=0.6, lw=0)
        ax.text(
            regime.onset,
            1.0,
            f" {regime.kind.value}",
            transform=ax.get_xaxis_transform(),
            va="top",
            fontsize=7,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    return figure
