"""The batched runner: equal to one-at-a-time runs and to torch.optim; recording; errors."""

from __future__ import annotations

import pytest
import torch

from ravine import ConfigError, DataError, NonFiniteError
from ravine.optim import AdagradMean, AdagradSum, Adam, InverseSqrtDecay, Momentum, RMSProp, chain
from ravine.surfaces import CallableSurface, LabConfig, Ravine, get_surface, run_lab
from ravine.surfaces._fused import MixedRule
from ravine.surfaces._setup import group_configs

F64 = torch.float64


def _mixed_configs() -> list[LabConfig]:
    return [
        LabConfig("gd a", lr=1e-3),
        LabConfig("adam", Adam(), 0.05),
        LabConfig("gd b", lr=2e-4, start=(-1.0, 2.0)),
        LabConfig("rms", RMSProp(0.9), InverseSqrtDecay(50.0, lr=0.01)),
        LabConfig("adam 2", Adam(), 0.01),
        LabConfig("heavy ball", Momentum(0.9), 1e-3),
    ]


def test_batched_run_equals_one_config_at_a_time() -> None:
    configs = _mixed_configs()
    together = run_lab("rosenbrock", configs, steps=300, chunk=64)
    for i, config in enumerate(configs):
        alone = run_lab("rosenbrock", [config], steps=300, chunk=1000)
        torch.testing.assert_close(together.theta[:, i], alone.theta[:, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(together.loss[:, i], alone.loss[:, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(together.effective_lr[:, i], alone.effective_lr[:, 0], rtol=1e-12, atol=0)


def test_fused_rules_equal_one_update_per_group() -> None:
    # GD, heavy ball, both Adagrads and RMSProp (two α) as one MixedRule: the numbers of one update per group
    # to float rounding, schedules, a per-config start and an unfused Adam group included. (The fused step
    # rounds differently by an ulp or so, so the comparison runs where the dynamics do not amplify it:
    # RMSProp's sign-like bouncing on Rosenbrock's valley floor is chaotic and would, for any perturbation.)
    configs = [
        *(LabConfig(f"gd {i}", lr=lr) for i, lr in enumerate((1e-4, 2e-3))),
        LabConfig("hb", Momentum(0.9), 1e-4, start=(-1.0, 2.0)),
        LabConfig("hb 2", Momentum(0.5), 3e-4),
        LabConfig("ada", AdagradMean(), InverseSqrtDecay(30.0, lr=0.2)),
        LabConfig("ada sum", AdagradSum(initial_accumulator_value=0.1), 0.1),
        LabConfig("rms", RMSProp(0.9), 1e-3),
        LabConfig("rms 2", RMSProp(0.99, eps=1e-6), 3e-3),
        LabConfig("adam", Adam(), 0.01),
        LabConfig("nesterov", Momentum(0.9, nesterov=True), 1e-4),
    ]
    for surface, steps in (("ravine", 3000), ("crescent", 400)):
        fused = run_lab(surface, configs, steps=steps, chunk=97, sigma_every=7)
        apart = run_lab(surface, configs, steps=steps, chunk=97, sigma_every=7, fuse=False)
        for name in ("loss", "grad_norm", "theta", "sigma", "effective_lr", "final_theta"):
            torch.testing.assert_close(
                getattr(fused, name), getattr(apart, name), rtol=1e-10, atol=1e-12, msg=f"{surface} {name}"
            )
        assert bool(torch.isfinite(fused.theta).all())
        assert len({tuple(fused.theta[-1, i].tolist()) for i in range(len(configs))}) == len(configs)
        assert not torch.equal(fused.theta[-1], fused.theta[0])  # every configuration moved
    alone = [LabConfig(f"ada {lr}", AdagradMean(), lr) for lr in (0.05, 0.2)]  # one group, also fused
    one, apart = (run_lab("rosenbrock", alone, steps=200, fuse=fuse) for fuse in (True, False))
    torch.testing.assert_close(one.theta, apart.theta, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(one.sigma, apart.sigma, rtol=1e-12, atol=0.0)


def test_fused_run_costs_fewer_updates() -> None:
    # What makes the fused run fast, counted rather than timed: its group layout.
    transforms = [chain(), Momentum(0.9), AdagradMean(), RMSProp(0.9), Adam(), Momentum(0.9, nesterov=True)]
    assert len(group_configs(transforms, fuse=False)) == 6
    fused = group_configs(transforms)
    assert len(fused) == 3 and fused[0].columns == [0, 1, 2, 3]
    assert len(group_configs([chain()])) == 1 and group_configs([chain()])[0].identity  # GD alone stays
    assert isinstance(group_configs([AdagradMean()])[0].transform, MixedRule)


@pytest.mark.parametrize(
    ("make_transform", "make_torch", "lr"),
    [
        (chain, lambda p, lr: torch.optim.SGD([p], lr=lr), 1e-3),
        (
            lambda: Momentum(0.9, nesterov=True),
            lambda p, lr: torch.optim.SGD([p], lr, 0.9, nesterov=True),
            1e-3,
        ),
        (AdagradSum, lambda p, lr: torch.optim.Adagrad([p], lr=lr), 0.1),
        (lambda: RMSProp(0.9), lambda p, lr: torch.optim.RMSprop([p], lr=lr, alpha=0.9), 0.01),
        (Adam, lambda p, lr: torch.optim.Adam([p], lr=lr), 0.05),
    ],
)
def test_matches_torch_optim_loop(make_transform, make_torch, lr: float) -> None:  # type: ignore[no-untyped-def]
    surface = get_surface("crescent")
    run = run_lab(surface, [LabConfig("x", make_transform(), lr)], steps=200)
    param = surface.start_tensor().clone().requires_grad_(True)
    opt = make_torch(param, lr)
    path = [param.detach().clone()]
    for _ in range(200):
        opt.zero_grad()
        torch.autograd.backward(surface.loss(param))
        opt.step()
        path.append(param.detach().clone())
    reference = torch.stack(path)
    # Same formulas, different rounding order: identical early, then round-off grows (RMSProp's bounce
    # amplifies it to ~1e-8 by step 200), so the tight check covers the first 60 steps.
    torch.testing.assert_close(run.theta[:61, 0], reference[:61], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.theta[:, 0], reference, rtol=1e-5, atol=1e-6)


def test_lecture_adagrad_is_sum_adagrad_with_inverse_sqrt_decay() -> None:
    steps = 500
    run = run_lab(
        "ravine",
        [
            LabConfig("mean", AdagradMean(eps=1e-30), InverseSqrtDecay(1.0, lr=0.2)),
            LabConfig("sum", AdagradSum(eps=1e-30), 0.2),
        ],
        steps=steps,
    )
    torch.testing.assert_close(run.theta[:, 0], run.theta[:, 1], rtol=1e-9, atol=1e-12)


def test_recording_strides_and_chunks_agree() -> None:
    configs = [LabConfig("gd", lr=1e-3), LabConfig("ada", AdagradMean(), 0.2)]
    full = run_lab("ravine", configs, steps=1000)
    sparse = run_lab("ravine", configs, steps=1000, record_every=7, theta_every=100, sigma_every=50, chunk=33)
    assert full.steps.tolist() == list(range(1001))
    assert sparse.steps.tolist() == [*range(0, 1000, 7), 1000]
    assert sparse.theta_steps.tolist() == list(range(0, 1001, 100))
    assert sparse.sigma_steps.tolist() == list(range(0, 1000, 50))
    torch.testing.assert_close(sparse.loss, full.loss[sparse.steps])
    torch.testing.assert_close(sparse.grad_norm, full.grad_norm[sparse.steps])
    torch.testing.assert_close(sparse.theta, full.theta[sparse.theta_steps])
    torch.testing.assert_close(sparse.sigma, full.sigma[sparse.sigma_steps])
    torch.testing.assert_close(full.final_theta, full.theta[-1])
    logged = run_lab("ravine", configs, steps=1000, sigma_steps=[0, 9, 99, 999])
    torch.testing.assert_close(logged.effective_lr, full.effective_lr[[0, 9, 99, 999]])


def test_recorded_quantities_are_what_they_claim() -> None:
    surface = Ravine()
    run = run_lab(surface, [LabConfig("ada", AdagradMean(eps=1e-10), 0.2)], steps=50)
    torch.testing.assert_close(run.loss[:, 0], surface.loss(run.theta[:, 0]))
    torch.testing.assert_close(run.grad_norm[:, 0], surface.gradient(run.theta[:, 0]).norm(dim=-1))
    grads = surface.gradient(run.theta[:-1, 0])
    t = torch.arange(1, 51, dtype=F64).unsqueeze(-1)
    sigma = (grads.square().cumsum(0) / t).sqrt() + 1e-10  # the lecture's root mean square
    torch.testing.assert_close(run.sigma[:, 0], sigma)
    torch.testing.assert_close(run.effective_lr[:, 0], 0.2 / sigma)
    gd = run_lab(surface, [LabConfig("gd", lr=0.01)], steps=5)
    assert bool((gd.sigma == 1).all()) and bool((gd.effective_lr == 0.01).all())


def test_per_config_and_shared_start_points() -> None:
    run = run_lab(
        "saddle",
        [LabConfig("a", lr=0.1), LabConfig("b", lr=0.1, start=(0.5, 0.5))],
        steps=0,
        start=(0.2, -0.1),
    )
    assert run.theta[0].tolist() == [[0.2, -0.1], [0.5, 0.5]]
    many = run_lab(
        "saddle", [LabConfig("a"), LabConfig("b")], steps=1, start=torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    )
    assert many.theta[0].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_nan_surface_names_config_and_step() -> None:
    def poisoned(t: torch.Tensor) -> torch.Tensor:
        x, y = t[..., 0], t[..., 1]
        return torch.where(x < 0.5, torch.full_like(x, float("nan")), x * x + y * y)

    surface = CallableSurface(poisoned, name="poisoned", start=(1.0, 1.0))
    configs = [LabConfig("slow", lr=0.01), LabConfig("fast", lr=0.2)]
    with pytest.raises(NonFiniteError, match=r"surface 'poisoned', config 'fast'.* at step 2\b"):
        run_lab(surface, configs, steps=100, chunk=16)
    kept = run_lab(surface, configs, steps=10, on_nonfinite="keep")
    assert torch.isnan(kept.loss[-1, 1]) and torch.isfinite(kept.loss[-1, 0])


def test_divergence_is_reported() -> None:
    with pytest.raises(NonFiniteError, match="config 'too big'"):
        run_lab("ravine", [LabConfig("ok", lr=1e-3), LabConfig("too big", lr=0.011)], steps=10_000)


def test_bad_inputs_are_clear_errors() -> None:
    ok = [LabConfig("gd", lr=0.01)]
    with pytest.raises(
        DataError, match=r"shape \(2,\) or one per configuration of shape \(1, 2\).*got shape \(3,\)"
    ):
        run_lab("ravine", ok, steps=1, start=(1.0, 2.0, 3.0))
    with pytest.raises(DataError, match=r"config 'gd': start must be.*got shape \(1,\)"):
        run_lab("ravine", [LabConfig("gd", start=(1.0,))], steps=1)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"one scalar per point.*got shape \(1, 2\)"):
        run_lab(lambda t: t * 1.0, ok, steps=1)
    with pytest.raises(DataError, match=r"one scalar per point.*got shape \(\)"):
        run_lab(lambda t: t.sum(), ok, steps=1)
    with pytest.raises(ConfigError, match="unique"):
        run_lab("ravine", [LabConfig("a"), LabConfig("a")], steps=1)
    with pytest.raises(ConfigError, match="lr must be a positive"):
        run_lab("ravine", [LabConfig("a", lr=-1.0)], steps=1)
    with pytest.raises(ConfigError, match="steps"):
        run_lab("ravine", ok, steps=-1)
    with pytest.raises(ConfigError, match="record_every"):
        run_lab("ravine", ok, steps=1, record_every=0)
    with pytest.raises(ConfigError, match="Transform"):
        run_lab("ravine", [LabConfig("a", transform="adam")], steps=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least one"):
        run_lab("ravine", [], steps=1)
    with pytest.raises(ConfigError, match="fuse must be True or False, got 'yes'"):
        run_lab("ravine", ok, steps=1, fuse="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no configuration 'zzz'"):
        run_lab("ravine", ok, steps=1).index("zzz")


def test_float32_runs() -> None:
    run = run_lab("crescent", [LabConfig("rms", RMSProp(0.9), 1e-3)], steps=100, dtype=torch.float32)
    assert run.theta.dtype == torch.float32 and run.loss.dtype == torch.float32


def test_closed_form_and_autograd_surfaces_agree_and_results_are_ordinary_tensors() -> None:
    # The built-in surface's closed-form gradient runs the loop in inference mode; the same function as a
    # callable (autograd gradient) runs it normally. Same trajectories; results usable anywhere afterwards.
    ravine = Ravine()
    configs = _mixed_configs()
    fast = run_lab(ravine, configs, steps=300, chunk=64)
    slow = run_lab(CallableSurface(ravine.loss, start=ravine.start), configs, steps=300, chunk=64)
    torch.testing.assert_close(fast.theta, slow.theta, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.sigma, slow.sigma, rtol=1e-12, atol=1e-12)
    for tensor in (fast.theta, fast.loss, fast.sigma, fast.final_theta, fast.final_loss, fast.effective_lr):
        assert not tensor.is_inference()
    fast.theta.add_(1.0)  # in-place use outside inference mode must work
    point = fast.final_theta[0].clone().requires_grad_(True)
    ravine.loss(point).backward()
    assert point.grad is not None
