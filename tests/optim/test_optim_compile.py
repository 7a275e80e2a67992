"""torch.compile: the step traces without a graph break, compiles once, and equals eager (and torch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch._dynamo
import torch._dynamo.testing
from _helpers import make_mlp

import ravine.optim as ro

STEPS = 12
CASES: list[tuple[str, Callable[..., ro.ChainOptimizer], dict[str, Any]]] = [
    ("sgd-dampening", ro.sgd, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-2}),
    ("adam-maximize", ro.adam, {"lr": 1e-2, "amsgrad": True, "maximize": True}),
    ("adamw-cosine", ro.adamw, {"lr": 1e-2, "schedule": ro.CosineDecay(20)}),
    ("radam", ro.radam, {"lr": 1e-2}),
    ("adagrad-mean", ro.adagrad, {"lr": 0.05, "mean": True}),
    ("rmsprop", ro.rmsprop, {"lr": 1e-2, "centered": True, "momentum": 0.5}),
    ("nadam-decoupled", ro.nadam, {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("rprop", ro.rprop, {}),
    ("lion", ro.lion, {"lr": 1e-3, "weight_decay": 0.1}),
    ("adafactor", ro.adafactor, {"weight_decay": 0.1}),
    ("muon", ro.muon, {"lr": 1e-2, "adjust_lr_fn": "match_rms_adamw"}),
]
MATRICES_ONLY = {ro.muon}
"""Presets that take 2-D parameters only: their model has no bias."""


def _train(
    preset: Callable[..., ro.ChainOptimizer], kwargs: dict[str, Any], compiled: bool, steps: int = STEPS
) -> tuple[list[torch.Tensor], torch._dynamo.testing.CompileCounter, ro.ChainOptimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3, bias=preset not in MATRICES_ONLY, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(32, 6, generator=generator, dtype=torch.float64)
    y = torch.sin(x[:, :3])
    opt = preset(model.parameters(), **kwargs)
    counter = torch._dynamo.testing.CompileCounter()
    step = torch.compile(opt.step, backend=counter, fullgraph=True) if compiled else opt.step
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        step()
    return [p.detach().clone() for p in model.parameters()], counter, opt


@pytest.mark.parametrize(("label", "preset", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_compiled_step_equals_eager_with_no_graph_break_and_one_recompile(
    label: str, preset: Callable[..., ro.ChainOptimizer], kwargs: dict[str, Any]
) -> None:
    del label
    torch._dynamo.reset()
    eager, _, _ = _train(preset, kwargs, compiled=False)
    compiled, counter, opt = _train(preset, kwargs, compiled=True)
    # fullgraph=True: a graph break would raise. Two frames: the first step creates the state, every
    # later step reuses one graph (the step count is a tensor, so no recompile per step).
    assert counter.frame_count == 2
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert all(int(entry["step"]) == STEPS for entry in opt.state.values())


def test_compiled_training_step_does_not_recompile_as_steps_go_by() -> None:
    """torch.compile of a whole train step (forward, backward, step): breaks only where torch's own do."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = make_mlp(torch.float64)
    twin = make_mlp(torch.float64)
    x = torch.randn(16, 6, dtype=torch.float64)
    y = x.sum(dim=1, keepdim=True)
    opts = [ro.adam(m.parameters(), lr=1e-2, schedule=ro.LinearWarmup(5)) for m in (model, twin)]
    counter = torch._dynamo.testing.CompileCounter()

    def train_step(m: torch.nn.Module, opt: ro.ChainOptimizer) -> None:
        opt.zero_grad()
        torch.nn.functional.mse_loss(m(x), y).backward()
        opt.step()

    compiled = torch.compile(train_step, backend=counter)
    frames = []
    for i in range(10):
        compiled(model, opts[0])
        train_step(twin, opts[1])
        if i in (2, 9):
            frames.append(counter.frame_count)
    assert frames[0] == frames[1]  # nothing compiled after the third step
    reasons = list(torch._dynamo.utils.counters["graph_break"])
    assert reasons, "expected torch's own breaks (zero_grad, backward)"
    assert not any("ravine" in reason for reason in reasons), reasons
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_compiled_guard_skips_a_nonfinite_step_inside_the_graph() -> None:
    """Under compile the guard cannot raise; the step is skipped (nothing changes) and counted."""
    torch._dynamo.reset()
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = ro.adam([w], lr=0.1)
    step = torch.compile(opt.step, backend="eager", fullgraph=True)
    w.grad = torch.tensor([0.5, 1.0], dtype=torch.float64)
    step()
    before = (w.detach().clone(), opt.state[w]["exp_avg"].clone(), int(opt.state[w]["step"]))
    w.grad = torch.tensor([float("nan"), 1.0], dtype=torch.float64)
    step()
    assert torch.equal(w.detach(), before[0])
    assert torch.equal(opt.state[w]["exp_avg"], before[1])
    assert int(opt.state[w]["step"]) == before[2] == 1
    assert opt.skipped_steps == 1
    w.grad = torch.tensor([0.5, 1.0], dtype=torch.float64)
    step()
    assert int(opt.state[w]["step"]) == 2
    assert opt.skipped_steps == 1


def test_tensor_lr_under_a_torch_scheduler_does_not_recompile() -> None:
    """As with torch.optim: a tensor lr lets a torch LR scheduler change it without a recompile."""
    results = []
    for compiled in (False, True):
        torch._dynamo.reset()
        w = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 5, dtype=torch.float64))
        opt = ro.adam([w], lr=torch.tensor(0.05, dtype=torch.float64))
        scheduler = torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)
        counter = torch._dynamo.testing.CompileCounter()
        step = torch.compile(lambda opt=opt: opt.step(), backend=counter) if compiled else opt.step
        for _ in range(8):
            w.grad = torch.sin(3 * w.detach())
            step()
            scheduler.step()
        results.append(w.detach().clone())
        if compiled:
            assert counter.frame_count == 2
    torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-14)
