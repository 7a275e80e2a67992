"""The lectures' experiments on real data, each a function that returns a dataclass of numbers.

Every experiment has a config dataclass with ``quick()`` (seconds, used by ``ravine tour``) and ``full()``
(minutes) presets, a ``run(config, progress=None)`` that never prints, and a result carrying ``claim`` (the
lecture's claim), ``claims`` (each part checked: :class:`Claim` with the numbers), ``holds`` (all of
them), ``notes`` (caveats) and ``table()``. Nothing here draws: the figures live in
:mod:`ravine.report.experiments` (``FIGURES`` maps each name to its figure function).
:data:`REGISTRY` maps each CLI name to an :class:`Experiment`; :func:`run` runs one by name and returns an
:class:`ExperimentRun` with ``.table()``, ``.claims``, ``.notes`` and ``.seconds``.

- ``minimum-ratio`` — training loss vs minimum ratio at near-critical points of many tiny nets.
- ``batch`` — small vs large batch on MNIST-1D: accuracy, sharpness, Keskar's interpolation.
- ``momentum`` — GD vs momentum on the lab's local-dip surface and on a digits MLP.
- ``adaptive`` — SGD/Adagrad/RMSProp/Adam (raw-pixel digits) with and without decay, with verdicts.
- ``warmup`` — a tiny Transformer with Adam, Adam + warmup and RAdam at a high learning rate.
- ``landscape`` — 1-D interpolation and 2-D slices (filter-normalised; trajectory PCA plane).
- ``block-heterogeneity`` — per-block Hessian spectra of a tiny transformer and a CNN; SGD vs Adam on both.

Example:
    >>> from ravine.experiments import REGISTRY
    >>> sorted(REGISTRY)
    ['adaptive', 'batch', 'block-heterogeneity', 'landscape', 'minimum-ratio', 'momentum', 'warmup']
    >>> outcome = run("momentum", quick=True)  # doctest: +SKIP
    >>> [claim.text for claim in outcome.claims]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ravine.errors import ConfigError
from ravine.experiments import (
    adaptive,
    batch,
    block_heterogeneity,
    landscape,
    minimum_ratio,
    momentum,
    warmup,
)
from ravine.experiments._base import Experiment, ExperimentResult, ExperimentRun
from ravine.progress import Progress

__all__ = [
    "REGISTRY",
    "Experiment",
    "ExperimentResult",
    "ExperimentRun",
    "adaptive",
    "batch",
    "block_heterogeneity",
    "landscape",
    "minimum_ratio",
    "momentum",
    "run",
    "warmup",
]

REGISTRY: dict[str, Experiment] = {
    "minimum-ratio": Experiment(
        name="minimum-ratio",
        title="Local minima are rare: minimum ratio vs training loss",
        explanation=(
            "The lecture asks whether training stops at a local minimum or at a saddle point, and answers "
            "with a "
            "scatter of training loss against the minimum ratio (the share of positive Hessian eigenvalues) "
            "at "
            "critical points: the points sit between 0.5 and 0.8, almost never at 1, so local minima are "
            "rare. "
            "Ordinary descent stalls with a large gradient, so, as the lecture says, each net here first "
            "trains "
            "normally and then minimises ‖∇L‖² to reach a near-critical point; its exact Hessian spectrum "
            "(ravine.curvature) gives positive, negative and flat shares with the flat threshold ε stated, "
            "because the ratio depends on ε."
        ),
        config_type=minimum_ratio.MinimumRatioConfig,
        run=minimum_ratio.run,
    ),
    "batch": Experiment(
        name="batch",
        title="Small vs large batch: accuracy and sharpness",
        explanation=(
            "The lecture compares batch sizes: with the same epochs, larger batches get worse validation "
            "accuracy, and not from overfitting, as training accuracy drops too — the noisy small-batch "
            "gradient "
            "helps optimisation; Keskar et al. add that large batches end in sharp minima (a canyon) and "
            "small "
            "ones in flat minima (a plain), which generalise better. The same MNIST-1D MLP is trained for the "
            "same epochs with a small batch and one of 10% of the data, at every rate of a grid; the batch "
            "sizes are compared at their own tuned rates (tuned on the training loss) and at one shared rate. "
            "λ_max of the training loss measures sharpness, and the loss along the line between the small- "
            "and large-batch solutions is drawn."
        ),
        config_type=batch.BatchConfig,
        run=batch.run,
    ),
    "momentum": Experiment(
        name="momentum",
        title="Momentum: rolling through a local dip",
        explanation=(
            "The lecture's ball rolling down a hill: gradient descent stops where the gradient is zero, "
            "while "
            "momentum — each step the gradient plus the previous step, i.e. a weighted sum of all past "
            "gradients — carries it over a small dip and speeds it along gentle slopes. On the lab's valley "
            "with a local dip, GD stops in the dip and momentum reaches the global minimum; on a real digits "
            "MLP, momentum reaches a training-loss threshold in fewer updates at the same learning rate."
        ),
        config_type=momentum.MomentumConfig,
        run=momentum.run,
    ),
    "adaptive": Experiment(
        name="adaptive",
        title="Adaptive learning rates on a real net",
        explanation=(
            "The lecture's cure for the rugged error surface is a learning rate per parameter, η/σ, with σ "
            "the "
            "root mean square of past gradients (Adagrad), its exponential average (RMSProp) or that with "
            "momentum (Adam), plus learning-rate scheduling to calm the end of training. Here the four "
            "optimizers "
            "train the same MLP on the digits with raw pixel values (unnormalised inputs: an ill-conditioned "
            "surface), each at its best rate of a small grid, with and without cosine decay, while ravine's "
            "diagnostician watches each run and says what it sees."
        ),
        config_type=adaptive.AdaptiveConfig,
        run=adaptive.run,
    ),
    "warmup": Experiment(
        name="warmup",
        title="Warmup: a tiny Transformer at a high learning rate",
        explanation=(
            "The lecture's warmup: Transformers and BERT start with a small learning rate and grow it, "
            "because "
            "σ_t is a statistic that is unreliable after a few updates — RAdam's explanation is the large "
            "variance of the early adaptive learning rate, which it rectifies instead. A tiny post-LN "
            "Transformer learns to sort digits with Adam, Adam with the Transformer schedule "
            "d^-0.5·min(t^-0.5, t·w^-1.5), and RAdam, all at the same high peak rate and the same decay after "
            "it; the variance of the early adaptive rate is measured over independent mini-batch streams."
        ),
        config_type=warmup.WarmupConfig,
        run=warmup.run,
    ),
    "landscape": Experiment(
        name="landscape",
        title="Loss-landscape slices of a trained net",
        explanation=(
            "The lecture draws the error surface as a landscape the parameters roll down; a real net's "
            "surface "
            "can only be seen in slices. The straight line from initialisation to solution (Goodfellow et "
            "al.) "
            "descends without a barrier; a filter-normalised random 2-D slice (Li et al. 2018) shows the "
            "basin "
            "around the solution; and the plane of the trajectory's first two principal components shows the "
            "path the optimizer actually took."
        ),
        config_type=landscape.LandscapeConfig,
        run=landscape.run,
    ),
    "block-heterogeneity": Experiment(
        name="block-heterogeneity",
        title="Different parameters need different learning rates: Hessian blocks of a transformer and a CNN",
        explanation=(
            "The lecture's reason for adaptive learning rates is that the error surface is steep in some "
            'directions and flat in others, so one η cannot fit every parameter. Zhang et al. (2024, "Why '
            "Transformers Need Adam\") measure this block by block: the Hessian's diagonal blocks (attention, "
            "MLP, embeddings, norms) of a transformer have very different spectra, those of a CNN much less, and "
            "SGD with one learning rate trails Adam on the transformer but not on the CNN. Here the per-block "
            "spectra of a tiny transformer (sorting short sequences) and a small CNN (the 8×8 digits) come from "
            "ravine.curvature.block_spectra; heterogeneity is the mean pairwise Jensen-Shannon distance of the "
            "blocks' eigenvalue densities and the spread of log10 λ_max; SGD and Adam each train at their best "
            "rate of a small grid."
        ),
        config_type=block_heterogeneity.BlockHeterogeneityConfig,
        run=block_heterogeneity.run,
    ),
}
"""Experiment name (as on the CLI) → :class:`Experiment`."""


def run(
    name: str, *, quick: bool = True, progress: Progress | None = None, **overrides: Any
) -> ExperimentRun:
    """Run the registered experiment ``name`` in its quick (default) or full setting, seeded.

    Args:
        name: A key of :data:`REGISTRY`.
        quick: The quick preset (seconds) if true, else the full one (minutes).
        progress: Called as ``progress(stage, fraction_done)`` while it runs.
        **overrides: Config fields to change (``None`` values are ignored).

    Returns:
        The run: ``.claims`` (each with ``.holds`` and ``.text``), ``.table()``, ``.notes``.

    Raises:
        ConfigError: If ``name`` is not registered or an override names no config field.
    """
    if name not in REGISTRY:
        raise ConfigError(f"unknown experiment {name!r}; choose from {sorted(REGISTRY)}")
    return REGISTRY[name].execute("quick" if quick else "full", progress=progress, **overrides)
