"""Optimizer step time on CPU: ravine's presets vs torch.optim's three paths (for-loop, foreach, fused).

Two parameter sets (``--set``): ``transformer``, ~10M parameters in 121 tensors shaped like a small
transformer (an 8000×256 embedding, then 10 blocks of qkv / out / two feed-forward weights with their
biases and two LayerNorms), so big matrices and many tiny tensors mix as in a real model; and ``gpt2``,
GPT-2's own layout (wte, wpe, 12 blocks of ln_1 / c_attn / c_proj / ln_2 / c_fc / c_proj with biases,
ln_f; 148 tensors) at width 128, ~8.9M parameters, most tensors tiny. Every contender gets its own copy of the same
parameters and the same fixed gradients (set once: the benchmark times ``optimizer.step()`` alone).
State is created in a warm-up call; each timed call runs ``--steps`` steps; the figure is the median over
``--repeats`` interleaved repeats (benchmarks/_timing.py), so machine load hits every contender alike.

Contenders: ravine's preset as shipped (``nonfinite="raise"``: one NaN/Inf check over all gradients before
anything is touched, which torch does not do), the same with ``nonfinite="off"`` (exactly torch's work),
where torch fuses the rule (Adam, AdamW, Adagrad, SGD) the preset with ``fused=True`` (torch's fused CPU
kernel on ravine's state; guard on as shipped, and with ``nonfinite="off"``), and torch.optim with
``foreach=True``, ``foreach=False`` (the for-loop, torch's default on CPU) and ``fused=True`` where
torch has a fused CPU kernel (Adam, Adagrad, SGD; not RMSprop). ``AdamW + clip`` is the usual LLM recipe:
ravine's ``chain(ClipByGlobalNorm(1.0), Adam(), DecoupledWeightDecay(0.01))`` against torch's
``clip_grad_norm_(params, 1.0)`` then AdamW (torch clips the fixed gradients in place, so after the first
step its gradients sit at norm 1 and Δθ differs by that rounding). Adafactor and Muon
are set against torch 2.13's ``torch.optim.Adafactor`` (foreach and for-loop) and ``torch.optim.Muon`` (one
path; both libraries update 2-D parameters only, so that row runs on the set's matrices). After timing, every
contender has taken the same number of steps from the same start, and ravine's parameters are compared
with torch's (printed as the largest relative difference; ravine fused against torch fused separately).

Every row is also set against the **bandwidth bound**: the bytes the rule must move per step (e.g. Adam
reads θ, g, m, v and writes θ, m, v: 28 bytes per float32 parameter) divided by this machine's in-place
bandwidth, measured here with ``x.add_(y)`` on 64 MiB tensors (12 bytes per element moved). ``--compiled``
adds ``torch.compile(optimizer.step)`` (inductor) of ravine's preset — opt-in, it compiles for minutes on
a small CPU.

One torch thread by default: on a shared 2-core machine, two OpenMP threads wait on each other whenever
another process takes a core, and every contender's time then swings 4-10× from call to call; pass
``--threads 2`` to measure that anyway.

    .venv/bin/python -m benchmarks.optim_step [--set transformer|gpt2] [--threads 1] [--repeats 15] [--steps 3]
        [--only Adam AdamW Adagrad SGD-momentum] [--compiled] [--markdown PATH]

``--only`` runs the named rows (e.g. the four that torch fuses) and nothing else.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from collections.abc import Callable
from typing import Any, cast

import torch

import ravine.optim as ro
from benchmarks._report import emit
from benchmarks._timing import conditions, interleaved_medians
from ravine.optim._foreach import all_finite

VOCAB, WIDTH, BLOCKS = 8000, 256, 10

Maker = Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]


class ClippedAdamW(torch.optim.AdamW):
    """torch's idiom for the usual LLM recipe: ``clip_grad_norm_(params, 1.0)`` (in place), then AdamW."""

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=self.defaults["foreach"])
        loss: float | None = super().step(closure)
        return loss


def clipped_adamw(params: list[torch.nn.Parameter], **kwargs: Any) -> torch.optim.Optimizer:
    """The same recipe as ravine's parts: a global-norm clip, Adam, decoupled weight decay (AdamW's)."""
    rule = ro.chain(ro.ClipByGlobalNorm(1.0), ro.Adam(), ro.DecoupledWeightDecay(0.01))
    return ro.ChainOptimizer(params, rule, **kwargs)


CASES: dict[
    str, tuple[Callable[..., torch.optim.Optimizer], type[torch.optim.Optimizer] | None, dict[str, Any]]
]
CASES = {
    "Adam": (ro.adam, torch.optim.Adam, {"lr": 1e-4}),
    "AdamW": (ro.adamw, torch.optim.AdamW, {"lr": 1e-4}),
    "AdamW + clip": (clipped_adamw, ClippedAdamW, {"lr": 1e-4}),
    "RMSprop": (ro.rmsprop, torch.optim.RMSprop, {"lr": 1e-5}),
    "Adagrad": (ro.adagrad, torch.optim.Adagrad, {"lr": 1e-4}),
    "SGD-momentum": (ro.sgd, torch.optim.SGD, {"lr": 1e-4, "momentum": 0.9}),
    "NAdam": (ro.nadam, torch.optim.NAdam, {"lr": 1e-4}),
    "Adamax": (ro.adamax, torch.optim.Adamax, {"lr": 1e-4}),
    "Adadelta": (ro.adadelta, torch.optim.Adadelta, {}),
    "Rprop": (ro.rprop, torch.optim.Rprop, {"lr": 1e-4}),
    "Lion": (ro.lion, None, {"lr": 1e-5}),
    "Adafactor": (ro.adafactor, torch.optim.Adafactor, {"lr": 1e-2}),
    "Muon": (ro.muon, torch.optim.Muon, {"lr": 1e-3}),
}
MATRICES_ONLY = {"Muon"}  # Muon updates 2-D parameters only (torch's and ravine's refuse the others)
NO_FOREACH = {"Muon"}  # torch.optim.Muon has one path (no foreach keyword)
FUSED = {"Adam", "AdamW", "Adagrad", "SGD-momentum"}  # torch's fused CPU kernels
BYTES_PER_PARAM = {  # float32: (tensors read + tensors written) × 4
    "Adam": 28,
    "AdamW": 28,
    "AdamW + clip": 32,  # AdamW's 28 bytes plus one read of g for the global norm
    "RMSprop": 20,
    "Adagrad": 20,
    "SGD-momentum": 20,
    "NAdam": 28,
    "Adamax": 28,
    "Adadelta": 28,
    "Rprop": 28,
    "Lion": 20,
    "Adafactor": 12,  # matrices: θ, g read, θ written; the factored row/column state is tiny
    "Muon": 20,  # θ, g, m read; θ, m written — plus the Newton–Schulz matmuls, which are compute-bound
}
EAGER_TARGET, FUSED_TARGET = 1.0, 1.2
GUARD = "guard alone"  # ravine's NaN/Inf check over the same gradients, timed by itself


def gpt2_shapes(
    width: int = 128, layers: int = 12, vocab: int = 50257, positions: int = 1024
) -> list[tuple[int, ...]]:
    """GPT-2's parameter layout (Hugging Face's GPT2LMHeadModel, tied head) at a small width."""
    d = width
    block = [
        (d,),
        (d,),
        (d, 3 * d),
        (3 * d,),
        (d, d),
        (d,),
        (d,),
        (d,),
        (d, 4 * d),
        (4 * d,),
        (4 * d, d),
        (d,),
    ]
    return [(vocab, d), (positions, d), *(block * layers), (d,), (d,)]


SET = "transformer"


def shapes() -> list[tuple[int, ...]]:
    """The shapes of the chosen set (:data:`SET`)."""
    return gpt2_shapes() if SET == "gpt2" else transformer_shapes()


def transformer_shapes() -> list[tuple[int, ...]]:
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


def make_params(seed: int = 0, *, matrices_only: bool = False) -> list[torch.nn.Parameter]:
    """The same parameters and gradients for every contender (each gets its own copy)."""
    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes():
        if matrices_only and len(shape) != 2:
            continue
        p = torch.nn.Parameter(torch.randn(shape, generator=generator) * 0.02)
        p.grad = torch.randn(shape, generator=generator) * 0.01
        params.append(p)
    return params


def makers(name: str, compiled: bool) -> dict[str, Maker]:
    ours, theirs, kwargs = CASES[name]
    table: dict[str, Maker] = {
        "ravine": lambda p: ours(p, **kwargs),
        "ravine (nonfinite='off')": lambda p: ours(p, nonfinite="off", **kwargs),
    }
    if name in FUSED:
        table["ravine fused"] = lambda p: ours(p, fused=True, **kwargs)
        table["ravine fused 'off'"] = lambda p: ours(p, fused=True, nonfinite="off", **kwargs)
    if compiled:
        table["ravine compiled"] = lambda p: ours(p, **kwargs)
    if theirs is not None and name in NO_FOREACH:
        table["torch for-loop"] = lambda p: theirs(p, **kwargs)
    elif theirs is not None:
        table["torch foreach"] = lambda p: theirs(p, foreach=True, **kwargs)  # type: ignore[call-arg]
        table["torch for-loop"] = lambda p: theirs(p, foreach=False, **kwargs)  # type: ignore[call-arg]
    if name in FUSED and theirs is not None:
        table["torch fused"] = lambda p: theirs(p, fused=True, **kwargs)  # type: ignore[call-arg]
    return table


def add_bandwidth(repeats: int = 9) -> float:
    """Bytes per second of ``x.add_(y)`` on 64 MiB float32 tensors (read x, read y, write x)."""
    x, y = torch.zeros(1 << 24), torch.ones(1 << 24)
    seconds = interleaved_medians({"add_": lambda: x.add_(y)}, repeats=repeats, warmup=2)["add_"]
    return 3 * x.numel() * x.element_size() / seconds


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


def measure(
    name: str, steps: int, repeats: int, compiled: bool
) -> tuple[dict[str, float], float, float | None]:
    """Seconds per step of every contender, max |θ_ravine − θ_torch| / max |θ| afterwards, and the same for
    ravine fused against torch fused (``None`` where torch has no fused kernel)."""
    runs: dict[str, Callable[[], None]] = {}
    params: dict[str, list[torch.nn.Parameter]] = {}
    for label, make in makers(name, compiled).items():
        params[label] = make_params(matrices_only=name in MATRICES_ONLY)
        opt = make(params[label])
        step = torch.compile(opt.step) if label == "ravine compiled" else opt.step

        def run(step: Callable[[], object] = step) -> None:
            for _ in range(steps):
                step()

        runs[label] = run
    grads = [cast(torch.Tensor, p.grad) for p in make_params(matrices_only=name in MATRICES_ONLY)]

    def check() -> None:
        for _ in range(steps):
            if not all_finite(grads):
                raise RuntimeError("the benchmark's gradients are finite")

    runs[GUARD] = check
    medians = rotated_medians(runs, repeats)
    per_step = {label: seconds / steps for label, seconds in medians.items()}
    reference = next((k for k in ("torch foreach", "torch for-loop") if k in params), None)
    diff = float("nan") if reference is None else _relative_diff(params["ravine"], params[reference])
    fused_diff = None
    if "torch fused" in params and "ravine fused" in params:
        fused_diff = _relative_diff(params["ravine fused"], params["torch fused"])
    return per_step, diff, fused_diff


def _relative_diff(ours: list[torch.nn.Parameter], theirs: list[torch.nn.Parameter]) -> float:
    """max |θ_ours − θ_theirs| / max |θ_theirs|."""
    scale = max(float(p.detach().abs().max()) for p in theirs)
    return max(float((a - b).detach().abs().max()) for a, b in zip(ours, theirs, strict=True)) / scale


def main() -> None:
    global SET  # noqa: PLW0603 (the set is chosen once, before anything is built)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=["transformer", "gpt2"], default="transformer")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, see above)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per timed call")
    parser.add_argument("--only", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--compiled", action="store_true", help="add torch.compile(step) (inductor; slow to build)"
    )
    parser.add_argument("--markdown", type=str, default=None, help="also write the section to this file")
    args = parser.parse_args()
    SET = args.set
    torch.set_num_threads(args.threads)
    numel = sum(torch.Size(s).numel() for s in shapes())
    bandwidth = add_bandwidth()
    lines = [
        f"### Optimizer step time (CPU), {SET} set",
        "",
        f"`{shlex.join(['.venv/bin/python', '-m', 'benchmarks.optim_step', *sys.argv[1:]])}`",
        "",
        f"{numel / 1e6:.2f}M parameters in {len(shapes())} tensors ({SET}-shaped), fixed gradients, "
        f"{args.steps} steps per timed call; one warm-up call, then 3 passes of {args.repeats // 3} interleaved "
        "repeats, each pass starting the round at a different contender; the median of the passes' medians. "
        f"In-place bandwidth (x.add_(y), 64 MiB): {bandwidth / 1e9:.1f} GB/s. Start: {conditions(args.threads)}.",
        "",
        "| optimizer | ravine | 'off' | ravine fused | fused 'off' | compiled | torch foreach | torch for-loop "
        "| torch fused | ravine ÷ best non-fused | ≤ 1.0× | 'off' ÷ best non-fused | guard alone "
        "| ravine ÷ (best non-fused + guard) | ≤ 1.0× | ravine fused ÷ torch fused | ≤ 1.2× "
        "| fused 'off' ÷ torch fused | bound | ravine % of bound | ravine fused % of bound "
        "| best torch % of bound | max rel. Δθ | fused Δθ |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: "
        "| :---: | ---: | :---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    print("\n".join(lines), flush=True)
    for name in args.only:
        t, diff, fused_diff = measure(name, args.steps, args.repeats, args.compiled)
        count = sum(torch.Size(s).numel() for s in shapes() if name not in MATRICES_ONLY or len(s) == 2)
        lines.append(_row(name, t, (diff, fused_diff), BYTES_PER_PARAM[name] * count / bandwidth))
        print(lines[-1], flush=True)
    lines += [
        "",
        f"End: {conditions(args.threads)}. Times are per step. 'ravine' is the preset as shipped: it checks "
        "all gradients for NaN/Inf before touching anything (one sum per tensor); 'off' does exactly torch's "
        "work; 'ravine fused': the preset with fused=True as shipped (guard on, then torch's fused CPU kernel "
        "on ravine's state), fused 'off' the same with nonfinite='off'; 'compiled': torch.compile(opt.step) "
        "of the preset as shipped (inductor; the guard runs inside the graph). Best non-fused: the faster of "
        "torch's for-loop (its CPU default) and foreach. 'guard alone': ravine's NaN/Inf check by itself "
        "(one sum per gradient, the same code the presets run), timed among the contenders; 'best non-fused "
        "+ guard' is what torch costs with the same guarantee (a check before the step). Bound: the "
        "bytes each step must move ÷ the measured add_ bandwidth; % of bound = bound ÷ time. max rel. Δθ: "
        "largest |θ_ravine − θ_torch foreach| (for-loop where torch has no foreach) / max |θ| after the same "
        "steps (0: bit-identical); fused Δθ: the same for ravine fused against torch fused. Muon runs on the "
        "set's 2-D tensors only (both libraries refuse the others).",
        "",
    ]
    print(lines[-2])
    emit("\n".join(lines), args.markdown, echo=False)


def _row(name: str, t: dict[str, float], diffs: tuple[float, float | None], bound: float) -> str:
    def ms(x: float | None) -> str:
        return "—" if x is None else f"{1e3 * x:.1f} ms"

    def ratio(a: float | None, b: float | None) -> str:
        return "—" if a is None or b is None else f"{a / b:.2f}×"

    ravine, fused, compiled = t["ravine"], t.get("torch fused"), t.get("ravine compiled")
    off = t["ravine (nonfinite='off')"]
    ours_fused, ours_fused_off = t.get("ravine fused"), t.get("ravine fused 'off'")
    fused_met = "—"
    if ours_fused is not None and fused is not None:
        fused_met = "yes" if ours_fused / fused <= FUSED_TARGET else "**no**"
    diff, fused_diff = diffs
    torch_paths = [t[k] for k in ("torch for-loop", "torch foreach") if k in t]
    best = min(torch_paths) if torch_paths else None
    met = "—" if best is None else ("yes" if ravine / best <= EAGER_TARGET else "**no**")
    guard = t[GUARD]
    guarded = None if best is None else best + guard
    guarded_met = "—" if guarded is None else ("yes" if ravine / guarded <= EAGER_TARGET else "**no**")
    fastest_torch = min([*torch_paths, *([fused] if fused else [])], default=None)
    return (
        f"| {name} | {ms(ravine)} | {ms(off)} | {ms(ours_fused)} | {ms(ours_fused_off)} | {ms(compiled)} "
        f"| {ms(t.get('torch foreach'))} | {ms(t.get('torch for-loop'))} | {ms(fused)} | {ratio(ravine, best)} "
        f"| {met} | {ratio(off, best)} | {ms(guard)} | {ratio(ravine, guarded)} | {guarded_met} "
        f"| {ratio(ours_fused, fused)} | {fused_met} | {ratio(ours_fused_off, fused)} | {ms(bound)} "
        f"| {100 * bound / ravine:.0f}% | {_percent(bound, ours_fused)} | {_percent(bound, fastest_torch)} "
        f"| {diff:.1e} | {'—' if fused_diff is None else f'{fused_diff:.1e}'} |"
    )


def _percent(bound: float, seconds: float | None) -> str:
    return "—" if seconds is None else f"{100 * bound / seconds:.0f}%"


if __name__ == "__main__":
    main()
