"""The torch.optim.Optimizer adapter: state dicts, param groups, LR schedulers, inspection, Adagrad forms."""

from __future__ import annotations

import copy
import io
import math
from typing import Any

import pytest
import torch
from _helpers import TORCH_LR, assert_all_close, make_mlp, random_tensors, ravine_preset, run_random

import ravine.optim as ro


def _feed(params: list[torch.nn.Parameter], generator: torch.Generator) -> None:
    for p in params:
        p.grad = p.detach() + torch.randn(p.shape, generator=generator, dtype=p.dtype)


@pytest.mark.parametrize("name", list(ro.PRESETS))
@pytest.mark.parametrize("via", ["deepcopy", "torch.save"])
def test_state_dict_round_trip_continues_bit_identically(name: str, via: str) -> None:
    kwargs: dict[str, Any] = {"weight_decay": 1e-2}
    if name == "rmsprop":
        kwargs.update(momentum=0.9, centered=True)
    if name == "adagrad":
        kwargs.update(lr_decay=0.01)
    params = random_tensors(torch.float32)
    opt = ravine_preset(name)(params, lr=TORCH_LR[name], **kwargs)
    generator = torch.Generator().manual_seed(5)
    for _ in range(7):
        _feed(params, generator)
        opt.step()
    if via == "deepcopy":
        saved = copy.deepcopy(opt.state_dict())
    else:
        buffer = io.BytesIO()
        torch.save(opt.state_dict(), buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
    saved_params = [p.detach().clone() for p in params]
    saved_generator = generator.get_state()
    for _ in range(20):
        _feed(params, generator)
        opt.step()
    expected = [p.detach().clone() for p in params]

    resumed = [torch.nn.Parameter(p.clone()) for p in saved_params]
    opt2 = ravine_preset(name)(resumed, lr=TORCH_LR[name], **kwargs)
    opt2.load_state_dict(saved)
    generator.set_state(saved_generator)
    for _ in range(20):
        _feed(resumed, generator)
        opt2.step()
    for a, b in zip(resumed, expected, strict=True):
        assert torch.equal(a.detach(), b)


def test_state_dict_loads_torch_adam_state() -> None:
    """Same state keys as torch: a torch.optim.Adam checkpoint resumes in ravine's adam."""
    ours, theirs = random_tensors(torch.float64), random_tensors(torch.float64)
    reference = torch.optim.Adam(theirs, lr=1e-3)
    generator = torch.Generator().manual_seed(3)
    for _ in range(5):
        _feed(theirs, generator)
        reference.step()
    with torch.no_grad():
        for a, b in zip(ours, theirs, strict=True):
            a.copy_(b)
    opt = ro.adam(ours, lr=1e-3)
    opt.load_state_dict(copy.deepcopy(reference.state_dict()))
    for _ in range(30):
        state = generator.get_state()
        _feed(theirs, generator)
        reference.step()
        generator.set_state(state)
        _feed(ours, generator)
        opt.step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_param_groups_with_different_hyper_parameters_match_torch() -> None:
    def groups(params: list[torch.nn.Parameter]) -> list[dict[str, Any]]:
        return [
            {"params": params[:2], "lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 0.1},
            {"params": params[2:], "amsgrad": True},
        ]

    ours = run_random(lambda p: ro.adam(groups(p), lr=1e-3), torch.float64, 300)
    theirs = run_random(lambda p: torch.optim.Adam(groups(p), lr=1e-3), torch.float64, 300)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_param_groups_with_different_transforms_from_parts() -> None:
    params = random_tensors(torch.float64)
    groups: list[dict[str, Any]] = [
        {"params": params[:2], "transform": ro.Momentum(0.9), "lr": 0.01},
        {"params": params[2:]},
    ]
    opt = ro.ChainOptimizer(
        groups,
        ro.Adam(),
        lr=1e-3,
    )
    generator = torch.Generator().manual_seed(0)
    _feed(params, generator)
    opt.step()
    assert set(opt.state[params[0]]) == {"step", "momentum_buffer"}
    assert set(opt.state[params[3]]) == {"step", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize("scheduler", ["step", "lambda"])
def test_torch_lr_schedulers_drive_the_adapter(scheduler: str) -> None:
    def make(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        if scheduler == "step":
            return torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / math.sqrt(t + 1))

    results = []
    for factory in (lambda p: ro.adam(p, lr=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2)):
        model = make_mlp(torch.float64)
        opt = factory(model.parameters())
        sched = make(opt)
        x = torch.randn(16, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        lrs = []
        for _ in range(60):
            opt.zero_grad()
            torch.autograd.backward(model(x).pow(2).mean())
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        results.append(([p.detach() for p in model.parameters()], lrs))
    (ours, our_lrs), (theirs, their_lrs) = results
    assert our_lrs == their_lrs
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_step_with_closure_returns_loss() -> None:
    model = make_mlp(torch.float32)
    opt = ro.sgd(model.parameters(), lr=0.1)
    x = torch.randn(4, 6)

    def closure() -> float:
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        torch.autograd.backward(loss)
        return float(loss.detach())

    first = opt.step(closure)
    assert isinstance(first, float)
    assert opt.step(closure) is not None


def test_params_without_grad_are_left_alone_and_keep_their_own_step() -> None:
    params = random_tensors(torch.float64)
    opt = ro.adam(params, lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    _feed(params, generator)
    params[1].grad = None
    before = params[1].detach().clone()
    opt.step()
    assert torch.equal(params[1].detach(), before)
    assert params[1] not in opt.state or opt.state[params[1]].get("step", 0) == 0
    _feed(params, generator)
    opt.step()
    assert opt.state[params[0]]["step"] == 2
    assert opt.state[params[1]]["step"] == 1


# ---------------------------------------------------------------------------------------- inspection
def _stepped(opt_factory: Any, steps: int = 5) -> tuple[list[torch.nn.Parameter], ro.ChainOptimizer]:
    params = random_tensors(torch.float64)
    opt = opt_factory(params)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        _feed(params, generator)
        opt.step()
    return params, opt


def test_effective_lr_of_adam_matches_hand_formula_and_the_step() -> None:
    lr, (beta1, beta2), eps = 1e-2, (0.9, 0.999), 1e-8
    params, opt = _stepped(lambda p: ro.adam(p, lr=lr))
    p = params[0]
    state = opt.state[p]
    t = int(state["step"])
    v_hat = state["exp_avg_sq"] / (1 - beta2**t)
    expected = lr / ((v_hat.sqrt() + eps) * (1 - beta1**t))
    torch.testing.assert_close(opt.effective_lr(p), expected, rtol=1e-12, atol=0)
    first_buffer = opt.momentum_buffer(p)
    assert first_buffer is not None
    torch.testing.assert_close(first_buffer, state["exp_avg"], rtol=0, atol=0)
    # (η/σ) ⊙ m is the step just taken
    before = p.detach().clone()
    generator = torch.Generator().manual_seed(9)
    _feed(params, generator)
    opt.step()
    buffer = opt.momentum_buffer(p)
    assert buffer is not None
    torch.testing.assert_close(before - p.detach(), opt.effective_lr(p) * buffer, rtol=1e-9, atol=1e-15)


def test_effective_lr_of_sgd_rmsprop_adagrad_radam() -> None:
    params, opt = _stepped(lambda p: ro.momentum(p, lr=0.05))
    torch.testing.assert_close(opt.effective_lr(params[0]), torch.full_like(params[0], 0.05))

    params, opt = _stepped(lambda p: ro.rmsprop(p, lr=1e-3, eps=1e-8))
    expected = 1e-3 / (opt.state[params[0]]["square_avg"].sqrt() + 1e-8)
    torch.testing.assert_close(opt.effective_lr(params[0]), expected, rtol=1e-12, atol=0)
    assert opt.momentum_buffer(params[0]) is None

    params, opt = _stepped(lambda p: ro.adagrad(p, lr=0.1, lr_decay=0.5), steps=4)
    expected = 0.1 / (1 + 3 * 0.5) / (opt.state[params[0]]["sum"].sqrt() + 1e-10)
    torch.testing.assert_close(opt.effective_lr(params[0]), expected, rtol=1e-12, atol=0)

    params, opt = _stepped(lambda p: ro.radam(p, lr=1e-3), steps=3)  # ρ_t ≤ 5: plain m̂
    torch.testing.assert_close(opt.effective_lr(params[0]), torch.full_like(params[0], 1e-3 / (1 - 0.9**3)))


def test_lr_summary_names_layers() -> None:
    model = make_mlp(torch.float32)
    opt = ro.adam(model.parameters(), lr=1e-3)
    torch.autograd.backward(model(torch.randn(3, 6)).sum())
    opt.step()
    rows = opt.lr_summary(model.named_parameters())
    assert [r.name for r in rows] == [n for n, _ in model.named_parameters()]
    for row in rows:
        assert row.lr_min <= row.lr_median <= row.lr_max
        assert row.momentum_norm is not None
    assert opt.lr_summary()[0].name == "group0.param0"


# --------------------------------------------------------------------------------- the lecture's Adagrad
def test_mean_adagrad_sigma_is_root_mean_square_on_hand_example() -> None:
    rule = ro.AdagradMean(eps=1e-10)
    p = [torch.zeros(2, dtype=torch.float64)]
    state = rule.init(p)
    gradients = [torch.tensor([3.0, 1.0]), torch.tensor([4.0, -1.0]), torch.tensor([0.0, 2.0])]
    for t, g in enumerate(gradients, start=1):
        rule.update([g.double()], state, p, step=t)
        seen = torch.stack(gradients[:t]).double()
        expected = seen.pow(2).mean(dim=0).sqrt() + 1e-10
        sigma = rule.denominator(state, step=t)
        assert sigma is not None
        torch.testing.assert_close(sigma[0], expected, rtol=1e-15, atol=0)
    sigma = rule.denominator(state, step=3)
    assert sigma is not None
    torch.testing.assert_close(sigma[0], torch.tensor([5 / math.sqrt(3), math.sqrt(2)], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mean_adagrad_with_inverse_sqrt_decay_equals_torch_sum_adagrad(dtype: torch.dtype) -> None:
    """σ_mean = sqrt(S/t) and η_t = η/sqrt(t) give η/sqrt(S): torch's Adagrad (up to ε·sqrt(t) vs ε)."""
    ours = run_random(
        lambda p: ro.ChainOptimizer(p, ro.AdagradMean(eps=1e-10), lr=0.05, schedule=ro.InverseSqrtDecay()),
        dtype,
        500,
    )
    theirs = run_random(lambda p: torch.optim.Adagrad(p, lr=0.05), dtype, 500)
    assert_all_close(ours, theirs, dtype, loose=True)


def test_mean_adagrad_preset_flag() -> None:
    params, opt = _stepped(lambda p: ro.adagrad(p, lr=0.1, mean=True), steps=4)
    expected = 0.1 / ((opt.state[params[0]]["sum"] / 4).sqrt() + 1e-10)
    torch.testing.assert_close(opt.effective_lr(params[0]), expected, rtol=1e-12, atol=0)


def test_chain_prefixes_colliding_state_keys() -> None:
    rule = ro.chain(ro.Momentum(0.9), ro.Momentum(0.5))
    assert rule.state_keys() == ("0/momentum_buffer", "1/momentum_buffer")
    assert ro.chain() == ro.Identity()
    assert ro.chain(ro.chain(ro.WeightDecay(0.1)), ro.Adam()).state_keys() == ("exp_avg", "exp_avg_sq")


def test_functional_core_does_not_modify_inputs() -> None:
    params = [torch.randn(4, dtype=torch.float64)]
    grads = [torch.randn(4, dtype=torch.float64)]
    saved = (params[0].clone(), grads[0].clone())
    for rule in (
        ro.chain(ro.WeightDecay(0.1), ro.Momentum(0.9, nesterov=True)),
        ro.chain(ro.Adam(amsgrad=True), ro.DecoupledWeightDecay(0.1)),
        ro.chain(ro.RMSProp(centered=True), ro.Momentum(0.9)),
        ro.AdagradSum(initial_accumulator_value=0.1),
        ro.RAdam(),
        ro.EmaMomentum(0.9, bias_correction=True),
    ):
        state = rule.init(params)
        for step in range(1, 8):
            direction = rule.update(grads, state, params, step=step)
            assert all(torch.isfinite(d).all() for d in direction)
        assert torch.equal(params[0], saved[0])
        assert torch.equal(grads[0], saved[1])


@pytest.mark.parametrize("name", list(ro.PRESETS))
def test_chunking_and_slicing_do_not_change_results(name: str) -> None:
    # chunk_bytes=40 cuts every parameter over 80 bytes into 10-element flat slices; a transposed
    # (non-contiguous) gradient keeps its parameter whole. All must equal one chunk and the for-loop.
    kwargs: dict[str, Any] = {"weight_decay": 1e-2}
    if name == "rmsprop":
        kwargs.update(momentum=0.9, centered=True)
    results = []
    for options in ({"chunk_bytes": 40}, {"chunk_bytes": None}, {"foreach": False}):
        generator = torch.Generator().manual_seed(0)
        params = [
            torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in [(9, 7), (3,), (5, 6)]
        ]
        opt = ravine_preset(name)(params, lr=TORCH_LR[name], **kwargs)
        if "chunk_bytes" in options:
            opt.chunk_bytes = options["chunk_bytes"]
        else:
            for group in opt.param_groups:
                group["foreach"] = False
        for _ in range(4):
            for p in params:
                p.grad = torch.randn(p.shape, generator=generator)
            params[2].grad = torch.randn((6, 5), generator=generator).t()
            opt.step()
        results.append([p.detach().clone() for p in params])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)
