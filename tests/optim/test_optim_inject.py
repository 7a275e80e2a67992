"""inject_hyperparams: schedules and mid-run writes equal the rule rebuilt by hand, checkpoints, errors, compile."""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch._dynamo
import torch._dynamo.testing
import torch._dynamo.utils
from _helpers import make_mlp, random_tensors, weights_only_copy

import ravine.optim as ro
from ravine.errors import ConfigError, DataError
from ravine.optim import _checkpoint
from ravine.optim._inject import _numeric, _rebuilt

STEPS = 220
BETA1 = ro.Sequential(
    [ro.LinearWarmup(50, lr=0.95), ro.CosineDecay(170, lr=0.95, eta_min=0.8)], milestones=[50]
)
MAX_NORM = ro.CosineDecay(STEPS, lr=2.0, eta_min=0.05)


def _problem(dtype: torch.dtype = torch.float32) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    model = make_mlp(dtype)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 6, generator=generator, dtype=dtype)
    return model, x, torch.sin(3 * x[:, :1])


def _train(
    opt: ro.ChainOptimizer,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    *,
    before: Callable[[int], None] = lambda t: None,
) -> list[torch.Tensor]:
    for t in range(steps):
        before(t)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def _by_hand(build: Callable[[int], ro.Transform], steps: int, **kwargs: Any) -> list[torch.Tensor]:
    """The same training with the group's transform replaced by ``build(t)`` before update t (from 0)."""
    model, x, y = _problem()
    opt = ro.ChainOptimizer(model.parameters(), build(0), **kwargs)

    def swap(t: int) -> None:
        opt.param_groups[0]["transform"] = build(t)

    return _train(opt, model, x, y, steps, before=swap)


def _assert_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q), (p - q).abs().max()


def test_schedule_on_beta1_equals_adam_rebuilt_each_step_bit_for_bit() -> None:
    model, x, y = _problem()
    rule = ro.inject_hyperparams(ro.chain(ro.WeightDecay(1e-3), ro.Adam()), beta1=BETA1, eps=1e-7)
    opt = ro.ChainOptimizer(model.parameters(), rule, lr=1e-2)
    ours = _train(opt, model, x, y, STEPS)
    hand = _by_hand(
        lambda t: ro.chain(ro.WeightDecay(1e-3), ro.Adam(beta1=BETA1(t), eps=1e-7)), STEPS, lr=1e-2
    )
    _assert_identical(ours, hand)
    assert opt.hyperparams() == {"1.beta1": BETA1(STEPS - 1), "1.eps": 1e-7}
    assert len(rule._memo) <= 8  # a value that moves every step does not grow the memo
    assert len(opt._plans) == 1  # nor the optimizer's plan cache


def test_schedule_on_the_clipping_threshold_equals_rebuilding_by_hand() -> None:
    model, x, y = _problem()
    parts = (ro.ClipByGlobalNorm(1.0), ro.RMSProp(0.9), ro.Momentum(0.5))
    rule = ro.inject_hyperparams(ro.chain(*parts), max_norm=MAX_NORM)
    opt = ro.ChainOptimizer(model.parameters(), rule, lr=1e-3)
    ours = _train(opt, model, x, y, STEPS)
    hand = _by_hand(lambda t: ro.chain(ro.ClipByGlobalNorm(MAX_NORM(t)), *parts[1:]), STEPS, lr=1e-3)
    _assert_identical(ours, hand)
    norm = opt.pre_clip_norm()
    assert norm is not None and norm > 0  # the diagnostician still reads the pre-clip norm


def test_a_scheduled_momentum_after_rmsprop_keeps_the_hand_built_rounding() -> None:
    """A Momentum after a preconditioner keeps torch's rounding in chain(); the rebuilt one must too."""
    model, x, y = _problem()
    mu = ro.CosineDecay(STEPS, lr=0.9, eta_min=0.3)
    rule = ro.inject_hyperparams(ro.chain(ro.RMSProp(0.9), ro.Momentum(0.9)), momentum=mu, alpha=0.95)
    opt = ro.ChainOptimizer(model.parameters(), rule, lr=1e-3)
    ours = _train(opt, model, x, y, STEPS)
    hand = _by_hand(lambda t: ro.chain(ro.RMSProp(0.95), ro.Momentum(mu(t))), STEPS, lr=1e-3)
    _assert_identical(ours, hand)
    built = rule.at(3)
    assert vars(built) == vars(ro.chain(ro.RMSProp(0.95), ro.Momentum(mu(2))))


def test_a_write_takes_effect_at_the_next_update() -> None:
    model, x, y = _problem()
    rule = ro.inject_hyperparams(ro.chain(ro.Momentum(0.9, dampening=0.1), ro.WeightDecay(1e-2)), "momentum")
    opt = ro.ChainOptimizer(model.parameters(), rule, lr=0.05)

    def write(t: int) -> None:
        if t == 30:
            opt.set_hyperparams(momentum=0.5)
        if t == 60:  # a torch-style write into the group, checked at the next update
            opt.param_groups[0]["hyperparams"]["0.momentum"] = 0.7

    ours = _train(opt, model, x, y, 90, before=write)
    assert opt.hyperparams() == {"0.momentum": 0.7}

    def build(t: int) -> ro.Transform:
        mu = 0.9 if t < 30 else 0.5 if t < 60 else 0.7
        return ro.chain(ro.Momentum(mu, dampening=0.1), ro.WeightDecay(1e-2))

    _assert_identical(ours, _by_hand(build, 90, lr=0.05))


def test_written_values_are_per_group() -> None:
    a, b = random_tensors(torch.float64)[:2]
    rule = ro.inject_hyperparams(ro.Adam(), beta2=0.999)
    opt = ro.ChainOptimizer([{"params": [a]}, {"params": [b]}], rule, lr=0.1)
    opt.set_hyperparams(beta2=0.9, group=1)
    assert opt.hyperparams(0) == {"beta2": 0.999}
    assert opt.hyperparams(1) == {"beta2": 0.9}
    opt.set_hyperparams(beta2=0.95)  # every group
    assert opt.hyperparams(0) == opt.hyperparams(1) == {"beta2": 0.95}


def _injected_opt(model: torch.nn.Module) -> ro.ChainOptimizer:
    rule = ro.inject_hyperparams(
        ro.chain(ro.ClipByGlobalNorm(1.0), ro.WeightDecay(1e-3), ro.Adam(amsgrad=True)),
        max_norm=MAX_NORM,
        beta1=0.9,
        beta2=0.999,
    )
    return ro.ChainOptimizer(model.parameters(), rule, lr=1e-2, schedule=ro.LinearWarmup(5))


def test_checkpoint_round_trips_with_weights_only_and_resumes_bit_identically() -> None:
    model, x, y = _problem()
    opt = _injected_opt(model)
    _train(opt, model, x, y, 8, before=lambda t: opt.set_hyperparams(beta2=0.99) if t == 4 else None)
    saved = weights_only_copy(opt.state_dict())
    assert saved["param_groups"][0]["hyperparams"] == {"2.beta1": 0.9, "2.beta2": 0.99}
    assert saved["param_groups"][0]["transform"]["ravine"] == "InjectHyperparams"
    twin = copy.deepcopy(model)
    resumed = _injected_opt(twin)
    resumed.load_state_dict(saved)
    assert resumed.hyperparams() == opt.hyperparams()

    def writer(o: ro.ChainOptimizer) -> Callable[[int], None]:
        return lambda t: o.set_hyperparams(beta1=0.8) if t == 5 else None

    _assert_identical(
        _train(opt, model, x, y, 12, before=writer(opt)),
        _train(resumed, twin, x, y, 12, before=writer(resumed)),
    )


def test_the_live_dict_is_not_shared_with_a_state_dict() -> None:
    opt = _injected_opt(make_mlp(torch.float32))
    saved = opt.state_dict()
    opt.set_hyperparams(beta1=0.5)
    assert saved["param_groups"][0]["hyperparams"]["2.beta1"] == 0.9


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda g: g["hyperparams"].update({"2.beta3": 0.9}), r"unexpected \['2.beta3'\]"),
        (lambda g: g["hyperparams"].pop("2.beta2"), r"missing \['2.beta2'\]"),
        (lambda g: g["hyperparams"].update({"2.beta2": "0.99"}), "must be a number or a ravine Schedule"),
        (lambda g: g["hyperparams"].update({"2.beta2": 1.5}), r"beta2 must be in \[0, 1\)"),
        (lambda g: g["hyperparams"].update({"0.max_norm": 2.0}), "follow a schedule"),
        (lambda g: g.update(hyperparams=[0.9]), "must be a dict"),
    ],
)
def test_load_refuses_hyperparams_that_do_not_fit(edit: Callable[[dict[str, Any]], None], match: str) -> None:
    opt = _injected_opt(make_mlp(torch.float32))
    saved = weights_only_copy(opt.state_dict())
    edit(saved["param_groups"][0])
    before = opt.hyperparams()
    with pytest.raises(ConfigError, match=match):
        opt.load_state_dict(saved)
    assert opt.hyperparams() == before


def test_load_refuses_an_injected_checkpoint_for_a_plain_rule_and_a_bad_description() -> None:
    model = make_mlp(torch.float32)
    saved = weights_only_copy(_injected_opt(model).state_dict())
    plain = ro.ChainOptimizer(model.parameters(), ro.Adam(), lr=1e-2, schedule=ro.LinearWarmup(5))
    with pytest.raises(DataError, match="hyperparams"):
        plain.load_state_dict(saved)
    saved["param_groups"][0]["transform"]["args"]["hyperparams"]["2.gamma"] = 0.5
    with pytest.raises(ConfigError, match=r"no numeric hyper-parameter '2\.gamma'.*valid names"):
        _injected_opt(model).load_state_dict(saved)


def test_injected_constants_equal_the_rule_built_with_them() -> None:
    params = random_tensors(torch.float64)
    rule = ro.inject_hyperparams(ro.Adam(), beta2=0.99, eps=1e-6)
    assert rule.at(1) == ro.Adam(beta2=0.99, eps=1e-6)
    assert rule.at(1) is rule.at(7)  # memo: one build for the same values
    assert rule.state_keys() == ro.Adam().state_keys()
    state = rule.init(params)
    assert set(state) == {"exp_avg", "exp_avg_sq"}
    twin, twin_state = [p.detach().clone() for p in params], ro.Adam(beta2=0.99, eps=1e-6).init(params)
    grads = [torch.sin(p.detach()) for p in params]
    for step in (1, 2):  # as a plain Transform, outside an optimizer: the inner rule with the injected values
        rule.apply(grads, state, [p.detach() for p in params], step=step, lr=0.1)
        ro.Adam(beta2=0.99, eps=1e-6).apply(grads, twin_state, twin, step=step, lr=0.1)
    _assert_identical([p.detach() for p in params], twin)
    assert sorted(ro.inject_hyperparams(ro.chain(ro.WeightDecay(0.1), ro.Adam())).hyperparams) == [
        "0.weight_decay",
        "1.beta1",
        "1.beta2",
        "1.eps",
    ]  # no names: every float hyper-parameter, at its value


def test_effective_lr_follows_the_injected_values() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    twin = torch.nn.Parameter(w.detach().clone())
    opt = ro.ChainOptimizer([w], ro.inject_hyperparams(ro.Adam(), "beta1", "eps"), lr=0.1)
    plain = ro.ChainOptimizer([twin], ro.Adam(beta1=0.8, eps=1e-3), lr=0.1)
    opt.set_hyperparams(beta1=0.8, eps=1e-3)
    for p, o in ((w, opt), (twin, plain)):
        for _ in range(3):
            p.grad = torch.sin(3 * p.detach())
            o.step()
    assert torch.equal(w, twin)
    assert torch.equal(opt.effective_lr(w), plain.effective_lr(twin))
    lion = ro.ChainOptimizer([w], ro.inject_hyperparams(ro.Lion(), beta1=0.8), lr=0.1)
    assert not lion.defines_effective_lr(lion.param_groups[0])


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ro.inject_hyperparams(ro.Adam(), beta3=0.9), r"no numeric hyper-parameter 'beta3'.*'beta1'"),
        (lambda: ro.inject_hyperparams(ro.Adam(), amsgrad=1.0), "amsgrad.*flag"),
        (lambda: ro.inject_hyperparams(ro.WeightDecay(0.1, mask="matrices"), mask=1.0), "mask.*string"),
        (
            lambda: ro.inject_hyperparams(ro.AdagradMean(), initial_accumulator_value=0.1),
            "AdagradMean fixes",
        ),
        (lambda: ro.inject_hyperparams(ro.Adam(), beta1="0.9"), "must be a number or a ravine Schedule"),  # type: ignore[arg-type]
        (lambda: ro.inject_hyperparams(ro.Adam(), beta1=torch.tensor(0.9)), r"float\(value\)"),  # type: ignore[arg-type]
        (lambda: ro.inject_hyperparams(ro.Adam(), beta1=math.nan), "finite"),
        (lambda: ro.inject_hyperparams(ro.Adam(), beta1=1.5), r"beta1 must be in \[0, 1\)"),
        (lambda: ro.inject_hyperparams(ro.Adam(), beta1=ro.Constant(1.0)), r"at update 1.*beta1 must be"),
        (lambda: ro.inject_hyperparams(ro.NewtonSchulz(), ns_steps=ro.Constant(3.0)), "integer setting"),
        (lambda: ro.inject_hyperparams(ro.NewtonSchulz(), ns_steps=3.5), "integer setting"),
        (lambda: ro.inject_hyperparams(ro.MultiSteps(ro.Adam(), 2), every=ro.Constant(2)), "integer"),
        (
            lambda: ro.inject_hyperparams(
                ro.chain(ro.WeightDecay(0.1), ro.DecoupledWeightDecay(0.1)), weight_decay=0
            ),
            "ambiguous.*'0.weight_decay', '1.weight_decay'",
        ),
        (
            lambda: ro.inject_hyperparams(ro.inject_hyperparams(ro.Adam(), beta1=0.9), beta1=0.8),
            "inject once",
        ),
        (lambda: ro.inject_hyperparams(ro.Adam(), "beta1", beta1=0.8), "given twice"),
        (lambda: ro.inject_hyperparams("adam", beta1=0.9), "must be a ravine Transform"),  # type: ignore[arg-type]
        (lambda: ro.InjectHyperparams(ro.Identity(), {}), "name at least one"),
    ],
)
def test_construction_refuses_with_the_valid_names(build: Callable[[], object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()


def test_nested_names_and_integers() -> None:
    rule = ro.inject_hyperparams(
        ro.MultiSteps(ro.chain(ro.WeightDecay(0.1), ro.Rprop()), 2), "every", "etas.1"
    )
    assert rule.hyperparams == {"every": 2, "inner.1.etas.1": 1.2}
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = ro.ChainOptimizer([w], rule, lr=0.1)
    opt.set_hyperparams({"etas.1": 1.5})
    with pytest.raises(ConfigError, match="integer setting"):
        opt.set_hyperparams(every=2.0)
    opt.set_hyperparams(every=3)
    built = rule.at(1, opt.param_groups[0]["hyperparams"])
    assert built == ro.MultiSteps(ro.chain(ro.WeightDecay(0.1), ro.Rprop(etas=(0.5, 1.5))), 3)


def test_writes_are_checked_before_anything_changes() -> None:
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    rule = ro.inject_hyperparams(ro.Adam(eps=1e-4), beta1=ro.CosineDecay(10, lr=0.9), eps=1e-4)
    opt = ro.ChainOptimizer([w], rule, lr=0.1)
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"beta1": 0.5}, ConfigError, "follows CosineDecay.*overwritten"),
        ({"beta2": 0.9}, ConfigError, "not one of the injected"),
        ({"eps": 1e-8}, ConfigError, "rounds to 0 in torch.float16"),
        ({"eps": -1.0}, ConfigError, "eps must be a finite number > 0"),
        ({"eps": True}, ConfigError, "must be a number"),
    ]
    for values, error, match in cases:
        with pytest.raises(error, match=match):
            opt.set_hyperparams(values)
    assert opt.param_groups[0]["hyperparams"] == {"eps": 1e-4}
    plain = ro.ChainOptimizer([w], ro.Adam(eps=1e-4), lr=0.1)
    with pytest.raises(ConfigError, match="injects no hyper-parameters"):
        plain.set_hyperparams(beta1=0.5)
    with pytest.raises(ConfigError, match="group must be an index"):
        opt.set_hyperparams(eps=1e-3, group=3)


def test_a_schedule_leaving_its_range_mid_run_raises_before_the_group_changes() -> None:
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    rule = ro.inject_hyperparams(ro.Adam(), beta1=ro.LinearSchedule(0.5, 1.2, 4, lr=0.9))
    opt = ro.ChainOptimizer([w], rule, lr=0.1)
    for _ in range(4):
        w.grad = torch.ones(3, dtype=torch.float64)
        opt.step()
    before = w.detach().clone()
    with pytest.raises(ConfigError, match=r"at update 5.*beta1 must be in \[0, 1\)"):
        opt.step()
    assert torch.equal(w.detach(), before)
    assert int(opt.state[w]["step"]) == 4


def test_a_typo_written_into_the_group_is_refused_at_the_next_update() -> None:
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = ro.ChainOptimizer([w], ro.inject_hyperparams(ro.Adam(), "beta2"), lr=0.1)
    opt.param_groups[0]["hyperparams"]["beta_2"] = 0.9
    w.grad = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ConfigError, match=r"unexpected \['beta_2'\]"):
        opt.step()


def _numeric_classes() -> list[type[ro.Transform]]:
    found = []
    for cls in _checkpoint._registry().values():
        if (
            issubclass(cls, ro.Transform)
            and not inspect.isabstract(cls)
            and cls.__module__.startswith("ravine")
        ):
            found.append(cls)
    return found


_EXAMPLES: dict[str, Callable[[], ro.Transform]] = {
    "ClipByGlobalNorm": lambda: ro.ClipByGlobalNorm(1.0),
    "ClipByValue": lambda: ro.ClipByValue(1.0),
    "WeightDecay": lambda: ro.WeightDecay(0.1),
    "DecoupledWeightDecay": lambda: ro.DecoupledWeightDecay(0.1),
    "MultiSteps": lambda: ro.MultiSteps(ro.Adam(), 2),
    "Chain": lambda: ro.chain(ro.RMSProp(), ro.Momentum()),
    "InjectHyperparams": lambda: ro.inject_hyperparams(ro.Adam(), beta1=0.9),
}


@pytest.mark.parametrize("cls", _numeric_classes(), ids=lambda c: c.__name__)
def test_every_part_rebuilt_by_copy_equals_its_constructor(cls: type[ro.Transform]) -> None:
    """What a compiled step traces (a copy with the new value set) is what the constructor builds: no part
    derives anything from a numeric hyper-parameter when it is constructed."""
    part = _EXAMPLES[cls.__name__]() if cls.__name__ in _EXAMPLES else cls()
    if isinstance(part, ro.InjectHyperparams):
        return
    leaves, _ = _numeric(part)
    for leaf in leaves.values():
        candidates = [leaf.value + 1] if leaf.integer else [leaf.value * 0.99, leaf.value * 1.01, 0.5]
        for value in candidates:
            try:
                built = _rebuilt(part, {leaf.path: value})
                break
            except ConfigError:
                continue
        else:
            raise AssertionError(f"no valid value to try for {leaf}")
        copied = _rebuilt(part, {leaf.path: value}, validated=False)
        assert type(built) is type(copied)
        assert _checkpoint.describe(built) == _checkpoint.describe(copied)
        assert vars(built) == vars(copied)  # private attributes too (a Momentum's rounding in a chain)


def test_compiled_step_with_writes_recompiles_once_and_equals_eager() -> None:
    def run(compiled: bool) -> tuple[list[torch.Tensor], int]:
        torch._dynamo.reset()
        model, x, y = _problem(torch.float64)
        rule = ro.chain(ro.ClipByGlobalNorm(1.0), ro.WeightDecay(1e-2), ro.Adam())
        opt = ro.ChainOptimizer(model.parameters(), ro.inject_hyperparams(rule, "max_norm", "beta2"), lr=1e-2)
        counter = torch._dynamo.testing.CompileCounter()
        step = torch.compile(opt.step, backend=counter, fullgraph=True) if compiled else opt.step
        for t in range(12):
            if t in (3, 5, 7, 9):
                opt.set_hyperparams(beta2=0.99 - 0.01 * t, max_norm=0.5 + 0.1 * t)
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            step()
        return [p.detach().clone() for p in model.parameters()], counter.frame_count

    eager, _ = run(False)
    compiled, frames = run(True)
    assert frames == 3  # the first step, the later steps, one more at the first write (floats go dynamic)
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_a_schedule_under_compile_runs_the_step_eagerly_without_recompiling() -> None:
    results = []
    for compiled in (False, True):
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        w = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 5, dtype=torch.float64))
        opt = ro.ChainOptimizer([w], ro.inject_hyperparams(ro.Adam(), beta1=BETA1), lr=0.1)
        counter = torch._dynamo.testing.CompileCounter()
        step = torch.compile(opt.step, backend=counter) if compiled else opt.step
        for _ in range(8):
            w.grad = torch.sin(3 * w.detach())
            step()
        results.append(w.detach().clone())
        if compiled:
            assert counter.frame_count <= 1  # no recompile as the step count (and β1) move
            reasons = list(torch._dynamo.utils.counters["graph_break"])
            assert any("scheduled injected hyper-parameter" in reason for reason in reasons), reasons
    assert torch.equal(results[0], results[1])
    torch._dynamo.reset()
    with pytest.raises(Exception, match="set_hyperparams"):  # fullgraph: dynamo's error, with the way out
        torch.compile(opt.step, backend="eager", fullgraph=True)()
