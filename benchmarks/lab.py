"""Benchmark of the surface lab: 64 configurations × 100,000 steps on the lecture's bowl, batched by
``ravine.surfaces.run_lab``, against the same configurations run one at a time through torch.optim in a
Python loop (the way one would write it by hand).

Run: ``./run.sh bench lab`` (or ``.venv/bin/python benchmarks/lab.py [--steps N] [--quick]``).

What is timed:
- ravine: one ``run_lab`` call, float64, recording loss and ‖g‖ at every step, θ every 100 steps and σ every
  1,000 (recording is part of the time). Eager torch, no compilation.
- torch.optim: per configuration a (2,) float64 parameter; every step zero_grad, loss, backward, step, and
  loss/‖g‖ written into preallocated tensors. The full run would take minutes, so a subset (4 configurations
  × ``--torch-steps`` steps) is timed and extrapolated linearly to 64 × 100,000 — said so in the output.
  Three torch variants: for-loop (default on CPU), foreach=True, fused=True where torch has it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from ravine.optim import AdagradMean, Momentum, RMSProp
from ravine.surfaces import LabConfig, Ravine, run_lab

N_CONFIGS = 64


def _lrs(n: int, low: float, high: float) -> list[float]:
    return torch.logspace(torch.log10(torch.tensor(low)), torch.log10(torch.tensor(high)), n).tolist()


def ravine_sets() -> dict[str, list[LabConfig]]:
    gd = [LabConfig(f"gd {lr:.3g}", lr=lr) for lr in _lrs(N_CONFIGS, 1e-7, 9e-3)]
    ada = [LabConfig(f"adagrad {lr:.3g}", AdagradMean(), lr) for lr in _lrs(N_CONFIGS, 1e-3, 0.5)]
    q = N_CONFIGS // 4
    mixed = (
        [LabConfig(f"gd {lr:.3g}", lr=lr) for lr in _lrs(q, 1e-7, 9e-3)]
        + [LabConfig(f"hb {lr:.3g}", Momentum(0.9), lr) for lr in _lrs(q, 1e-7, 9e-4)]
        + [LabConfig(f"ada {lr:.3g}", AdagradMean(), lr) for lr in _lrs(q, 1e-3, 0.5)]
        + [LabConfig(f"rms {lr:.3g}", RMSProp(0.9), lr) for lr in _lrs(q, 1e-4, 1e-2)]
    )
    return {
        "64 × GD (1 group)": gd,
        "64 × mean-Adagrad (1 group)": ada,
        "16 each GD/HB/Adagrad/RMSProp": mixed,
    }


def torch_loop(kind: str, lrs: list[float], steps: int, variant: str) -> Callable[[], None]:
    surface = Ravine()
    flags = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[variant]

    def make(p: torch.Tensor, lr: float) -> torch.optim.Optimizer:
        if kind == "gd":
            return torch.optim.SGD([p], lr=lr, **flags)
        return torch.optim.Adagrad([p], lr=lr, **flags)

    def run() -> None:
        for lr in lrs:
            p = surface.start_tensor().requires_grad_(True)
            opt = make(p, lr)
            losses = torch.empty(steps, dtype=torch.float64)
            norms = torch.empty(steps, dtype=torch.float64)
            for t in range(steps):
                opt.zero_grad()
                loss = surface.loss(p)
                torch.autograd.backward(loss)
                losses[t] = loss.detach()
                norms[t] = p.grad.norm()  # type: ignore[union-attr]
                opt.step()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--torch-steps", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {args.threads} torch thread(s), load average {load:.2f} at start"
    )
    print(
        f"\nravine.surfaces.run_lab: {N_CONFIGS} configs × {args.steps:,} steps, float64, "
        "loss+‖g‖ every step, θ every 100, σ every 1000 (median of "
        f"{args.repeats})"
    )
    results: dict[str, float] = {}
    sets = ravine_sets()
    sparse = {"record_every": 100, "sigma_every": 1000}
    dense = {"theta_every": 100, "sigma_every": 1000}
    cases = [(name, configs, dense) for name, configs in sets.items()]
    cases.append(("64 × GD, loss+‖g‖ every 100 steps", sets["64 × GD (1 group)"], sparse))
    wide = [LabConfig(f"gd {lr:.3g}", lr=lr) for lr in _lrs(1024, 1e-7, 9e-3)]
    cases.append(("1024 × GD (1 group)", wide, dense))
    for name, configs, recording in cases:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run_lab("ravine", configs, steps=args.steps, on_nonfinite="keep", **recording)  # type: ignore[arg-type]
            times.append(time.perf_counter() - start)
        results[name] = statistics.median(times)
        print(
            f"  {name:36s} {results[name]:7.2f} s   ({results[name] / args.steps * 1e6:5.1f} µs/step, "
            f"min {min(times):.2f} s, max {max(times):.2f} s)"
        )

    print(
        f"\ntorch.optim one config at a time (autograd gradient): 4 configs × {args.torch_steps:,} steps "
        f"timed, extrapolated × {N_CONFIGS // 4} configs × {args.steps / args.torch_steps:g} steps"
    )
    for kind, ravine_name, lrs in (
        ("gd", "64 × GD (1 group)", [1e-7, 1e-5, 1e-3, 9e-3]),
        ("adagrad", "64 × mean-Adagrad (1 group)", [1e-3, 1e-2, 0.1, 0.5]),
    ):
        for variant in ("loop", "foreach", "fused"):
            fn = torch_loop(kind, lrs, args.torch_steps, variant)
            try:
                fn()
            except (RuntimeError, TypeError) as error:  # fused not available for this optimizer/device
                print(f"  {kind:8s} {variant:8s} unavailable: {str(error).splitlines()[0][:70]}")
                continue
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            sub = statistics.median(times)
            full = sub * (N_CONFIGS / 4) * (args.steps / args.torch_steps)
            per = sub / (4 * args.torch_steps) * 1e6
            print(
                f"  {kind:8s} {variant:8s} {per:6.1f} µs/step → 64 × {args.steps:,}: ≈ {full:7.0f} s "
                f"(ratio vs ravine {full / results[ravine_name]:6.0f}×)"
            )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.2f} at end")


if __name__ == "__main__":
    main()
