"""The tour's chapter on :mod:`ravine.optim`: every preset on the digits, and the lectures' schedules."""

from __future__ import annotations

from ravine.claims import Claim
from ravine.progress import Progress
from ravine.tour._model import Chapter

__all__ = ["KEY", "chapter"]

KEY = "optimizers"


def chapter(*, full: bool, progress: Progress) -> Chapter:
    """Every preset trains the same MLP on the digits from the same weights and batches; the schedules η_t."""
    from ravine.experiments.digits_optimizers import compare_on_digits
    from ravine.report.optimizers import digits_loss_figure, digits_table
    from ravine.report.schedules import gallery_schedules, plot_schedule_gallery

    steps = 1500 if full else 300
    progress(0, 1, "training every preset")
    comparison = compare_on_digits(steps=steps)
    progress(1, 1)
    trained = [run for run in comparison.runs if run.final_train_loss < 0.5 * run.losses[0]]
    accuracies = ", ".join(f"{run.name} {run.val_accuracy:.2f}" for run in comparison.runs)
    return Chapter(
        key=KEY,
        title="The lecture's optimizer: θ ← θ − (η_t/σ_t)·m_t",
        text=(
            "Every optimizer of the lecture is one rule with three parts: a momentum m_t (a weighted sum of "
            "past gradients), a root-mean-square σ_t (Adagrad: of all past gradients; RMSProp: an exponential "
            "average; Adam: RMSProp with momentum) and a schedule η_t (decay, warmup). ravine builds each "
            "preset from those parts and exposes the effective per-parameter learning rate η_t/σ_t.\n\n"
            f"Each preset trains the same 64-{comparison.hidden}-10 MLP on scikit-learn's digits from the "
            f"same weights and mini-batches ({steps} updates of batch {comparison.batch_size}). That each preset "
            "computes exactly what its torch.optim counterpart computes is checked by ravine's test suite "
            "(tests/optim), step for step over a grid of hyper-parameters, not here."
        ),
        table=digits_table(comparison),
        claims=[
            Claim(
                statement="every preset of the one rule trains the net: its final mini-batch loss is under "
                "half of its first",
                holds=len(trained) == len(comparison.runs),
                evidence=f"{len(trained)}/{len(comparison.runs)} presets; validation accuracy {accuracies}",
            )
        ],
        figures=[
            (
                "optimizers-loss",
                digits_loss_figure(comparison),
                "Mini-batch loss of each preset on the digits (log scale). Look at how fast each curve falls "
                "in the first hundred updates: the adaptive ones (η/σ per parameter) drop first.",
            ),
            (
                "schedules",
                plot_schedule_gallery(gallery_schedules(steps), steps),
                "The learning-rate schedules η_t as functions of the update t. Look at the warmups: they start "
                "small and grow (Transformer, ResNet), while the decays only shrink.",
            ),
        ],
    )
