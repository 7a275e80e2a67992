"""Per-step overhead of ``ravine.diagnose.Monitor`` on CPU: a 1M-parameter MLP, bare loop vs monitored loop,
and (when installed) Cockpit's cheapest preset, "economy", on the same model.

Target (from the issue): the monitor's per-step signals cost ≤ 5% of the step time.

Every loop has its own copy of the same model (same initial weights), its own optimizer and the same
fixed batch, all built before timing. A timed call runs ``--steps`` training steps (zero_grad, forward,
loss, backward, [monitor.step], optimizer step); state carries over between calls, so the monitor's
periodic work (verdict every 25 steps, host flush every 32, Δθ sampled on pairs of steps every 10 on a
model this size) is included at its real rate. All loops run in turn, ``--repeats`` times after one
warm-up call (benchmarks/_timing.py); medians are compared. A second bare loop shows how far two identical
loops drift apart on this machine (the noise floor of the end-to-end column). The time spent inside
``monitor.step`` is also measured directly (median over the timed calls).

The verdict reads the whole history, so its cost grows with the number of recorded steps; a second table
times ``monitor.verdict()`` at several history lengths (on a small model: the cost is Python over the
history, not tensor work) and states it per step at the default cadence (every 25 steps).

Cockpit (when installed) runs its documented loop with the "economy" quantities at every step, with SGD
because its alpha gauge supports plain SGD only; it takes seconds per step, so it runs
``--cockpit-steps`` steps per call against a bare SGD loop.

After timing, the bare and the monitored models have taken the same steps from the same start; their
parameters are compared bit for bit (the monitor must not change the trajectory).

With ``--only memory``: the Monitor's memory after 10⁴, 10⁵ and 10⁶ recorded steps on a model with 100 parameter
tensors (``benchmarks/_monitor_scale.py``: the first ``--memory-real`` steps are real monitored training
steps, the rest go through the monitor's row path without tensor work). With ``--only gpt2``: the per-step
overhead on a GPT-2-shaped model with AdamW, with and without the default probes (batch given).

    .venv/bin/python -m benchmarks.monitor [--steps 10] [--repeats 31] [--no-cockpit] [--markdown PATH]
    .venv/bin/python -m benchmarks.monitor --only memory,gpt2 [--memory-real 20005] [--gpt2-steps 300]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import shlex
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from benchmarks._report import emit
from benchmarks._timing import conditions, interleaved_medians
from ravine.diagnose import Monitor, MonitorConfig

TARGET = 0.05


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 10))


def _optimizer(kind: str, model: nn.Module) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    return torch.optim.SGD(model.parameters(), lr=1e-2)


class Loop:
    """One contender: a model, its optimizer and optionally a ravine Monitor; ``run`` does ``steps`` steps."""

    def __init__(
        self, kind: str, batch: tuple[torch.Tensor, torch.Tensor], config: MonitorConfig | None
    ) -> None:
        self.model = _mlp()
        self.optimizer = _optimizer(kind, self.model)
        self.monitor = Monitor(self.model, self.optimizer, config=config) if config is not None else None
        self.x, self.y = batch

        self.inside: list[float] = []
        """Seconds spent inside ``monitor.step`` per call of :meth:`run`, divided by its steps."""

    def run(self, steps: int) -> None:
        model, optimizer, monitor = self.model, self.optimizer, self.monitor
        clock = time.perf_counter
        inside = 0.0
        for _ in range(steps):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(self.x), self.y)
            loss.backward()
            if monitor is not None:
                start = clock()
                monitor.step(loss)
                inside += clock() - start
            optimizer.step()
        self.inside.append(inside / steps)


def _cockpit_modules() -> tuple[Any, Any, Any] | str:
    """(Cockpit, configuration, backpack.extend), or why Cockpit cannot be used."""
    if importlib.util.find_spec("pkg_resources") is None:
        # Cockpit 1.0.2 imports pkg_resources, which setuptools >= 81 no longer ships.
        shim = types.ModuleType("pkg_resources")
        shim.DistributionNotFound = importlib.metadata.PackageNotFoundError  # type: ignore[attr-defined]
        shim.get_distribution = lambda name: types.SimpleNamespace(  # type: ignore[attr-defined]
            version=importlib.metadata.version(name)
        )
        sys.modules["pkg_resources"] = shim
    try:
        from backpack import extend
        from cockpit import Cockpit
        from cockpit.utils.configuration import configuration
    except ImportError as error:
        return f"not importable ({error}); install with `pip install cockpit-for-pytorch`"
    return Cockpit, configuration, extend


class CockpitLoop:
    """Cockpit's documented training loop with the "economy" quantities tracked at every step."""

    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor], modules: tuple[Any, Any, Any]) -> None:
        cockpit_cls, configuration, extend = modules
        self.model = extend(_mlp())
        self.loss_fn = extend(nn.CrossEntropyLoss())
        self.individual = nn.CrossEntropyLoss(reduction="none")
        self.optimizer = _optimizer("sgd", self.model)
        self.cockpit = cockpit_cls(self.model.parameters(), quantities=configuration("economy"))
        self.x, self.y = batch
        self.global_step = 0

    def run(self, steps: int) -> None:
        with _quiet():
            for _ in range(steps):
                self.optimizer.zero_grad()
                outputs = self.model(self.x)
                loss = self.loss_fn(outputs, self.y)
                losses = self.individual(outputs, self.y)
                info = {
                    "batch_size": len(self.x),
                    "individual_losses": losses,
                    "loss": loss,
                    "optimizer": self.optimizer,
                }
                with self.cockpit(self.global_step, info=info):
                    loss.backward(create_graph=self.cockpit.create_graph(self.global_step))
                self.optimizer.step()
                self.global_step += 1


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _timed(loop: Loop | CockpitLoop, steps: int) -> Callable[[], None]:
    def run() -> None:
        loop.run(steps)

    return run


def _identical(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def verdict_cost(lengths: list[int], every: int) -> list[tuple[int, float]]:
    """Seconds per ``monitor.verdict()`` after each history length (a 2-parameter-layer model, SGD)."""
    torch.manual_seed(0)
    model = nn.Linear(8, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = Monitor(model, optimizer, config=MonitorConfig(probe_every=0, judge_every=every))
    x, y = torch.randn(16, 8), torch.randn(16, 2)
    results, done = [], 0
    for length in lengths:
        while done < length:
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            monitor.step(loss)
            optimizer.step()
            done += 1
        runs = {"verdict": monitor.verdict}
        results.append((length, interleaved_medians(runs, repeats=7)["verdict"]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed call")
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--cockpit-steps", type=int, default=2, help="Cockpit's steps per timed call")
    parser.add_argument("--cockpit-repeats", type=int, default=5)
    parser.add_argument("--no-cockpit", action="store_true")
    parser.add_argument("--markdown", type=str, default=None, help="also write the section to this file")
    parser.add_argument(
        "--only", type=str, default="overhead", help="overhead, memory, gpt2 (comma-separated)"
    )
    parser.add_argument(
        "--memory-real", type=int, default=20_005, help="real monitored steps before the synthetic ones"
    )
    parser.add_argument("--gpt2-steps", type=int, default=300)
    parser.add_argument("--gpt2-chunk", type=int, default=50)
    parser.add_argument("--gpt2-batch", type=int, default=4)
    parser.add_argument("--gpt2-warmup", type=int, default=150)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if parts - {"overhead"}:
        scale(args, parts)
        return
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(1)
    batch = (
        torch.randn(args.batch, 512, generator=generator),
        torch.randint(0, 10, (args.batch,), generator=generator),
    )
    params = sum(p.numel() for p in _mlp().parameters())
    command = shlex.join([".venv/bin/python", "-m", "benchmarks.monitor", *sys.argv[1:]])
    lines = [
        "### Monitor overhead (CPU)",
        "",
        f"`{command}`",
        "",
        f"MLP 512-1024-512-10 ({params:,} parameters), batch {args.batch}, cross-entropy, fixed batch; "
        f"{args.steps} steps per timed call, median of {args.repeats} interleaved repeats after one warm-up "
        f"(all six loops below in turn). Start: {conditions(args.threads)}.",
        "",
        "| optimizer | loop | ms / step | end to end vs bare | inside `monitor.step` | ≤ 5% "
        "| same trajectory as bare |",
        "| --- | --- | ---: | ---: | ---: | :---: | :---: |",
    ]
    print("\n".join(lines), flush=True)

    def row_out(row: str) -> None:
        lines.append(row)
        print(row, flush=True)

    signals, default = MonitorConfig(probe_every=0), MonitorConfig()
    loops = {
        ("Adam", "bare"): Loop("adam", batch, None),
        ("Adam", "bare, second copy (noise floor)"): Loop("adam", batch, None),
        ("Adam", "ravine Monitor, per-step signals (probe_every=0)"): Loop("adam", batch, signals),
        ("Adam", "ravine Monitor, default config (no batch given: no probes)"): Loop("adam", batch, default),
        ("SGD", "bare"): Loop("sgd", batch, None),
        ("SGD", "ravine Monitor, per-step signals (probe_every=0)"): Loop("sgd", batch, signals),
    }
    medians = interleaved_medians(
        {f"{opt}: {label}": _timed(loop, args.steps) for (opt, label), loop in loops.items()},
        repeats=args.repeats,
    )
    bare_step: dict[str, float] = {}
    for (opt, label), loop in loops.items():
        per = medians[f"{opt}: {label}"] / args.steps
        bare_loop = loops[(opt, "bare")]
        bare = bare_step.setdefault(opt, medians[f"{opt}: bare"] / args.steps)
        if loop is bare_loop:
            row_out(f"| {opt} | {label} | {1e3 * per:.2f} | — | — | | |")
            continue
        same = "yes" if _identical(bare_loop.model, loop.model) else "**no**"
        if loop.monitor is None:
            row_out(f"| {opt} | {label} | {1e3 * per:.2f} | {100 * (per / bare - 1):+.1f}% | — | | {same} |")
            continue
        inside = statistics.median(loop.inside[1:])  # the first call is the warm-up
        met = "yes" if inside / bare <= TARGET else "**no**"
        row_out(
            f"| {opt} | {label} | {1e3 * per:.2f} | {100 * (per / bare - 1):+.1f}% "
            f"| {1e3 * inside:.3f} ms = {100 * inside / bare:.1f}% | {met} | {same} |"
        )

    modules = None if args.no_cockpit else _cockpit_modules()
    if isinstance(modules, tuple):
        contenders: dict[str, Loop | CockpitLoop] = {
            "bare": Loop("sgd", batch, None),
            'Cockpit "economy"': CockpitLoop(batch, modules),
        }
        steps_of = {"bare": args.cockpit_steps * 5, 'Cockpit "economy"': args.cockpit_steps}
        medians = interleaved_medians(
            {label: _timed(loop, steps_of[label]) for label, loop in contenders.items()},
            repeats=args.cockpit_repeats,
        )
        bare = medians["bare"] / steps_of["bare"]
        cockpit = medians['Cockpit "economy"'] / steps_of['Cockpit "economy"']
        row_out(
            f'| SGD | Cockpit "economy", every quantity every step | {1e3 * cockpit:,.0f} '
            f"| {cockpit / bare:,.0f}× the bare step ({1e3 * bare:.2f} ms in this run) | — | **no** | — |"
        )
        versions = ", ".join(
            f"{name} {importlib.metadata.version(name)}"
            for name in ("cockpit-for-pytorch", "backpack-for-pytorch")
        )
        note = (
            f"Cockpit ({versions}) runs its documented loop (BackPACK-extended model and loss, individual "
            "losses, `create_graph` when its quantities ask) with the 'economy' quantities at every step, "
            f"SGD since its alpha gauge supports only SGD; {args.cockpit_steps} steps per call, median of "
            f"{args.cockpit_repeats} repeats interleaved with a bare SGD loop. Cockpit 1.0.2 imports "
            "`pkg_resources`, which setuptools ≥ 81 no longer ships; the benchmark provides a stand-in "
            "module for that one import."
        )
    else:
        note = "Cockpit: skipped (--no-cockpit)." if modules is None else f"Cockpit: {modules}."
    tail = [
        "",
        "'≤ 5%' is judged on the time measured inside `monitor.step` (median per step over the timed calls, "
        "at a history of a few hundred steps); the end-to-end column is noisier on a shared machine (compare "
        "the second bare copy). " + note,
        "",
        "Verdict cost against history length (`monitor.verdict()`, median of 7; the monitor judges every "
        "25 steps, so a verdict costs 1/25 of its time per step):",
        "",
        "| recorded steps | one verdict | per step at judge_every=25 | as share of the bare Adam step |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += tail
    print("\n".join(tail), flush=True)
    every = MonitorConfig().judge_every
    for length, seconds in verdict_cost([500, 2_500, 10_000, 40_000], every):
        row_out(
            f"| {length:,} | {1e3 * seconds:.1f} ms | {1e3 * seconds / every:.3f} ms "
            f"| {100 * seconds / every / bare_step['Adam']:.1f}% |"
        )
    lines += ["", f"End: {conditions(args.threads)}.", ""]
    print(lines[-2])
    emit("\n".join(lines), args.markdown, echo=False)


def scale(args: argparse.Namespace, parts: set[str]) -> None:
    """The memory and GPT-2 parts (see the module docstring)."""
    from benchmarks import _monitor_scale

    torch.set_num_threads(args.threads)
    command = shlex.join([".venv/bin/python", "-m", "benchmarks.monitor", *sys.argv[1:]])
    lines = [f"`{command}`", "", f"Start: {conditions(args.threads)}.", ""]
    if "memory" in parts:
        lines += ["### Monitor memory against run length", ""]
        lines += _monitor_scale.memory([10_000, 100_000, 1_000_000], args.memory_real)
        lines.append("")
    if "gpt2" in parts:
        lines += ["### Monitor overhead on a GPT-2-shaped model (AdamW, probes on)", ""]
        lines += _monitor_scale.gpt2(args.gpt2_steps, args.gpt2_chunk, args.gpt2_batch, args.gpt2_warmup)
        lines.append("")
    lines += [f"End: {conditions(args.threads)}.", ""]
    emit("\n".join(lines), args.markdown)


if __name__ == "__main__":
    main()
