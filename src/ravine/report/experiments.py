"""Figures of :mod:`ravine.experiments`: one function per experiment, result in, matplotlib figure out."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ravine.report._figures import new_figure, scale_to_data
from ravine.report.blocks import block_heterogeneity_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ravine.experiments.adaptive import AdaptiveResult
    from ravine.experiments.batch import BatchResult
    from ravine.experiments.landscape import LandscapeResult
    from ravine.experiments.minimum_ratio import MinimumRatioResult
    from ravine.experiments.momentum import MomentumResult
    from ravine.experiments.warmup import WarmupResult

__all__ = [
    "CAPTIONS",
    "FIGURES",
    "adaptive_figure",
    "batch_figure",
    "landscape_figure",
    "minimum_ratio_figure",
    "momentum_figure",
    "warmup_figure",
]


def _smooth(values: list[float], window: int = 10) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def minimum_ratio_figure(result: MinimumRatioResult) -> Figure:
    """Training loss against minimum ratio (the lecture's scatter), coloured by ‖∇L‖."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(width=12, height=4.6)
    figure.get_layout_engine().set(wspace=0.08)  # type: ignore[union-attr,call-arg]
    left, right = figure.subplots(1, 2, width_ratios=[1.25, 1])
    ratios = [p.minimum_ratio for p in result.points]
    losses = [p.loss for p in result.points]
    norms = [p.gradient_norm for p in result.points]
    dots = left.scatter(ratios, losses, c=norms, cmap="viridis", norm=_lognorm(norms), edgecolor="k", s=36)
    figure.colorbar(dots, ax=left, label="‖∇L‖ at the end point", pad=0.02, fraction=0.05)
    left.axvline(1.0, color="grey", ls=":", lw=1)
    left.set_xlabel(f"minimum ratio = positive / (positive + negative)   (ε = {result.config.eps:g})")
    left.set_ylabel("training loss (MSE)")
    left.set_title("end points of ‖∇L‖² descent (1 = local minimum)", fontsize=10)
    order = range(len(result.points))
    pos = [p.positive_share for p in result.points]
    neg = [p.negative_share for p in result.points]
    flat = [p.flat_share for p in result.points]
    right.bar(order, pos, color="#2b6cb0", label="positive")
    right.bar(order, neg, bottom=pos, color="#c05621", label="negative")
    right.bar(
        order, flat, bottom=[a + b for a, b in zip(pos, neg, strict=True)], color="#a0aec0", label="flat"
    )
    right.set_xlabel("net (index)")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylabel("share of Hessian eigenvalues")
    right.set_title(f"exact spectrum shares (flat: |λ| ≤ {result.config.eps:g}·max|λ|)", fontsize=10)
    right.legend(loc="lower right", fontsize=8)
    return figure


def _lognorm(values: list[float]) -> object:
    from matplotlib.colors import LogNorm

    positive = [v for v in values if v > 0] or [1.0]
    return LogNorm(vmin=min(positive), vmax=max(*positive, min(positive) * 1.0001))


def batch_figure(result: BatchResult) -> Figure:
    """Accuracy and sharpness per batch size, and Keskar's interpolation between small and large."""
    figure = new_figure(width=12, height=4.0)
    accuracy, sharp, line = figure.subplots(1, 3)
    chosen = result.chosen
    sizes = [r.batch_size for r in chosen]
    accuracy.plot(sizes, [r.train_accuracy for r in chosen], "o-", label="train")
    accuracy.plot(sizes, [r.test_accuracy for r in chosen], "s-", label="test (validation)")
    shared = chosen[0].lr
    accuracy.plot(
        sizes,
        [result.mean(size, shared).test_accuracy for size in sizes],
        "s--",
        color="grey",
        label=f"test, all at lr {shared:g}",
    )
    accuracy.set_xscale("log")
    accuracy.set_xlabel("batch size")
    accuracy.set_ylabel("accuracy")
    accuracy.set_title("same epochs; tuned rate per batch size")
    accuracy.legend(fontsize=8)
    sharp.plot(sizes, [r.sharpness for r in chosen], "o-", color="#c05621")
    sharp.set_xscale("log")
    for axis in (accuracy, sharp):
        axis.set_xticks(sizes, [str(size) for size in sizes])
        axis.minorticks_off()
    finite = [r.sharpness for r in chosen if r.sharpness == r.sharpness]
    if finite:  # from 0: a difference of 2% should look like one, not like a cliff
        sharp.set_ylim(0.0, max(finite) * 1.15)
    sharp.set_xlabel("batch size")
    sharp.set_ylabel("λ_max of the training loss")
    sharp.set_title("sharpness of the solution")
    line.plot(result.alphas, result.line_train_loss, label="train loss")
    line.plot(result.alphas, result.line_test_loss, label="test loss")
    line.axvline(0.0, color="grey", ls=":", lw=1)
    line.axvline(1.0, color="grey", ls=":", lw=1)
    scale_to_data(line)
    line.set_xlabel(f"α   (0: batch {sizes[0]}, 1: batch {sizes[-1]})")
    line.set_ylabel("cross-entropy")
    line.set_title("θ(α) = α·θ_large + (1 − α)·θ_small")
    line.legend(fontsize=8)
    return figure


def momentum_figure(result: MomentumResult) -> Figure:
    """Paths on the dip-valley surface and loss curves on the digits MLP."""
    figure = new_figure(width=12, height=4.0)
    surface, curves = figure.subplots(1, 2, width_ratios=[1.5, 1])
    xs, ys, grid = result.surface_grid
    surface.contourf(xs, ys, grid, levels=30, cmap="Greys")
    for label, color in zip(result.surface_labels, ("#c05621", "#2b6cb0"), strict=False):
        path = result.surface_path[label]
        surface.plot([p[0] for p in path], [p[1] for p in path], "-", color=color, lw=1.5, label=label)
        surface.plot(*result.surface_final[label], "o", color=color)
    surface.set_title("the lab's valley with a local dip")
    surface.set_xlabel("x")
    surface.set_ylabel("y")
    surface.legend(fontsize=8)
    for label, losses in result.net_loss.items():
        curves.plot(range(1, len(losses) + 1), losses, label=label)
    curves.axhline(
        result.config.threshold, color="grey", ls=":", lw=1, label=f"threshold {result.config.threshold:g}"
    )
    scale_to_data(curves)
    curves.set_xlabel("full-batch update")
    curves.set_ylabel("training loss")
    curves.set_title("digits MLP")
    curves.legend(fontsize=8)
    return figure


def adaptive_figure(result: AdaptiveResult) -> Figure:
    """Smoothed mini-batch loss curves of every run (solid: constant rate, dashed: cosine decay)."""
    figure = new_figure(width=8, height=4.5)
    axes = figure.subplots()
    colors = {"sgd": "#4a5568", "adagrad": "#2f855a", "rmsprop": "#c05621", "adam": "#2b6cb0"}
    for label, losses in result.losses.items():
        name = label.removesuffix("+decay")
        axes.plot(
            _smooth(losses, 20),
            color=colors.get(name, "k"),
            ls="--" if label.endswith("+decay") else "-",
            label=label,
            lw=1.2,
        )
    scale_to_data(axes)
    axes.set_xlabel("update")
    axes.set_ylabel("mini-batch loss (moving average of 20)")
    axes.set_title("SGD vs Adagrad vs RMSProp vs Adam, with and without decay")
    axes.legend(fontsize=8, ncol=2)
    return figure


def warmup_figure(result: WarmupResult) -> Figure:
    """Loss curves, learning rates and the variance of the early adaptive learning rate."""
    figure = new_figure(width=12, height=4.0)
    loss, rate, spread = figure.subplots(1, 3)
    colors = {"adam": "#c05621", "adam+warmup": "#2b6cb0", "radam": "#2f855a"}
    seen: set[str] = set()
    for r in result.runs:
        label = r.variant if r.variant not in seen else None
        seen.add(r.variant)
        loss.plot(_smooth(r.losses, 5), color=colors[r.variant], lw=1, label=label)
        if r.seed == result.config.seed:
            rate.plot(
                r.lrs, color=colors[r.variant], ls="--" if r.variant == "radam" else "-", label=r.variant
            )
    scale_to_data(loss)
    loss.set_xlabel("update")
    loss.set_ylabel("training loss")
    loss.set_title(f"tiny Transformer, {result.config.task}")
    loss.legend(fontsize=8)
    rate.set_xlabel("update")
    rate.set_ylabel("η_t")
    rate.set_title("learning rate")
    rate.legend(fontsize=8)
    steps = range(1, len(result.lr_variance) + 1)
    spread.plot(steps, result.lr_variance, "o-", ms=3, color=colors["adam"])
    spread.axvline(
        result.rectified_from, color=colors["radam"], ls=":", lw=1, label="RAdam rectifies from here"
    )
    scale_to_data(spread)
    spread.set_xlabel("update t")
    spread.set_ylabel("Var of ln(η/σ_t) over mini-batch streams\n(median over parameters)")
    spread.set_title("early adaptive learning rate")
    spread.legend(fontsize=8)
    return figure


def landscape_figure(result: LandscapeResult) -> Figure:
    """1-D interpolation, the filter-normalised slice and the trajectory plane."""
    figure = new_figure(width=13, height=4.2)
    line, random_slice, plane = figure.subplots(1, 3)
    line.plot(result.alphas, result.line_train_loss, label="train")
    line.plot(result.alphas, result.line_test_loss, label="test")
    line.axvline(0.0, color="grey", ls=":", lw=1)
    line.axvline(1.0, color="grey", ls=":", lw=1)
    scale_to_data(line)
    line.set_xlabel("α   (0: initialisation, 1: solution)")
    line.set_ylabel("cross-entropy")
    line.set_title("θ(α) = (1 − α)·θ₀ + α·θ*")
    line.legend(fontsize=8)
    import math

    logs = [[math.log10(max(v, 1e-12)) for v in row] for row in result.filter_loss]
    filled = random_slice.contourf(result.filter_axis, result.filter_axis, logs, levels=25, cmap="viridis")
    random_slice.contour(
        result.filter_axis, result.filter_axis, logs, levels=12, colors="white", linewidths=0.4
    )
    random_slice.plot(0, 0, "r*", ms=10)
    figure.colorbar(filled, ax=random_slice, label="log10 loss")
    random_slice.set_title("filter-normalised random slice")
    random_slice.set_xlabel("δ₁")
    random_slice.set_ylabel("δ₂")
    logs = [[math.log10(max(v, 1e-12)) for v in row] for row in result.pca_loss]
    filled = plane.contourf(result.pca_x, result.pca_y, logs, levels=25, cmap="viridis")
    plane.contour(result.pca_x, result.pca_y, logs, levels=12, colors="white", linewidths=0.4)
    plane.plot([p[0] for p in result.trajectory], [p[1] for p in result.trajectory], "r.-", ms=3, lw=1)
    plane.plot(0, 0, "r*", ms=10)
    figure.colorbar(filled, ax=plane, label="log10 loss")
    e1, e2 = result.pca_explained
    plane.set_title("training trajectory in its PCA plane")
    plane.set_xlabel(f"PC1 ({e1:.0%})")
    plane.set_ylabel(f"PC2 ({e2:.0%})")
    return figure


FIGURES: dict[str, Callable[[Any], Figure]] = {
    "minimum-ratio": minimum_ratio_figure,
    "batch": batch_figure,
    "momentum": momentum_figure,
    "adaptive": adaptive_figure,
    "warmup": warmup_figure,
    "landscape": landscape_figure,
    "block-heterogeneity": block_heterogeneity_figure,
}
"""Experiment name (a key of :data:`ravine.experiments.REGISTRY`) → the function that draws its result."""


CAPTIONS: dict[str, str] = {
    "minimum-ratio": "Left: each net's training loss against its minimum ratio at the end of ‖∇L‖² descent. Look "
    "at where the dots sit: the lecture expects them well left of 1 (the dotted line, a true local minimum), "
    "i.e. saddles. Right: the share of positive, negative and flat eigenvalues of each net's Hessian.",
    "batch": "Left: train and test accuracy per batch size at the same epochs. Look at the large batch: the "
    "lecture expects both accuracies to drop (worse optimisation, not overfitting). Middle: λ_max (sharpness) "
    "of each solution, from 0. Right: the loss on the line from the small-batch (α = 0) to the large-batch "
    "solution (α = 1).",
    "momentum": "Left: the paths of GD and momentum on the lab's valley with a local dip. Look at where each "
    "path ends: the lecture expects GD to stop in the dip and momentum to roll through to the global minimum. "
    "Right: training loss on the digits MLP; the dotted line is the threshold whose first crossing is counted.",
    "adaptive": "Smoothed mini-batch loss of each optimizer at its best rate (solid: constant rate, dashed: "
    "cosine decay). Look at SGD against the adaptive ones on these unnormalised inputs: η/σ per parameter is "
    "meant to get through the ill-conditioned surface faster.",
    "warmup": "Left: training loss of Adam, Adam with warmup and RAdam at the same high peak rate. Look at "
    "plain Adam's first updates. Middle: the learning-rate schedules. Right: the variance of the early "
    "adaptive rate, large in the first updates, which is why warmup (or RAdam's rectification) should help.",
    "landscape": "Left: the loss on the straight line from the initialisation (α = 0) to the solution (α = 1). "
    "Look for a barrier on the way down. Middle: a filter-normalised random 2-D slice around the solution "
    "(the star). Right: the plane of the trajectory's first two principal components, with the path taken.",
    "block-heterogeneity": "Top: each Hessian block's λ_max and |λ_min| (log scale), transformer left, CNN right. Look "
    "at how far apart the blocks sit: the lecture (via Zhang et al.) expects the transformer's blocks to span "
    "orders of magnitude and the CNN's to cluster. Bottom: SGD and Adam training curves at each one's best rate; "
    "expect SGD to trail Adam more on the transformer.",
}
"""Experiment name → a caption that says what to look at in its figure."""
