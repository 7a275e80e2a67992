"""Optimizer step time: ravine's presets vs torch.optim (foreach, for-loop and fused) on CPU.

A ~10M-parameter stack of Linear layers (64 tensors). Gradients are set once; each timed call runs
``--steps`` optimizer steps. Medians over interleaved repeats (benchmarks/_timing.py). Prints a markdown
table of seconds per step and the ratio ravine / torch-foreach.

    python benchmarks/optim_step.py [--threads 2] [--repeats 9] [--steps 5]
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable
from typing import Any

import torch

import ravine.optim as ro
from benchmarks._timing import interleaved_medians

LAYERS, WIDTH = 32, 560  # 32 × (560² + 560) ≈ 10.05M parameters in 64 tensors

CASES: dict[str, tuple[Callable[..., torch.optim.Optimizer], type[torch.optim.Optimizer], dict[str, Any]]] = {
    "adam": (ro.adam, torch.optim.Adam, {"lr": 1e-4}),
    "rmsprop": (ro.rmsprop, torch.optim.RMSprop, {"lr": 1e-5}),
    "adagrad": (ro.adagrad, torch.optim.Adagrad, {"lr": 1e-4}),
    "sgd-momentum": (ro.sgd, torch.optim.SGD, {"lr": 1e-4, "momentum": 0.9}),
}
FUSED = {"adam", "adagrad", "sgd-momentum"}  # torch has fused CPU kernels for Adam(W), Adagrad, SGD


def make_params(seed: int = 0) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    params = []
    for _ in range(LAYERS):
        for shape in ((WIDTH, WIDTH), (WIDTH,)):
            p = torch.nn.Parameter(torch.randn(shape, generator=generator) * 0.01)
            p.grad = torch.randn(shape, generator=generator) * 0.01
            params.append(p)
    return params


def contenders(name: str, steps: int) -> dict[str, Callable[[], None]]:
    ours, theirs, kwargs = CASES[name]
    makers: dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]] = {
        "ravine": lambda p: ours(p, **kwargs),
        "ravine (nonfinite='off')": lambda p: ours(p, nonfinite="off", **kwargs),
        "torch foreach": lambda p: theirs(p, foreach=True, **kwargs),  # type: ignore[call-arg]
        "torch for-loop": lambda p: theirs(p, foreach=False, **kwargs),  # type: ignore[call-arg]
    }
    if name in FUSED:
        makers["torch fused"] = lambda p: theirs(p, fused=True, **kwargs)  # type: ignore[call-arg]
    runs: dict[str, Callable[[], None]] = {}
    for label, make in makers.items():
        opt = make(make_params())

        def run(opt: torch.optim.Optimizer = opt) -> None:
            for _ in range(steps):
                opt.step()

        runs[label] = run
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=list(CASES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    numel = sum(p.numel() for p in make_params())
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, threads={args.threads}, "
        f"{numel / 1e6:.2f}M parameters in {2 * LAYERS} tensors, {args.steps} steps per call, "
        f"median of {args.repeats} interleaved repeats\n"
    )
    print("| optimizer | contender | ms / step | ratio to torch foreach |")
    print("| --- | --- | ---: | ---: |")
    for name in args.only:
        medians = interleaved_medians(contenders(name, args.steps), repeats=args.repeats, warmup=1)
        base = medians["torch foreach"]
        fastest = min(medians, key=lambda k: medians[k])
        for label, seconds in medians.items():
            mark = " (fastest)" if label == fastest else ""
            print(f"| {name} | {label}{mark} | {1e3 * seconds / args.steps:.2f} | {seconds / base:.2f}× |")


if __name__ == "__main__":
    main()
