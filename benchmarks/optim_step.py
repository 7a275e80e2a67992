"""Optimizer step time on CPU: ravine's presets vs torch.optim's three paths (for-loop, foreach, fused).

The model is a ~10M-parameter set of 121 tensors shaped like a small transformer (an 8000×256 embedding,
then 10 blocks of qkv / out / two feed-forward weights with their biases and two LayerNorms), so big
matrices and many tiny tensors mix as in a real model. Every contender gets its own copy of the same
parameters and the same fixed gradients (set once: the benchmark times ``optimizer.step()`` alone).
State is created in a warm-up call; each timed call runs ``--steps`` steps; the figure is the median over
``--repeats`` interleaved repeats (benchmarks/_timing.py), so machine load hits every contender alike.

Contenders: ravine's preset as shipped (``nonfinite="raise"``: one NaN/Inf check over all gradients before
anything is touched, which torch does not do), the same with ``nonfinite="off"`` (exactly torch's work),
and torch.optim with ``foreach=True``, ``foreach=False`` (the for-loop, torch's default on CPU) and
``fused=True`` where torch has a fused CPU kernel (Adam, Adagrad, SGD; not RMSprop). After timing, every
contender has taken the same number of steps from the same start, and ravine's parameters are compared
with torch's (printed as the largest relative difference).

One torch thread by default: on a shared 2-core machine, two OpenMP threads wait on each other whenever
another process takes a core, and every contender's time then swings 4-10× from call to call; pass
``--threads 2`` to measure that anyway.

    .venv/bin/python -m benchmarks.optim_step [--threads 1] [--repeats 15] [--steps 3] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from collections.abc import Callable
from typing import Any

import torch

import ravine.optim as ro
from benchmarks._report import emit
from benchmarks._timing import conditions, interleaved_medians

VOCAB, WIDTH, BLOCKS = 8000, 256, 10

Maker = Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]
CASES: dict[str, tuple[Callable[..., torch.optim.Optimizer], type[torch.optim.Optimizer], dict[str, Any]]] = {
    "Adam": (ro.adam, torch.optim.Adam, {"lr": 1e-4}),
    "RMSprop": (ro.rmsprop, torch.optim.RMSprop, {"lr": 1e-5}),
    "Adagrad": (ro.adagrad, torch.optim.Adagrad, {"lr": 1e-4}),
    "SGD-momentum": (ro.sgd, torch.optim.SGD, {"lr": 1e-4, "momentum": 0.9}),
}
FUSED = {"Adam", "Adagrad", "SGD-momentum"}  # torch has fused CPU kernels for Adam(W), Adagrad, SGD
TARGET = 1.1


def shapes() -> list[tuple[int, ...]]:
    """Parameter shapes of a small transformer encoder (embedding + BLOCKS blocks, 12 tensors each)."""
    d = WIDTH
    block = [
        (3 * d, d),
        (3 * d,),
        (d, d),
        (d,),
        (d,),
        (d,),
        (4 * d, d),
        (4 * d,),
        (d, 4 * d),
        (d,),
        (d,),
        (d,),
    ]
    return [(VOCAB, d), *(block * BLOCKS)]


def make_params(seed: int = 0) -> list[torch.nn.Parameter]:
    """The same parameters and gradients for every contender (each gets its own copy)."""
    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes():
        p = torch.nn.Parameter(torch.randn(shape, generator=generator) * 0.02)
        p.grad = torch.randn(shape, generator=generator) * 0.01
        params.append(p)
    return params


def makers(name: str) -> dict[str, Maker]:
    ours, theirs, kwargs = CASES[name]
    table: dict[str, Maker] = {
        "ravine": lambda p: ours(p, **kwargs),
        "ravine (nonfinite='off')": lambda p: ours(p, nonfinite="off", **kwargs),
        "torch foreach": lambda p: theirs(p, foreach=True, **kwargs),  # type: ignore[call-arg]
        "torch for-loop": lambda p: theirs(p, foreach=False, **kwargs),  # type: ignore[call-arg]
    }
    if name in FUSED:
        table["torch fused"] = lambda p: theirs(p, fused=True, **kwargs)  # type: ignore[call-arg]
    return table


def rotated_medians(runs: dict[str, Callable[[], None]], repeats: int, passes: int = 3) -> dict[str, float]:
    """Median of ``passes`` interleaved-median passes, each starting the round at a different contender.

    A fixed order lets load that comes and goes within a round favour the same positions every time;
    rotating the order spreads it over all contenders. Every contender runs the same number of calls.
    """
    labels = list(runs)
    per_pass: dict[str, list[float]] = {label: [] for label in labels}
    for i in range(passes):
        order = labels[i % len(labels) :] + labels[: i % len(labels)]
        medians = interleaved_medians(
            {label: runs[label] for label in order},
            repeats=max(1, repeats // passes),
            warmup=1 if i == 0 else 0,
        )
        for label, seconds in medians.items():
            per_pass[label].append(seconds)
    return {label: statistics.median(values) for label, values in per_pass.items()}


def measure(name: str, steps: int, repeats: int) -> tuple[dict[str, float], float]:
    """Seconds per step of every contender, and max |θ_ravine − θ_torch-foreach| / max |θ| afterwards."""
    runs: dict[str, Callable[[], None]] = {}
    params: dict[str, list[torch.nn.Parameter]] = {}
    for label, make in makers(name).items():
        params[label] = make_params()
        opt = make(params[label])

        def run(opt: torch.optim.Optimizer = opt) -> None:
            for _ in range(steps):
                opt.step()

        runs[label] = run
    medians = rotated_medians(runs, repeats)
    ours, theirs = params["ravine"], params["torch foreach"]
    scale = max(float(p.detach().abs().max()) for p in theirs)
    diff = max(float((a - b).detach().abs().max()) for a, b in zip(ours, theirs, strict=True)) / scale
    return {label: seconds / steps for label, seconds in medians.items()}, diff


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, see above)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per timed call")
    parser.add_argument("--only", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--markdown", type=str, default=None, help="also write the section to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    numel = sum(torch.Size(s).numel() for s in shapes())
    lines = [
        "### Optimizer step time (CPU)",
        "",
        f"`{shlex.join(['.venv/bin/python', '-m', 'benchmarks.optim_step', *sys.argv[1:]])}`",
        "",
        f"{numel / 1e6:.2f}M parameters in {len(shapes())} tensors (transformer-shaped), fixed gradients, "
        f"{args.steps} steps per timed call; one warm-up call, then 3 passes of {args.repeats // 3} interleaved "
        "repeats, each pass starting the round at a different contender; the median of the passes' medians. "
        f"Start: {conditions(args.threads)}.",
        "",
        "| optimizer | ravine | ravine, nonfinite='off' | torch foreach | torch for-loop | torch fused "
        "| ravine ÷ foreach | ravine ÷ for-loop | ravine ÷ fused | 'off' ÷ foreach | ≤ 1.1× foreach | max rel. Δθ |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | ---: |",
    ]
    print("\n".join(lines), flush=True)
    for name in args.only:
        t, diff = measure(name, args.steps, args.repeats)
        ravine, off, fused = t["ravine"], t["ravine (nonfinite='off')"], t.get("torch fused")

        def ms(x: float | None) -> str:
            return "—" if x is None else f"{1e3 * x:.1f} ms"

        def ratio(a: float, b: float | None) -> str:
            return "—" if b is None else f"{a / b:.2f}×"

        met = "yes" if ravine / t["torch foreach"] <= TARGET else "**no**"
        row = (
            f"| {name} | {ms(ravine)} | {ms(off)} | {ms(t['torch foreach'])} "
            f"| {ms(t['torch for-loop'])} | {ms(fused)} | {ratio(ravine, t['torch foreach'])} "
            f"| {ratio(ravine, t['torch for-loop'])} | {ratio(ravine, fused)} "
            f"| {ratio(off, t['torch foreach'])} | {met} | {diff:.1e} |"
        )
        lines.append(row)
        print(row, flush=True)
    lines += [
        "",
        f"End: {conditions(args.threads)}. Times are per step. 'ravine' is the preset as shipped: it checks "
        "all gradients for NaN/Inf before touching anything (one 2-norm pass); 'off' does exactly torch's "
        "work. torch's default on CPU is the for-loop; fused exists for Adam, Adagrad and SGD only. "
        "max rel. Δθ: largest |θ_ravine − θ_torch foreach| / max |θ| after the same steps (0: bit-identical).",
        "",
    ]
    print(lines[-2])
    emit("\n".join(lines), args.markdown, echo=False)


if __name__ == "__main__":
    main()
