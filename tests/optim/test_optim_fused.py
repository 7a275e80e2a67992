"""``fused=True``: torch's fused CPU kernels on ravine's state — equal to torch.optim's fused, or refused."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from _helpers import TORCH_CLASSES, make_mlp, random_tensors, run_mlp, run_random
from _helpers import noisy_quadratic_grads as _grads
from _helpers import weights_only_copy as _weights_only

import ravine.optim as ro
from ravine.errors import ConfigError, NonFiniteError, RavineError, UnsupportedError

STEPS = 500
GRID: list[tuple[str, dict[str, Any]]] = [
    ("adam", {}),
    ("adam", {"weight_decay": 1e-2, "amsgrad": True}),
    ("adam", {"betas": (0.8, 0.99), "eps": 1e-6, "maximize": True}),
    ("adam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("adamw", {"weight_decay": 0.1}),
    ("adamw", {"amsgrad": True, "maximize": True}),
    ("sgd", {"weight_decay": 1e-2}),
    ("sgd", {"maximize": True}),
    ("momentum", {"momentum": 0.9, "weight_decay": 1e-2, "nesterov": True}),
    ("momentum", {"momentum": 0.9, "dampening": 0.1}),
    ("momentum", {"momentum": 0.5, "maximize": True, "weight_decay": 1e-3}),
    ("adagrad", {}),
    ("adagrad", {"lr_decay": 1e-2, "initial_accumulator_value": 0.1, "weight_decay": 1e-2}),
    ("adagrad", {"eps": 1e-6, "maximize": True}),
]
IDS = [f"{name}-" + "-".join(f"{k}={v}" for k, v in kwargs.items()) for name, kwargs in GRID]
LR = {"adam": 1e-2, "adamw": 1e-2, "sgd": 1e-3, "momentum": 1e-3, "adagrad": 5e-2}


def _pair(name: str, kwargs: dict[str, Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    preset: Callable[..., ro.ChainOptimizer] = getattr(ro, name)
    ours = dict(kwargs)
    if name == "momentum":
        ours["momentum"] = kwargs["momentum"]
    lr = LR[name]
    return (
        lambda p: preset(p, lr=lr, fused=True, **ours),
        lambda p: TORCH_CLASSES[name](p, lr=lr, fused=True, **kwargs),
    )


def _assert_equal(ours: Sequence[torch.Tensor], theirs: Sequence[torch.Tensor]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b), float((a - b).abs().max())


MODEL_CASES: list[tuple[str, dict[str, Any]]] = [
    ("adam", {"weight_decay": 1e-2, "amsgrad": True}),
    ("adamw", {}),
    ("momentum", {"momentum": 0.9, "nesterov": True}),
    ("adagrad", {"lr_decay": 1e-3}),
]
CASES = [("random", *case) for case in GRID] + [("mlp", *case) for case in MODEL_CASES]


@pytest.mark.parametrize(
    ("problem", "name", "kwargs"),
    CASES,
    ids=IDS + [f"mlp-{name}-{'-'.join(map(str, kwargs.values()))}" for name, kwargs in MODEL_CASES],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_fused_preset_is_bit_identical_to_torch_fused(
    problem: str, name: str, kwargs: dict[str, Any], dtype: torch.dtype
) -> None:
    """500 steps on random tensors (the grid) and on a small MLP (one case per kernel)."""
    run = run_random if problem == "random" else run_mlp
    ours, theirs = _pair(name, kwargs)
    _assert_equal(run(ours, dtype, STEPS), run(theirs, dtype, STEPS))


def _drive(
    make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    *,
    steps: int,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    edit: Callable[[torch.optim.Optimizer, int], None] | None = None,
    groups: Callable[[list[torch.nn.Parameter]], Any] | None = None,
) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer]:
    params = random_tensors(torch.float64)
    opt = make(groups(params) if groups else params)
    sched = scheduler(opt) if scheduler else None
    generator = torch.Generator().manual_seed(7)
    for t in range(steps):
        for p in params:
            p.grad = torch.sin(p.detach()) + 0.1 * torch.randn(p.shape, generator=generator, dtype=p.dtype)
        if edit is not None:
            edit(opt, t)
        opt.step()
        if sched is not None:
            sched.step()
    return params, opt


def test_fused_follows_torch_lr_schedulers_that_cycle_lr_and_betas() -> None:
    def one_cycle(opt: torch.optim.Optimizer) -> Any:
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-2, total_steps=STEPS)

    ours, _ = _drive(lambda p: ro.adamw(p, fused=True), steps=STEPS, scheduler=one_cycle)
    theirs, _ = _drive(lambda p: torch.optim.AdamW(p, fused=True), steps=STEPS, scheduler=one_cycle)
    _assert_equal(ours, theirs)

    def step_lr(opt: torch.optim.Optimizer) -> Any:
        return torch.optim.lr_scheduler.StepLR(opt, step_size=50, gamma=0.5)

    ours, _ = _drive(lambda p: ro.momentum(p, lr=1e-2, fused=True), steps=STEPS, scheduler=step_lr)
    theirs, _ = _drive(
        lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, fused=True), steps=STEPS, scheduler=step_lr
    )
    _assert_equal(ours, theirs)


def test_ravine_schedule_multiplies_the_fused_lr_as_torch_lambda_lr() -> None:
    schedule = ro.CosineDecay(STEPS)
    ours, _ = _drive(lambda p: ro.adam(p, lr=1e-2, fused=True, schedule=schedule), steps=STEPS)

    def lambda_lr(opt: torch.optim.Optimizer) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(opt, schedule)

    theirs, _ = _drive(lambda p: torch.optim.Adam(p, lr=1e-2, fused=True), steps=STEPS, scheduler=lambda_lr)
    _assert_equal(ours, theirs)


def test_per_group_fused_and_group_edits_equal_torch() -> None:
    def groups(params: list[torch.nn.Parameter]) -> list[dict[str, Any]]:
        return [
            {"params": params[:2], "fused": True, "maximize": True},
            {"params": params[2:4], "fused": False, "weight_decay": 1e-2},
            {"params": params[4:], "fused": True, "amsgrad": True},
        ]

    def edit(opt: torch.optim.Optimizer, t: int) -> None:
        if t == 100:
            opt.param_groups[0]["lr"] = 3e-3
            opt.param_groups[2]["betas"] = (0.8, 0.95)
            opt.param_groups[2]["weight_decay"] = 1e-3

    ours, opt = _drive(lambda g: ro.adam(g, lr=1e-2), steps=300, groups=groups, edit=edit)
    theirs, _ = _drive(lambda g: torch.optim.Adam(g, lr=1e-2), steps=300, groups=groups, edit=edit)
    _assert_equal(ours, theirs)
    assert [g["fused"] for g in opt.param_groups] == [True, False, True]


def test_inspection_of_a_fused_optimizer_equals_the_eager_one() -> None:
    """effective_lr, momentum_buffer and lr_summary read the same state, whichever step wrote it."""
    fused_params, fused = _drive(lambda p: ro.adam(p, lr=1e-2, fused=True), steps=40)
    eager_params, eager = _drive(lambda p: ro.adam(p, lr=1e-2), steps=40)
    assert isinstance(fused, ro.ChainOptimizer)
    assert isinstance(eager, ro.ChainOptimizer)
    for p, q in zip(fused_params, eager_params, strict=True):
        torch.testing.assert_close(fused.effective_lr(p), eager.effective_lr(q), rtol=1e-12, atol=0)
        a, b = fused.momentum_buffer(p), eager.momentum_buffer(q)
        assert a is not None
        assert b is not None
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    summary = fused.lr_summary()
    assert len(summary) == len(fused_params)
    assert [s.lr_median for s in summary] == pytest.approx(
        [s.lr_median for s in eager.lr_summary()], rel=1e-12
    )
    assert [s.step for s in summary] == [40] * len(fused_params)


def _resume(
    first: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    second: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    *,
    fused_after_load: bool | None = None,
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """``first`` 12 steps, saved and loaded (weights_only) into ``second``, then 12 more steps of each."""
    params = random_tensors(torch.float64)
    generator = torch.Generator().manual_seed(3)
    opt = first(params)
    for _ in range(12):
        _grads(params, generator)
        opt.step()
    twin = [torch.nn.Parameter(p.detach().clone()) for p in params]
    resumed = second(twin)
    resumed.load_state_dict(_weights_only(opt.state_dict()))
    if fused_after_load is not None:
        for group in resumed.param_groups:
            group["fused"] = fused_after_load
    twin_generator = copy.deepcopy(generator)
    for _ in range(12):
        _grads(params, generator)
        opt.step()
        _grads(twin, twin_generator)
        resumed.step()
    return params, twin


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("adam", {"amsgrad": True}),
        ("adamw", {}),
        ("momentum", {"momentum": 0.9}),
        ("adagrad", {"lr_decay": 0.1}),
    ],
    ids=["adam", "adamw", "momentum", "adagrad"],
)
def test_torch_fused_state_resumes_in_ravine_fused_bit_identically(name: str, kwargs: dict[str, Any]) -> None:
    ours, theirs = _pair(name, kwargs)
    continued, resumed = _resume(theirs, ours)
    _assert_equal(resumed, continued)


@pytest.mark.parametrize("fused_first", [True, False], ids=["fused-to-eager", "eager-to-fused"])
@pytest.mark.parametrize("name", ["adam", "momentum", "adagrad"])
def test_fused_and_eager_states_round_trip(name: str, fused_first: bool) -> None:
    preset: Callable[..., ro.ChainOptimizer] = getattr(ro, name)
    continued, resumed = _resume(
        lambda p: preset(p, lr=1e-2, fused=fused_first),
        lambda p: preset(p, lr=1e-2, fused=not fused_first),
        fused_after_load=not fused_first,  # the checkpoint's groups carry its fused value, as in torch
    )
    for a, b in zip(continued, resumed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_nonfinite_guard_keeps_its_semantics_when_fused(policy: str) -> None:
    params = random_tensors(torch.float64)
    opt = ro.adam(params, lr=1e-2, fused=True, nonfinite=policy)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(0)
    _grads(params, generator)
    opt.step()
    before = [p.detach().clone() for p in params]
    state = copy.deepcopy(opt.state_dict()["state"])
    _grads(params, generator)
    params[3].grad[0] = float("nan")  # type: ignore[index]
    if policy == "raise":
        with pytest.raises(NonFiniteError, match="no parameter or state was changed"):
            opt.step()
    else:
        opt.step()
        assert opt.skipped_steps == 1
    for p, old in zip(params, before, strict=True):
        assert torch.equal(p.detach(), old)
    for key, entry in opt.state_dict()["state"].items():
        for name, value in entry.items():
            assert torch.equal(value, state[key][name]), name


def test_fused_off_lets_nan_through_as_torch() -> None:
    params = random_tensors(torch.float32)
    opt = ro.sgd(params, lr=0.1, fused=True, nonfinite="off")
    for p in params:
        p.grad = torch.full_like(p, float("nan"))
    opt.step()
    assert all(bool(p.isnan().all()) for p in params)


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "name", ["rmsprop", "radam", "nadam", "adamax", "adadelta", "rprop", "lion", "adafactor"]
)
def test_presets_without_a_torch_kernel_refuse_fused(name: str) -> None:
    preset: Callable[..., ro.ChainOptimizer] = getattr(ro, name)
    preset(random_tensors(torch.float32), fused=False)
    with pytest.raises(
        UnsupportedError, match=r"fused=True .*adam, adamw, sgd, momentum and adagrad.*drop fused"
    ):
        preset(random_tensors(torch.float32), fused=True)


def test_a_chain_and_a_group_transform_refuse_fused() -> None:
    with pytest.raises(UnsupportedError, match=r"exist for the presets adam, adamw, sgd"):
        ro.ChainOptimizer(
            random_tensors(torch.float32), ro.chain(ro.WeightDecay(1e-3), ro.Adam()), fused=True
        )
    params = random_tensors(torch.float32)
    with pytest.raises(UnsupportedError, match=r"its own transform.*drop fused in that group"):
        ro.adam([{"params": params, "transform": ro.chain(ro.Adam(), ro.ClipByValue(1.0))}], fused=True)


def test_settings_and_parameters_the_kernels_cannot_take_are_refused() -> None:
    with pytest.raises(UnsupportedError, match=r"mean=True.*use mean=False"):
        ro.adagrad(random_tensors(torch.float32), mean=True, fused=True)
    with pytest.raises(UnsupportedError, match=r"complex parameters.*drop fused"):
        ro.adam([torch.nn.Parameter(torch.ones(3, dtype=torch.complex64))], fused=True)
    with pytest.raises(UnsupportedError, match=r"on meta.*drop fused"):
        ro.sgd([torch.nn.Parameter(torch.ones(3, device="meta"))], fused=True)
    with pytest.raises(UnsupportedError, match=r"float8_e4m3fn.*drop fused"):
        ro.sgd([torch.nn.Parameter(torch.ones(3).to(torch.float8_e4m3fn))], fused=True)
    with pytest.raises(ConfigError, match=r"fused=True and foreach=True"):
        ro.adam(random_tensors(torch.float32), fused=True, foreach=True)
    with pytest.raises(ConfigError, match=r"fused must be None, True or False, got fused='yes'"):
        ro.adam(random_tensors(torch.float32), fused="yes")  # type: ignore[arg-type]


def test_add_param_group_refuses_what_fused_cannot_update() -> None:
    opt = ro.adamw(random_tensors(torch.float32), fused=True)
    with pytest.raises(UnsupportedError, match="complex"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2, dtype=torch.complex64))]})
    assert len(opt.param_groups) == 1
    eager = ro.rmsprop(random_tensors(torch.float32))
    with pytest.raises(UnsupportedError, match="fused=True"):
        eager.add_param_group({"params": random_tensors(torch.float32, seed=1), "fused": True})
    assert len(eager.param_groups) == 1


def test_a_fused_checkpoint_into_a_rule_without_kernel_is_refused_at_load() -> None:
    params = random_tensors(torch.float32)
    opt = ro.rmsprop(params)
    _grads(params, torch.Generator().manual_seed(0))
    opt.step()
    state = opt.state_dict()
    before = copy.deepcopy(state)
    state["param_groups"][0]["fused"] = True
    with pytest.raises(RavineError, match=r"fused=True .*adam, adamw, sgd, momentum and adagrad"):
        opt.load_state_dict(state)
    assert opt.state_dict()["param_groups"] == before["param_groups"]


def test_a_torch_without_the_kernel_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch < 2.4 has no torch._fused_adagrad_ (and no CPU kernel for the others): refused, ravine still runs."""
    monkeypatch.delattr(torch, "_fused_adagrad_")
    with pytest.raises(UnsupportedError, match=r"has no torch\._fused_adagrad_.*upgrade torch \(>= 2\.4\)"):
        ro.adagrad(random_tensors(torch.float32), fused=True)
    ro.adagrad(random_tensors(torch.float32))  # the foreach step needs no kernel


def test_a_model_trains_with_fused_as_with_torch_through_zero_grad() -> None:
    """An nn.Module, zero_grad(set_to_none) and a parameter without gradient: as torch's fused."""
    results = []
    for make in (
        lambda p: ro.adam(p, lr=1e-2, fused=True),
        lambda p: torch.optim.Adam(p, lr=1e-2, fused=True),
    ):
        model = make_mlp(torch.float32)
        frozen = torch.nn.Parameter(torch.ones(3))
        opt = make([*model.parameters(), frozen])
        x = torch.randn(16, 6, generator=torch.Generator().manual_seed(0))
        for _ in range(50):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        results.append([p.detach().clone() for p in [*model.parameters(), frozen]])
    _assert_equal(results[0], results[1])


def _sparse_schedule(make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]) -> list[torch.Tensor]:
    """Two parameters; the second has a gradient only at odd steps from step 3 (its counts lag)."""
    params = random_tensors(torch.float64)[:2]
    opt = make(params)
    for t in range(12):
        for i, p in enumerate(params):
            p.grad = torch.cos(p.detach()) + 0.1 * t if i == 0 or (t >= 2 and t % 2) else None
        opt.step()
    return [p.detach().clone() for p in params]


def test_parameters_with_different_update_counts_step_as_torch() -> None:
    # Adam: each parameter's bias correction follows its own count, as torch's fused kernel.
    _assert_equal(
        _sparse_schedule(lambda p: ro.adam(p, lr=1e-2, fused=True)),
        _sparse_schedule(lambda p: torch.optim.Adam(p, lr=1e-2, fused=True)),
    )
    # SGD: a parameter's first update sets its buffer to g even after others have stepped. (torch's fused
    # SGD raises a TypeError on such a late parameter; its for-loop is the reference, to an ulp: the fused
    # kernel rounds b = μb + g differently from the for-loop, as ravine's eager step does.)
    ours = _sparse_schedule(lambda p: ro.sgd(p, lr=1e-2, momentum=0.9, fused=True))
    theirs = _sparse_schedule(lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, foreach=False))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15)


def test_a_group_of_two_dtypes_equals_torch_fused() -> None:
    # torch's fused kernels take one dtype per call: a group mixing float32 and float64 runs one call each
    made = []
    for make in (lambda ps: ro.adamw(ps, lr=1e-2, weight_decay=0.1, fused=True),
                 lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, fused=True)):  # fmt: skip
        torch.manual_seed(0)
        params = [
            torch.nn.Parameter(torch.randn(5, 3)),
            torch.nn.Parameter(torch.randn(4, dtype=torch.float64)),
        ]
        opt = make(params)
        for step in range(30):
            for p in params:
                p.grad = torch.sin(p.detach() * (step + 1))
            opt.step()
        made.append(params)
    _assert_equal(made[0], made[1])
