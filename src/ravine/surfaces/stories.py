r"""The lecture's demonstrations on the built-in surfaces, as data: runs plus the numbers they show.

Each function runs its configurations with :func:`~ravine.surfaces.run_lab` in float64 and returns a
:class:`Story`: the runs (for figures), named ``metrics`` (for tests) and ``claims`` (one
:class:`~ravine.claims.Claim` per claim, each saying whether it held in this run).

- :func:`ravine_story` — the elongated bowl: GD 1e-2 bounces (loss flat, ‖g‖ large), GD 1e-7 crawls,
  mean-Adagrad η=0.2 gets to ~1e-100 and then bursts sideways and recovers, η/sqrt(1 + t/1000) removes the
  bursts. Run on the quadratic bowl and on its log-cosh twin.
- :func:`crescent_story` — RMSProp's moving average adapts to the bending valley faster than Adagrad.
- :func:`saddle_story` — GD near the saddle of (1 − w₁w₂)² stalls with a tiny gradient; momentum or a step
  along the Hessian's negative-curvature eigenvector escapes.
- :func:`momentum_story` — GD stops in a local dip; heavy-ball momentum rolls through to the global minimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ravine.claims import Claim
from ravine.errors import ConfigError
from ravine.optim import AdagradMean, InverseSqrtDecay, Momentum, RMSProp
from ravine.progress import Progress
from ravine.surfaces._base import Surface
from ravine.surfaces._library import Crescent, DipValley, LogCoshRavine, Ravine, Saddle
from ravine.surfaces._measures import (
    Story,
    burst_count,
    fmt,
    hessian_2d,
    log_steps,
    sign_flips,
    steps_to,
)
from ravine.surfaces._runner import LabConfig, LabRun, run_lab

__all__ = [
    "STORIES",
    "Story",
    "burst_count",
    "crescent_story",
    "get_story",
    "hessian_2d",
    "log_steps",
    "momentum_story",
    "ravine_story",
    "saddle_story",
    "sign_flips",
    "steps_to",
]


def ravine_story(*, steps: int = 100_000, progress: Progress | None = None) -> Story:
    """The lecture's ravine on the quadratic bowl (four configurations) and its log-cosh twin (the two GDs).

    Metrics on the quadratic bowl (keys ``q.*``): for ``gd2`` (η=1e-2) the final loss, the largest relative
    change of the loss over the second half (``rel_change``), the final ‖g‖ and the sign flips of the steep
    coordinate v; for ``gd7`` (η=1e-7) the start and final loss, flips and distance to the minimum; for
    ``ada`` (mean-Adagrad, η=0.2) the first step with loss < 1e-100, the minimum loss, the bursts (rising
    edges of |v| > 0.5) and the final loss; for ``decay`` (η=0.2/sqrt(1 + t/1000)) bursts and final loss.
    The log-cosh twin (``c.*``) has the ``gd2``/``gd7`` metrics, plus ``gd2.loss_low``/``loss_high`` (its
    bounce alternates between two losses) and ``gd7.v_mid`` (|v| halfway: it slid down the wall).
    """
    configs = [
        LabConfig("GD η=1e-2", lr=1e-2),
        LabConfig("GD η=1e-7", lr=1e-7),
        LabConfig("Adagrad (mean) η=0.2", AdagradMean(), 0.2),
        LabConfig("Adagrad (mean) η=0.2/√(1+t/1000)", AdagradMean(), InverseSqrtDecay(1000.0, lr=0.2)),
    ]
    gd2, gd7, ada, decay = (c.label for c in configs)
    metrics: dict[str, float] = {}
    claims: list[Claim] = []
    runs: dict[str, tuple[Surface, LabRun]] = {}
    for key, surf, cfgs in (("q", Ravine(), configs), ("c", LogCoshRavine(), configs[:2])):
        run = run_lab(surf, cfgs, steps=steps, sigma_steps=log_steps(steps), progress=progress)
        runs[surf.name] = (surf, run)
        _, v = surf.uv(run.theta)
        i2, i7 = run.index(gd2), run.index(gd7)
        second = run.loss[len(run.steps) // 2 :, i2]
        m = {
            "gd2.loss": float(run.loss[-1, i2]),
            "gd2.loss_low": float(second.min()),
            "gd2.loss_high": float(second.max()),
            "gd2.rel_change": _flat_change(run.loss[:, i2]),
            "gd2.grad_norm": float(run.grad_norm[-1, i2]),
            "gd2.flips": float(sign_flips(v[:, i2])),
            "gd7.loss0": float(run.loss[0, i7]),
            "gd7.loss": float(run.loss[-1, i7]),
            "gd7.grad_norm": float(run.grad_norm[-1, i7]),
            "gd7.flips": float(sign_flips(v[:, i7])),
            "gd7.distance": float(run.final_theta[i7].norm()),
            "gd7.v0": float(v[0, i7].abs()),
            "gd7.v_mid": float(v[len(v) // 2, i7].abs()),
        }
        name = surf.name
        bounce = (
            f"loss {fmt(m['gd2.loss'])}"
            if m["gd2.loss_high"] - m["gd2.loss_low"] < 1e-6 * m["gd2.loss_high"]
            else f"loss alternates {fmt(m['gd2.loss_low'])} / {fmt(m['gd2.loss_high'])}"
        )
        claims += [
            Claim(
                statement="bounces between the walls: loss stops falling, ‖g‖ stays large",
                holds=m["gd2.rel_change"] < 1e-3 and m["gd2.grad_norm"] > 100 and m["gd2.flips"] > steps / 2,
                evidence=f"{bounce} (2nd-half change {fmt(m['gd2.rel_change'])}), ‖g‖ {fmt(m['gd2.grad_norm'])}, "
                f"v changes sign {int(m['gd2.flips']):,}×",
                subject=f"{gd2} on the {name} surface",
            ),
            Claim(
                statement=f"no bouncing, but after {steps:,} updates still far from the minimum",
                holds=m["gd7.loss"] > 100 and m["gd7.flips"] < 100,
                evidence=f"loss {fmt(m['gd7.loss0'])} → {fmt(m['gd7.loss'])}, distance {fmt(m['gd7.distance'])}, "
                f"|v| {fmt(m['gd7.v0'])} → {fmt(m['gd7.v_mid'])} at half-way, v sign flips {int(m['gd7.flips'])}",
                subject=f"{gd7} on the {name} surface",
            ),
        ]
        if key == "q":
            ia, idc = run.index(ada), run.index(decay)
            hit = steps_to(run.loss[:, ia], run.steps, 1e-100)
            m |= {
                "ada.min_loss": float(run.loss[:, ia].min()),
                "ada.step_1e-100": float(hit) if hit is not None else math.nan,
                "ada.bursts": float(burst_count(v[:, ia], 0.5)),
                "ada.loss": float(run.loss[-1, ia]),
                "decay.bursts": float(burst_count(v[:, idc], 0.5)),
                "decay.loss": float(run.loss[-1, idc]),
            }
            claims += [
                Claim(
                    statement="gets much closer; bursts sideways once σ on the steep axis is small, and recovers",
                    holds=m["ada.min_loss"] < 1e-6 * m["gd7.loss"]
                    and m["ada.bursts"] > 0
                    and m["ada.loss"] < 1e-6,
                    evidence=f"min loss {fmt(m['ada.min_loss'])}"
                    + (f" (< 1e-100 at step {int(hit):,})" if hit is not None else "")
                    + f", {int(m['ada.bursts'])} bursts |v| > 0.5, final loss {fmt(m['ada.loss'])}",
                    subject=f"{ada} on the {name} surface",
                ),
                Claim(
                    statement="learning-rate decay reaches the minimum without bursts",
                    holds=m["decay.bursts"] == 0 and m["decay.loss"] < 1e-6,
                    evidence=f"{int(m['decay.bursts'])} bursts, final loss {fmt(m['decay.loss'])}",
                    subject=f"{decay} on the {name} surface",
                ),
            ]
        metrics.update({f"{key}.{k}": value for k, value in m.items()})
    title = "The ravine: GD bounces or crawls; Adagrad bursts; decay cures it"
    return Story("ravine", title, runs, metrics, tuple(claims))


def _flat_change(loss: torch.Tensor) -> float:
    """Largest relative change of the loss over the second half of the run (0 = perfectly flat)."""
    second = loss[len(loss) // 2 :]
    ref = float(second[0])
    # A bounded 2-cycle is "flat" too: compare each value with the one two steps earlier.
    if len(second) > 2:
        return float((second[2:] - second[:-2]).abs().max() / max(abs(ref), 1e-300))
    return float((second - ref).abs().max() / max(abs(ref), 1e-300))


def crescent_story(*, steps: int = 20_000, tol: float = 1e-2, progress: Progress | None = None) -> Story:
    """Crescent: mean-Adagrad vs RMSProp (α=0.9) at the same η ∈ {1e-3, 3e-3}; steps to loss < ``tol``.

    Adagrad's σ remembers the steep start, so its η/σ stays small along the flat bend of the valley;
    RMSProp's moving average forgets it. Metrics ``<kind>.<η>.steps`` (NaN if never), ``<kind>.<η>.loss``.
    """
    surf = Crescent()
    lrs = (1e-3, 3e-3)
    configs = [LabConfig(f"Adagrad (mean) η={lr:g}", AdagradMean(), lr) for lr in lrs] + [
        LabConfig(f"RMSProp α=0.9 η={lr:g}", RMSProp(0.9), lr) for lr in lrs
    ]
    run = run_lab(surf, configs, steps=steps, sigma_steps=log_steps(steps), progress=progress)
    metrics: dict[str, float] = {}
    claims = []
    for lr in lrs:
        reached = {}
        for kind, label in (("adagrad", f"Adagrad (mean) η={lr:g}"), ("rmsprop", f"RMSProp α=0.9 η={lr:g}")):
            i = run.index(label)
            hit = steps_to(run.loss[:, i], run.steps, tol, stay=True)
            reached[kind] = hit
            metrics[f"{kind}.{lr:g}.steps"] = float(hit) if hit is not None else math.nan
            metrics[f"{kind}.{lr:g}.loss"] = float(run.loss[-1, i])
            sig = run.sigma_steps
            metrics[f"{kind}.{lr:g}.elr_x_end"] = float(run.effective_lr[-1, i, 0]) if len(sig) else math.nan
        a, r = reached["adagrad"], reached["rmsprop"]
        text = (
            f"steps to loss < {tol:g}: RMSProp {r if r is not None else 'never'}, "
            f"Adagrad {a if a is not None else f'not in {steps:,}'}"
        )
        claims.append(
            Claim(
                statement="RMSProp adapts faster than Adagrad when the slope changes",
                holds=r is not None and (a is None or r < a),
                evidence=text,
                subject=f"η={lr:g} on the {surf.name} surface",
            )
        )
    claims.append(
        Claim(
            statement="(caveat) without decay RMSProp ends in a small limit cycle",
            holds=True,
            evidence=", ".join(f"η={lr:g}: final loss {fmt(metrics[f'rmsprop.{lr:g}.loss'])}" for lr in lrs),
            subject=f"RMSProp, constant η on the {surf.name} surface",
        )
    )
    return Story(
        "crescent",
        "The crescent: RMSProp's moving average vs Adagrad's memory",
        {surf.name: (surf, run)},
        metrics,
        tuple(claims),
    )


def saddle_story(
    *, steps: int = 1000, lr: float = 0.01, tol: float = 1e-3, progress: Progress | None = None
) -> Story:
    """Saddle (1 − w₁w₂)² started at (0.001, −0.000999), almost on the saddle's stable line.

    GD stalls: the loss stays ≈ 1 while ‖g‖ falls to ~1e-5. Heavy-ball momentum (β=0.9, same η) escapes
    sooner; so does GD after one step of length 0.1 along the eigenvector of the Hessian's negative
    eigenvalue, computed (by autograd) at the point where GD's gradient was smallest.
    Metrics: ``gd.stall_steps`` (loss > 0.99), ``gd.min_grad``, ``<cfg>.escape`` (steps to loss < tol),
    ``hessian.lambda_min``, ``hessian.vx``/``vy``.
    """
    surf = Saddle()
    start = (1e-3, -0.999e-3)
    configs = [
        LabConfig("GD", lr=lr, start=start),
        LabConfig("momentum β=0.9", Momentum(0.9), lr, start=start),
    ]
    run = run_lab(surf, configs, steps=steps, sigma_steps=log_steps(steps), progress=progress)
    i_gd, i_mom = run.index("GD"), run.index("momentum β=0.9")
    near = run.loss[:, i_gd] > 0.9  # still at the saddle's level (loss 1 there)
    masked = torch.where(near, run.grad_norm[:, i_gd], torch.full_like(run.grad_norm[:, i_gd], math.inf))
    stall_row = int(torch.argmin(masked))
    stall_step = int(run.steps[stall_row])
    stall_point = run.theta[int(torch.searchsorted(run.theta_steps, stall_step)), i_gd]
    hess = hessian_2d(surf, stall_point)
    evals, evecs = torch.linalg.eigh(hess)
    direction = evecs[:, 0] * torch.sign(evecs[:, 0].sum() + 1e-300)
    kicked = stall_point + 0.1 * direction
    rest = max(steps - stall_step, 1)
    escape = run_lab(
        surf,
        [LabConfig("GD after a negative-curvature step", lr=lr, start=(float(kicked[0]), float(kicked[1])))],
        steps=rest,
    )
    gd_esc = steps_to(run.loss[:, i_gd], run.steps, tol)
    mom_esc = steps_to(run.loss[:, i_mom], run.steps, tol)
    eig_esc = steps_to(escape.loss[:, 0], escape.steps, tol)
    metrics = {
        "gd.stall_steps": float(int((run.loss[:, i_gd] > 0.99).sum())),
        "gd.min_grad": float(masked[stall_row]),
        "gd.stall_step": float(stall_step),
        "gd.escape": float(gd_esc) if gd_esc is not None else math.nan,
        "momentum.escape": float(mom_esc) if mom_esc is not None else math.nan,
        "eigen.escape": float(stall_step + eig_esc) if eig_esc is not None else math.nan,
        "hessian.lambda_min": float(evals[0]),
        "hessian.lambda_max": float(evals[1]),
        "hessian.vx": float(direction[0]),
        "hessian.vy": float(direction[1]),
    }

    def when(x: float) -> str:
        return "never" if math.isnan(x) else f"step {int(x)}"

    claims = (
        Claim(
            statement="stalls near the saddle with a small gradient (training stuck ≠ minimum)",
            holds=metrics["gd.min_grad"] < 1e-3 and metrics["gd.stall_steps"] > steps / 4,
            evidence=f"loss > 0.99 for {int(metrics['gd.stall_steps'])} steps, min ‖g‖ {fmt(metrics['gd.min_grad'])} "
            f"at step {stall_step}; loss < {tol:g}: {when(metrics['gd.escape'])}",
            subject=f"GD on the {surf.name} surface",
        ),
        Claim(
            statement="eigenvalue −2 along [1, 1]: a saddle, not a minimum",
            holds=metrics["hessian.lambda_min"] < 0,
            evidence=f"λ = {fmt(metrics['hessian.lambda_min'])}, {fmt(metrics['hessian.lambda_max'])}; "
            f"v = ({metrics['hessian.vx']:.3f}, {metrics['hessian.vy']:.3f})",
            subject=f"Hessian at the stall on the {surf.name} surface",
        ),
        Claim(
            statement="momentum escapes the saddle sooner",
            holds=not math.isnan(metrics["momentum.escape"])
            and (math.isnan(metrics["gd.escape"]) or metrics["momentum.escape"] < metrics["gd.escape"]),
            evidence=f"loss < {tol:g}: {when(metrics['momentum.escape'])}",
            subject=f"momentum β=0.9 on the {surf.name} surface",
        ),
        Claim(
            statement="a step along the negative-curvature eigenvector escapes",
            holds=not math.isnan(metrics["eigen.escape"])
            and (math.isnan(metrics["gd.escape"]) or metrics["eigen.escape"] < metrics["gd.escape"]),
            evidence=f"loss < {tol:g}: {when(metrics['eigen.escape'])}",
            subject=f"GD + eigenvector step on the {surf.name} surface",
        ),
    )
    runs = {surf.name: (surf, run), "saddle-escape": (surf, escape)}
    return Story("saddle", "The saddle: stuck with a small gradient, and two ways out", runs, metrics, claims)


def momentum_story(*, steps: int = 3000, lr: float = 0.1, progress: Progress | None = None) -> Story:
    """The dip valley: GD stops in the local dip, heavy-ball and Nesterov momentum (β=0.9) roll through.

    Metrics ``<cfg>.x`` (final x), ``<cfg>.loss``, and the minima ``local.x``, ``global.x``.
    """
    surf = DipValley()
    configs = [
        LabConfig(f"GD η={lr:g}", lr=lr),
        LabConfig(f"heavy ball β=0.9 η={lr:g}", Momentum(0.9), lr),
        LabConfig(f"Nesterov β=0.9 η={lr:g}", Momentum(0.9, nesterov=True), lr),
    ]
    run = run_lab(surf, configs, steps=steps, sigma_steps=log_steps(steps), progress=progress)
    local = next(m for m in surf.minima if m.kind == "local")
    glob = surf.global_minima[0]
    metrics: dict[str, float] = {"local.x": local.point[0], "global.x": glob.point[0]}
    claims = []
    for key, config in zip(("gd", "heavy", "nesterov"), configs, strict=True):
        i = run.index(config.label)
        x = float(run.final_theta[i, 0])
        metrics[f"{key}.x"] = x
        metrics[f"{key}.loss"] = float(run.final_loss[i])
        where = (
            "the global minimum"
            if abs(x - glob.point[0]) < 1e-3
            else ("the local dip" if abs(x - local.point[0]) < 1e-3 else f"x = {x:.3g}")
        )
        claim = "stops in the local dip" if key == "gd" else "rolls through the dip to the global minimum"
        holds = where == ("the local dip" if key == "gd" else "the global minimum")
        claims.append(
            Claim(
                statement=claim,
                holds=holds,
                evidence=f"ends at {where}, L − L_min = {fmt(metrics[f'{key}.loss'] - glob.value)}",
                subject=f"{config.label} on the {surf.name} surface",
            )
        )
    return Story(
        "momentum",
        "A local dip: GD stops, momentum rolls through",
        {surf.name: (surf, run)},
        metrics,
        tuple(claims),
    )


STORIES: dict[str, Callable[..., Story]] = {
    "ravine": ravine_story,
    "crescent": crescent_story,
    "saddle": saddle_story,
    "momentum": momentum_story,
}


def get_story(name: str) -> Callable[..., Story]:
    """The story function by name; raises :class:`ConfigError` listing the names for an unknown one."""
    try:
        return STORIES[name]
    except KeyError:
        raise ConfigError(f"unknown lab {name!r}; choose from {', '.join(STORIES)} or all") from None
