"""The tour's chapters on ravine's parts: the optimizers, the lab, the curvature engine and the diagnostician."""

from __future__ import annotations

import math

import torch

from ravine.claims import Claim
from ravine.progress import Progress, part
from ravine.tour._model import Chapter

__all__ = ["curvature_chapter", "diagnose_chapter", "lab_chapter", "optimizers_chapter", "torch_parity"]

_TORCH_TWIN = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "adagrad": ("Adagrad", {}),
    "rmsprop": ("RMSprop", {}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "radam": ("RAdam", {}),
}


def torch_parity(name: str, *, steps: int = 300, lr: float = 1e-2, seed: int = 0) -> float:
    """Train the same float64 MLP with ravine's preset ``name`` and its torch.optim twin on the same batches.

    Returns:
        max |θ_ravine − θ_torch| / max |θ_torch| after ``steps`` updates (0 for identical trajectories).
    """
    import ravine.optim as ravine_optim

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, 32, 8, generator=generator, dtype=torch.float64)
    y = torch.randn(steps, 32, 1, generator=generator, dtype=torch.float64)
    torch.manual_seed(seed)
    template = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    finals = []
    torch_name, extra = _TORCH_TWIN[name]
    for use_ravine in (True, False):
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
        model.load_state_dict(template.state_dict())
        if use_ravine:
            optimizer = getattr(ravine_optim, name)(model.parameters(), lr=lr)
        else:
            optimizer = getattr(torch.optim, torch_name)(model.parameters(), lr=lr, **extra)
        for step in range(steps):
            optimizer.zero_grad()
            torch.autograd.backward(torch.nn.functional.mse_loss(model(x[step]), y[step]))
            optimizer.step()
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return float((finals[0] - finals[1]).abs().max() / finals[1].abs().max())


def optimizers_chapter(*, full: bool, progress: Progress) -> Chapter:
    """Every preset on the digits, its agreement with torch.optim, and the lectures' schedules."""
    from ravine.experiments.digits_optimizers import compare_on_digits
    from ravine.report.optimizers import digits_loss_figure
    from ravine.report.schedules import gallery_schedules, plot_schedule_gallery

    steps = 1500 if full else 300
    names = list(_TORCH_TWIN)
    parity = {}
    for index, name in enumerate(names):
        parity[name] = torch_parity(name)
        progress(index + 1, len(names) + 1)
    comparison = compare_on_digits(steps=steps)
    progress(len(names) + 1, len(names) + 1)
    table: list[list[object]] = [
        ["optimizer", "lr", "final train loss", "val accuracy", "median η/σ", "rel. diff vs torch.optim"]
    ]
    for run in comparison.runs:
        table.append(
            [
                run.name,
                f"{run.lr:g}",
                f"{run.final_train_loss:.4f}",
                f"{run.val_accuracy:.3f}",
                f"{run.effective_lr_median:.3g}",
                f"{parity[run.name]:.1e}",
            ]
        )
    worst = max(parity.values())
    gallery = plot_schedule_gallery(gallery_schedules(steps), steps)
    return Chapter(
        key="optimizers",
        title="The lecture's optimizer: θ ← θ − (η_t/σ_t)·m_t",
        text=(
            "Every optimizer of the lecture is one rule with three parts: a momentum m_t (a weighted sum of "
            "past gradients), a root-mean-square σ_t (Adagrad: of all past gradients; RMSProp: an exponential "
            "average; Adam: RMSProp with momentum) and a schedule η_t (decay, warmup). ravine builds each "
            "preset from those parts and exposes the effective per-parameter learning rate η_t/σ_t.\n\n"
            f"Each preset trains the same 64-{comparison.hidden}-10 MLP on scikit-learn's digits from the "
            f"same weights and mini-batches ({steps} updates of batch {comparison.batch_size}). The last column "
            "trains a float64 MLP for 300 updates with ravine's preset and with its torch.optim counterpart "
            "on identical batches and reports the largest parameter difference relative to the largest "
            "parameter."
        ),
        table=table,
        claims=[
            Claim(
                statement="ravine's presets compute what torch.optim computes (float64, 300 updates)",
                holds=worst <= 1e-10,
                evidence=f"largest relative parameter difference over 7 presets: {worst:.1e}",
            )
        ],
        figures=[
            (
                "optimizers-loss",
                digits_loss_figure(comparison),
                "Mini-batch loss of each preset on the digits.",
            ),
            (
                "schedules",
                gallery,
                "The learning-rate schedules η_t of the lectures, as pure functions of t.",
            ),
        ],
    )


def lab_chapter(*, full: bool, progress: Progress) -> Chapter:
    """The error-surface stories: the ravine, the crescent, the saddle, momentum through a local dip."""
    from ravine.report.surfaces import contour_figure, curves_figure, effective_lr_figure
    from ravine.surfaces.stories import STORIES, get_story

    claims: list[Claim] = []
    figures = []
    names = list(STORIES)
    for index, name in enumerate(names):
        story = get_story(name)(progress=part(progress, start=index / len(names), width=1 / len(names)))
        claims.extend(story.claims)
        for run_name, (surface, run) in story.runs.items():
            figures.append((f"lab-{story.name}-{run_name}-paths", contour_figure(surface, run), story.title))
            figures.append((f"lab-{story.name}-{run_name}-curves", curves_figure(surface, run), story.title))
            if len(run.sigma_steps) and not bool((run.sigma == 1).all()):
                figures.append(
                    (f"lab-{story.name}-{run_name}-sigma", effective_lr_figure(run), f"{story.title}: η/σ")
                )
    return Chapter(
        key="lab",
        title="The lab: the lecture's error surfaces, many optimizers at once",
        text=(
            "The lecture's 'error surface is rugged' story on analytic 2-D surfaces, with its own settings: "
            "on an elongated bowl, gradient descent with a learning rate that suits the flat direction "
            "oscillates between the walls of the steep one, so the loss stops falling while the gradient "
            "stays large; a learning rate small enough for the walls crawls along the floor; Adagrad's "
            "per-parameter η/σ fixes both but bursts sideways once σ on the steep axis has become small; "
            "learning-rate decay calms the bursts. RMSProp adapts faster than Adagrad where the slope changes "
            "(the crescent); at a saddle gradient descent stalls with a small gradient, and momentum or a "
            "step along the negative-curvature direction escapes. All configurations of a story advance "
            "together in one vectorised computation."
        ),
        claims=claims,
        figures=figures,
    )


def curvature_chapter(*, full: bool, progress: Progress) -> Chapter:
    """ML2021 HW2-2's per-layer Gauss-Newton "minimum ratio" next to ravine's exact classification."""
    from ravine.experiments.hw2_2 import hw2_2_comparison
    from ravine.report.tour_figures import hw2_2_figure

    progress(0, 1)
    result = hw2_2_comparison(train_steps=3000 if full else 1000)
    progress(1, 1)
    exact = result.exact
    largest = max(abs(v) for v in result.gn_block_max_eigenvalues)
    gn_psd = min(result.gn_block_min_eigenvalues) >= -1e-8 * largest
    counts = exact.counts or (0, 0, 0)
    table: list[list[object]] = [
        ["quantity", "value"],
        ["‖∇L‖ at the point", f"{result.gradient_norm:.2e}"],
        ["training loss", f"{result.loss:.3e}"],
        ["parameters", exact.num_params],
        ["exact Hessian: λ_min / λ_max", f"{exact.lambda_min:.3e} / {exact.lambda_max:.3e}"],
        ["exact eigenvalues > / < / ≈ 0", f"{counts[0]} / {counts[1]} / {counts[2]}"],
        ["exact minimum ratio (flat ones not counted)", f"{exact.minimum_ratio:.3f}"],
        ["what the Hessian's signs say", exact.hessian_kind.value],
        [f"ravine's verdict (critical if ‖∇L‖ ≤ {exact.grad_tol:.0e})", exact.kind.value],
        ["homework's per-layer GN minimum ratio", f"{result.homework_ratio:.3f}"],
        ["homework's verdict", result.homework_verdict],
        ["smallest eigenvalue of any GN block", f"{min(result.gn_block_min_eigenvalues):.2e}"],
        [
            "smallest eigenvalue of any exact per-layer block",
            f"{min(result.hessian_block_min_eigenvalues):.2e}",
        ],
        ["‖H − GN‖ over the blocks coupling layers", f"{result.coupling_norm:.3e}"],
    ]
    return Chapter(
        key="curvature",
        title="Curvature: saddle point or local minimum? (HW2-2)",
        text=(
            "The lecture tells a saddle point from a local minimum by the signs of the Hessian's eigenvalues: "
            "all positive is a local minimum, mixed signs a saddle, and a saddle can be escaped along an "
            "eigenvector with a negative eigenvalue. ML2021's homework 2-2 trains Linear(1→128)-ReLU-"
            "Linear(128→1) on sin(5πx)/(5πx), drives it to a point with a tiny gradient, and reports a "
            "'minimum ratio' computed from per-layer Gauss-Newton blocks.\n\n"
            "Those blocks are JᵀJ-shaped, positive semi-definite by construction, so that ratio counts only "
            "non-negative eigenvalues and cannot see a saddle; the negative curvature of a ReLU net lives in "
            "the blocks coupling the layers, which the per-layer view drops. ravine's classification uses "
            "the exact Hessian (dense float64 here; Lanczos and stochastic Lanczos quadrature for large "
            "models)."
        ),
        table=table,
        claims=[
            Claim(
                statement="the homework's per-layer Gauss-Newton blocks are positive semi-definite "
                "(cannot show a saddle)",
                holds=gn_psd,
                evidence=f"smallest GN-block eigenvalue {min(result.gn_block_min_eigenvalues):.2e} "
                f"(largest {largest:.2e})",
            ),
            Claim(
                statement="the exact Hessian at the same point has negative curvature the homework's ratio misses",
                holds=counts[1] > 0,
                evidence=f"{counts[1]} negative eigenvalue(s), λ_min {exact.lambda_min:.2e}; the Hessian says "
                f"{exact.hessian_kind.value} (ravine's verdict with ‖∇L‖ = {exact.gradient_norm:.1e}: "
                f"{exact.kind.value})",
            ),
        ],
        figures=[("curvature-hw2-2", hw2_2_figure(result), "Exact Hessian spectrum vs per-layer GN blocks.")],
    )


def diagnose_chapter(*, full: bool, progress: Progress) -> Chapter:
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
        key="diagnose",
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
