"""Per-step cost of ``inject_hyperparams`` on CPU: the same rule plain, injected, scheduled, and rebuilt by hand.

The rule is ``chain(ClipByGlobalNorm(1.0), WeightDecay(1e-4), Adam())`` in a :class:`ChainOptimizer`, on two
parameter sets (``--set``): ``small``, a 3-layer MLP (64→256→256→10, 6 tensors, ~85k parameters), where the
fixed cost of a step shows; and ``gpt2``, GPT-2's layout at width 128 (148 tensors, ~8.9M parameters; the set of
``benchmarks/optim_step.py``). Contenders, each on its own copy of the same parameters and fixed gradients:

* ``plain``: the rule as built;
* ``constants``: ``inject_hyperparams(rule, "max_norm", "beta2")`` (the values do not move: a memo hit);
* ``scheduled``: ``max_norm`` and ``beta1`` follow schedules (new values every step: the rule is rebuilt
  through its constructors at every step);
* ``by hand``: the plain rule with ``param_groups[0]["transform"]`` replaced by ``chain(...)`` built with the
  same schedule values before every step (what one writes without the feature).

Each timed call runs ``--steps`` steps; the figure is the median over ``--repeats`` interleaved repeats
(benchmarks/_timing.py). One torch thread (see optim_step.py for why). Then the fixed cost alone, per step
and without any tensor work: resolving the injected rule (a memo hit; a rebuild with new schedule values)
beside building the same chain by hand with ``chain(...)``, 2000 calls per timed call.

    .venv/bin/python -m benchmarks.optim_inject [--set small|gpt2] [--repeats 15] [--steps 20]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch

import ravine.optim as ro
from benchmarks._timing import conditions, interleaved_medians
from benchmarks.optim_step import gpt2_shapes
from ravine.optim._inject import resolve

MAX_NORM = ro.CosineDecay(100_000, eta_min=0.1)
BETA1 = ro.LinearSchedule(0.85 / 0.9, 1.0, 100_000, lr=0.9)


def _shapes(name: str) -> list[tuple[int, ...]]:
    if name == "gpt2":
        return gpt2_shapes()
    return [(256, 64), (256,), (256, 256), (256,), (10, 256), (10,)]


def _params(name: str) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(0)
    params = []
    for shape in _shapes(name):
        p = torch.nn.Parameter(torch.randn(shape, generator=generator) * 0.02)
        p.grad = torch.randn(shape, generator=generator) * 0.01
        params.append(p)
    return params


def _rule(max_norm: float = 1.0, beta1: float = 0.9) -> ro.Transform:
    return ro.chain(ro.ClipByGlobalNorm(max_norm), ro.WeightDecay(1e-4), ro.Adam(beta1))


def _copies(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    out = []
    for p in params:
        q = torch.nn.Parameter(p.detach().clone())
        q.grad = p.grad
        out.append(q)
    return out


def contenders(name: str, steps: int) -> dict[str, Callable[[], None]]:
    """One closure per contender, each running ``steps`` optimizer steps on its own parameters."""
    base = _params(name)
    opts = {
        "plain": ro.ChainOptimizer(_copies(base), _rule(), lr=1e-3),
        "constants": ro.ChainOptimizer(
            _copies(base), ro.inject_hyperparams(_rule(), "max_norm", "beta2"), lr=1e-3
        ),
        "scheduled": ro.ChainOptimizer(
            _copies(base), ro.inject_hyperparams(_rule(), max_norm=MAX_NORM, beta1=BETA1), lr=1e-3
        ),
        "by hand": ro.ChainOptimizer(_copies(base), _rule(), lr=1e-3),
    }
    counter = {"t": 0}

    def run(opt: ro.ChainOptimizer) -> Callable[[], None]:
        def call() -> None:
            for _ in range(steps):
                opt.step()

        return call

    def by_hand() -> None:
        opt = opts["by hand"]
        for _ in range(steps):
            t = counter["t"]
            opt.param_groups[0]["transform"] = _rule(MAX_NORM(t), BETA1(t))
            opt.step()
            counter["t"] = t + 1

    runs = {key: run(opt) for key, opt in opts.items() if key != "by hand"}
    runs["by hand"] = by_hand
    return runs


def fixed_costs(calls: int = 2000) -> dict[str, Callable[[], None]]:
    """The per-step Python cost of each way to get the step's rule, with no tensor work."""
    constants = ro.inject_hyperparams(_rule(), "max_norm", "beta2")
    scheduled = ro.inject_hyperparams(_rule(), max_norm=MAX_NORM, beta1=BETA1)
    groups: dict[str, dict[str, Any]] = {"constants": {"hyperparams": constants.constants()}, "scheduled": {}}
    counter = {"t": 1}

    def hit() -> None:
        for _ in range(calls):
            resolve(constants, groups["constants"], 5)

    def rebuild() -> None:
        t = counter["t"]
        for step in range(t, t + calls):
            resolve(scheduled, groups["scheduled"], step)
        counter["t"] = t + calls

    def by_hand() -> None:
        t = counter["t"]
        for step in range(t, t + calls):
            _rule(MAX_NORM(step), BETA1(step))

    return {"resolve, memo hit": hit, "resolve, rebuilt": rebuild, "chain() by hand": by_hand}


def main() -> None:
    """Print ms per step and the ratio to ``plain`` for each contender."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=("small", "gpt2"), default="small")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    medians = interleaved_medians(contenders(args.set, args.steps), repeats=args.repeats)
    print(f"set {args.set}, {args.steps} steps per call, {args.repeats} interleaved repeats; {conditions(1)}")
    plain = medians["plain"] / args.steps
    for key, seconds in medians.items():
        per = seconds / args.steps
        print(
            f"{key:>10}: {per * 1e6:9.1f} µs/step  {per / plain:5.2f}× plain  ({(per - plain) * 1e6:+.1f} µs)"
        )
    costs = interleaved_medians(fixed_costs(), repeats=args.repeats)
    print(f"fixed cost per step, no tensor work; {conditions(1)}")
    for key, seconds in costs.items():
        print(f"{key:>18}: {seconds / 2000 * 1e6:6.1f} µs")


if __name__ == "__main__":
    main()
