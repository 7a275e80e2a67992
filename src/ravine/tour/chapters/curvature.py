"""The tour's chapter on :mod:`ravine.curvature`: saddle point or local minimum (HW2-2)."""

from __future__ import annotations

from ravine.claims import Claim
from ravine.progress import Progress
from ravine.tour._model import Chapter

__all__ = ["KEY", "chapter"]

KEY = "curvature"


def chapter(*, full: bool, progress: Progress) -> Chapter:
    """ML2021 HW2-2's per-layer Gauss-Newton "minimum ratio" next to ravine's exact classification."""
    from ravine.experiments.hw2_2 import hw2_2_comparison
    from ravine.report.curvature import hw2_2_figure, spectral_density_figure

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
        key=KEY,
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
        figures=[
            (
                "curvature-hw2-2",
                hw2_2_figure(result),
                "Left: the smallest eigenvalue of each per-layer block and of the whole Hessian. Look at the "
                "orange bar: only the whole Hessian goes negative. Right: its negative eigenvalues, the "
                "directions of escape that the homework's ratio cannot see.",
            ),
            (
                "curvature-density",
                spectral_density_figure(result.density, exact=result.eigenvalues),
                "The Hessian's eigenvalue density at the same point, by stochastic Lanczos quadrature (the "
                "method for nets too large for a dense Hessian), over a histogram of the exact eigenvalues. "
                "Look at the spike at 0 (flat directions), the few large outliers, and the mass left of 0.",
            ),
        ],
    )
