"""Clipping, accumulation and complex parameters: each against torch's own way of doing it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch._dynamo
import torch._dynamo.testing
from _helpers import random_tensors

import ravine.optim as ro
from ravine.errors import ConfigError, NonFiniteError, UnsupportedError

STEPS = 60


def _noisy_grads(params: list[torch.nn.Parameter], generator: torch.Generator, scale: float = 3.0) -> None:
    for p in params:
        p.grad = p.detach() + scale * torch.randn(p.shape, generator=generator, dtype=p.dtype)


def test_clip_by_global_norm_equals_torch_clip_grad_norm_and_exposes_the_norm() -> None:
    ours, theirs = random_tensors(torch.float64), random_tensors(torch.float64)
    opt = ro.ChainOptimizer(ours, ro.chain(ro.ClipByGlobalNorm(0.5), ro.Momentum(0.9)), lr=0.05)
    reference = torch.optim.SGD(theirs, lr=0.05, momentum=0.9)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        _noisy_grads(ours, g1)
        _noisy_grads(theirs, g2)
        opt.step()
        norm = torch.nn.utils.clip_grad_norm_(theirs, 0.5)
        reference.step()
        pre_clip = opt.pre_clip_norm()
        assert pre_clip is not None
        assert pre_clip == pytest.approx(float(norm), rel=1e-12)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_clip_by_value_equals_torch_clip_grad_value_() -> None:
    ours, theirs = random_tensors(torch.float64), random_tensors(torch.float64)
    opt = ro.ChainOptimizer(ours, ro.chain(ro.ClipByValue(0.7), ro.Adam()), lr=1e-2)
    reference = torch.optim.Adam(theirs, lr=1e-2)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        _noisy_grads(ours, g1)
        _noisy_grads(theirs, g2)
        opt.step()
        torch.nn.utils.clip_grad_value_(theirs, 0.7)
        reference.step()
    assert opt.pre_clip_norm() is None  # value clipping keeps no norm
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_adaptive_clip_bounds_each_unit_by_its_weight_norm() -> None:
    """AGC's definition written out: per row, ‖g_i‖ ≤ λ·max(‖θ_i‖, ε), directions unchanged."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    w.data[0] = 0.0  # a zero row: its limit is λ·ε
    b = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
    clipping, eps = 0.05, 1e-3
    opt = ro.ChainOptimizer([w, b], ro.AdaptiveClip(clipping, eps=eps), lr=1.0)
    grads = [torch.randn(4, 3, dtype=torch.float64) * 10, torch.randn(4, dtype=torch.float64) * 1e-4]
    before = [w.detach().clone(), b.detach().clone()]
    w.grad, b.grad = grads[0].clone(), grads[1].clone()
    opt.step()
    step_w, step_b = before[0] - w.detach(), before[1] - b.detach()
    limits = before[0].norm(dim=1).clamp_min(eps) * clipping
    torch.testing.assert_close(step_w.norm(dim=1), torch.minimum(grads[0].norm(dim=1), limits))
    cosine = torch.nn.functional.cosine_similarity(step_w, grads[0], dim=1)
    torch.testing.assert_close(cosine, torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(step_b, grads[1])  # small enough: untouched
    expected_norm = torch.cat([g.flatten() for g in grads]).norm()
    assert opt.pre_clip_norm() == pytest.approx(float(expected_norm), rel=1e-12)


def test_multisteps_equals_torch_stepping_on_the_mean_of_k_gradients() -> None:
    every = 4
    ours, theirs = random_tensors(torch.float64), random_tensors(torch.float64)
    opt = ro.ChainOptimizer(
        ours, ro.MultiSteps(ro.chain(ro.WeightDecay(1e-2), ro.Adam()), every=every), lr=1e-2
    )
    reference = torch.optim.Adam(theirs, lr=1e-2, weight_decay=1e-2)
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    sums = [torch.zeros_like(p) for p in theirs]
    for t in range(1, 4 * every * 5 + 1):
        _noisy_grads(ours, g1)
        opt.step()
        _noisy_grads(theirs, g2)
        for total, p in zip(sums, theirs, strict=True):
            total.add_(p.grad)  # type: ignore[arg-type]
        if t % every == 0:
            for acc, p in zip(sums, theirs, strict=True):
                p.grad = acc / every
                acc.zero_()
            reference.step()
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert int(reference.state[theirs[0]]["step"]) == 20


def test_multisteps_refuses_torch_compile() -> None:
    torch._dynamo.reset()
    w = torch.nn.Parameter(torch.zeros(2))
    opt = ro.ChainOptimizer([w], ro.MultiSteps(ro.Adam(), every=2), lr=0.1)
    w.grad = torch.ones(2)
    with pytest.raises(Exception, match="MultiSteps") as caught:
        torch.compile(opt.step, backend="eager", fullgraph=True)()
    assert isinstance(caught.value, UnsupportedError) or "MultiSteps" in str(caught.value)


@pytest.mark.parametrize(
    ("preset", "reference", "kwargs"),
    [
        (ro.adam, torch.optim.Adam, {"lr": 1e-2, "weight_decay": 1e-2}),
        (ro.sgd, torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
        (ro.rmsprop, torch.optim.RMSprop, {"lr": 1e-3, "centered": True}),
        (ro.nadam, torch.optim.NAdam, {"lr": 1e-2}),
    ],
    ids=["adam", "sgd", "rmsprop", "nadam"],
)
def test_complex_parameters_equal_torch(preset: object, reference: object, kwargs: dict[str, float]) -> None:
    generator = torch.Generator().manual_seed(3)
    start = [
        torch.randn(5, 3, dtype=torch.complex128, generator=generator),
        torch.randn(4, dtype=torch.complex128),
    ]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    opts = [preset(ours, **kwargs), reference(theirs, **kwargs)]  # type: ignore[operator]
    for _ in range(STEPS):
        noise = [torch.randn(t.shape, dtype=t.dtype, generator=generator) for t in start]
        for params in (ours, theirs):
            for p, n in zip(params, noise, strict=True):
                p.grad = p.detach().conj() * 0.5 + n
        for opt in opts:
            opt.step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_compiled_global_clip_equals_eager() -> None:
    torch._dynamo.reset()
    results = []
    for compiled in (False, True):
        params = random_tensors(torch.float64)
        opt = ro.ChainOptimizer(params, ro.chain(ro.ClipByGlobalNorm(1.0), ro.Adam()), lr=1e-2)
        counter = torch._dynamo.testing.CompileCounter()
        step = torch.compile(opt.step, backend=counter, fullgraph=True) if compiled else opt.step
        generator = torch.Generator().manual_seed(4)
        for _ in range(8):
            _noisy_grads(params, generator)
            step()
        results.append((params, opt.pre_clip_norm()))
        if compiled:
            assert counter.frame_count == 2
    for a, b in zip(results[0][0], results[1][0], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-12)


@pytest.mark.parametrize("mode", ["eager", "for-loop", "compiled"])
def test_global_clip_stays_global_when_update_counts_differ(mode: str) -> None:
    """A parameter without a gradient at some steps has its own update count; the clip's norm must still
    cover every gradient of the step (as torch's clip_grad_norm_ + Adam), in the eager foreach path,
    with foreach=False (torch's for-loop) and under torch.compile."""
    torch._dynamo.reset()
    ours, theirs = random_tensors(torch.float64), random_tensors(torch.float64)
    rule = ro.chain(ro.ClipByGlobalNorm(0.5), ro.Adam())
    opt = ro.ChainOptimizer(ours, rule, lr=1e-2, foreach=False if mode == "for-loop" else None)
    step = torch.compile(opt.step, backend="eager") if mode == "compiled" else opt.step
    reference = torch.optim.Adam(theirs, lr=1e-2)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for t in range(24):
        _noisy_grads(ours, g1)
        _noisy_grads(theirs, g2)
        if t % 3 == 0:  # the first tensor sits out: its count falls behind the others'
            ours[0].grad, theirs[0].grad = None, None
        step()
        norm = torch.nn.utils.clip_grad_norm_([p for p in theirs if p.grad is not None], 0.5)
        reference.step()
        assert opt.state[ours[1]]["pre_clip_norm"] == pytest.approx(float(norm), rel=1e-12)
    assert int(opt.state[ours[0]]["step"]) == 16 and int(opt.state[ours[1]]["step"]) == 24
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_the_clip_then_adamw_recipe_equals_torchs() -> None:
    """chain(ClipByGlobalNorm(1.0), Adam(), DecoupledWeightDecay(0.01)) is torch's clip_grad_norm_ + AdamW."""
    ours, theirs = random_tensors(torch.float64), random_tensors(torch.float64)
    opt = ro.ChainOptimizer(
        ours, ro.chain(ro.ClipByGlobalNorm(1.0), ro.Adam(), ro.DecoupledWeightDecay(0.01)), lr=1e-2
    )
    reference = torch.optim.AdamW(theirs, lr=1e-2, weight_decay=0.01)
    g1, g2 = torch.Generator().manual_seed(6), torch.Generator().manual_seed(6)
    for _ in range(STEPS):
        _noisy_grads(ours, g1)
        _noisy_grads(theirs, g2)
        opt.step()
        torch.nn.utils.clip_grad_norm_(theirs, 1.0)
        reference.step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _clip_led(params: list[torch.nn.Parameter], nonfinite: str = "raise") -> ro.ChainOptimizer:
    rule = ro.chain(ro.ClipByGlobalNorm(0.5), ro.Adam(), ro.DecoupledWeightDecay(1e-2))
    return ro.ChainOptimizer(params, rule, lr=1e-2, nonfinite=nonfinite)  # type: ignore[arg-type]


def test_the_clips_norm_is_the_guard_and_equals_the_unguarded_step() -> None:
    """A group led by a global-norm clip is checked by the clip's own norm (one read of the gradients):
    the guarded step equals nonfinite='off' bit for bit, float32 and complex parameters included."""
    results = []
    for nonfinite in ("raise", "off"):
        start = torch.randn(4, dtype=torch.complex64, generator=torch.Generator().manual_seed(9))
        params = [*random_tensors(torch.float32), torch.nn.Parameter(start)]
        opt = _clip_led(params, nonfinite)
        generator = torch.Generator().manual_seed(3)
        for _ in range(20):
            for p in params:
                p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype)
            opt.step()
        results.append([p.detach().clone() for p in params])
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_a_nonfinite_gradient_in_a_clip_led_group_changes_nothing(policy: str) -> None:
    """NaN in one group led by a clip, the other group plain: refused before anything changes (params,
    moments, pre-clip norms and step counts), in either group."""
    params = random_tensors(torch.float64)
    led, plain = params[:3], params[3:]
    groups: list[dict[str, Any]] = [{"params": led}, {"params": plain, "transform": ro.Adam()}]
    opt = ro.ChainOptimizer(
        groups,
        ro.chain(ro.ClipByGlobalNorm(0.5), ro.Adam()),
        lr=1e-2,
        nonfinite=policy,  # type: ignore[arg-type]
    )
    generator = torch.Generator().manual_seed(0)
    _noisy_grads(params, generator)
    opt.step()
    before = ([p.detach().clone() for p in params], copy.deepcopy(opt.state_dict()))
    for where in (led, plain):
        _noisy_grads(params, generator)
        where[1].grad[0] = float("nan")  # type: ignore[index]
        if policy == "raise":
            with pytest.raises(NonFiniteError, match="no parameter or state was changed"):
                opt.step()
        else:
            opt.step()
        assert all(torch.equal(a, b) for a, b in zip(before[0], params, strict=True))
        assert str(opt.state_dict()["state"]) == str(before[1]["state"])
    assert opt.skipped_steps == (2 if policy == "skip" else 0)


def test_huge_finite_gradients_pass_the_clips_guard() -> None:
    """Squares of finite float32 gradients above 1.8e19 overflow the norm to inf; the exact check then
    finds them finite, and the clip scales them by min(1, c/inf) = 0, as torch's clip_grad_norm_ does."""
    ours = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))]
    theirs = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))]
    opt = ro.ChainOptimizer(ours, ro.chain(ro.ClipByGlobalNorm(1.0), ro.Momentum(0.9)), lr=0.1)
    reference = torch.optim.SGD(theirs, lr=0.1, momentum=0.9)
    for p, q in zip(ours, theirs, strict=True):
        p.grad, q.grad = torch.full(p.shape, 1e30), torch.full(q.shape, 1e30)
    opt.step()
    torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    reference.step()
    assert opt.pre_clip_norm() == float("inf")
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def _two_group_reference(theirs: list[torch.nn.Parameter], make: object, wd: float) -> torch.optim.Optimizer:
    matrices = [p for p in theirs if p.ndim >= 2]
    vectors = [p for p in theirs if p.ndim < 2]
    groups = [{"params": matrices, "weight_decay": wd}, {"params": vectors, "weight_decay": 0.0}]
    return make(groups, lr=1e-2)  # type: ignore[operator, no-any-return]


@pytest.mark.parametrize(
    ("parts", "reference"),
    [
        (lambda: ro.chain(ro.WeightDecay(0.1, mask="matrices"), ro.Adam()), torch.optim.Adam),
        (lambda: ro.chain(ro.Adam(), ro.DecoupledWeightDecay(0.1, mask="matrices")), torch.optim.AdamW),
    ],
    ids=["coupled", "decoupled"],
)
def test_weight_decay_mask_inside_one_group_equals_torch_with_two_groups(
    parts: object, reference: object
) -> None:
    ours, theirs = random_tensors(torch.float64), random_tensors(torch.float64)
    opt = ro.ChainOptimizer(ours, parts(), lr=1e-2, chunk_bytes=64)  # type: ignore[operator]
    torch_opt = _two_group_reference(theirs, reference, 0.1)
    g1, g2 = torch.Generator().manual_seed(6), torch.Generator().manual_seed(6)
    for _ in range(STEPS):
        _noisy_grads(ours, g1)
        _noisy_grads(theirs, g2)
        opt.step()
        torch_opt.step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_weight_decay_groups_by_name_equal_torch() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6), torch.nn.Linear(6, 2)).double()
    twin = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6), torch.nn.Linear(6, 2)).double()
    twin.load_state_dict(model.state_dict())
    groups = ro.weight_decay_groups(model.named_parameters(), 0.1, exclude=("*bias", "1.*"))
    assert [g["param_names"] for g in groups] == [
        ["0.weight", "2.weight"],
        ["0.bias", "1.weight", "1.bias", "2.bias"],
    ]
    opt = ro.adamw(groups, lr=1e-2)
    torch_opt = torch.optim.AdamW(
        ro.weight_decay_groups(twin.named_parameters(), 0.1, exclude=("*bias", "1.*")), lr=1e-2
    )
    x = torch.randn(16, 4, dtype=torch.float64)
    for _ in range(20):
        for m, o in ((model, opt), (twin, torch_opt)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_unknown_weight_decay_mask_is_refused() -> None:
    with pytest.raises(ConfigError, match="weight_decay_groups"):
        ro.WeightDecay(0.1, mask="biases")


def _steps(make: object, dtype: torch.dtype, steps: int) -> list[torch.Tensor]:
    params = random_tensors(dtype)
    opt = make(params)  # type: ignore[operator]
    generator = torch.Generator().manual_seed(3)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator, dtype=dtype)
        opt.step()
    return [p.detach() for p in params]


def test_momentum_rounds_as_torch_after_a_preconditioner_and_in_one_pass_on_the_gradient() -> None:
    # After RMSProp's division the buffer is updated with torch's rounding (mul_, then add_): bit for bit.
    ours = _steps(lambda p: ro.rmsprop(p, lr=1e-3, momentum=0.9), torch.float32, 50)
    theirs = _steps(lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.9, foreach=False), torch.float32, 50)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    built = ro.chain(ro.RMSProp(), ro.Momentum(0.9))
    assert isinstance(built, ro.Chain) and not built.transforms[1]._one_pass  # type: ignore[attr-defined]
    # On the gradient itself b = g + μb is one fused multiply-add pass: within rounding of torch, not equal.
    ours = _steps(lambda p: ro.sgd(p, lr=1e-2, momentum=0.9), torch.float32, 50)
    theirs = _steps(lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, foreach=False), torch.float32, 50)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert ro.chain(ro.WeightDecay(1e-2), ro.Momentum(0.9)).transforms[1]._one_pass  # type: ignore[attr-defined]
