"""The Monitor at scale: its memory over 10⁴–10⁶ steps, and its overhead on a GPT-2-shaped model with probes.

Used by ``benchmarks/monitor.py`` (``--memory``, ``--gpt2``); each function returns markdown lines.
"""

from __future__ import annotations

import collections
import gc
import math
import sys
import time
from array import array
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ravine.diagnose import Monitor, MonitorConfig

# ----------------------------------------------------------------------------------------------- memory


def _deep_bytes(root: Any, seen: set[int]) -> int:
    """Bytes of ``root`` and everything it holds (tensors by their storage; modules and optimizers skipped)."""
    stack, total = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (nn.Module, torch.optim.Optimizer, type)) or callable(obj):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            key = -storage.data_ptr() - 1  # views share one storage: count it once
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
            continue
        total += sys.getsizeof(obj)
        if isinstance(obj, (array, str, bytes, int, float, bool)) or obj is None:
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset, collections.deque)):
            stack.extend(obj)
        if hasattr(obj, "__dict__"):
            stack.append(vars(obj))
        if hasattr(obj, "__slots__"):
            stack.extend(getattr(obj, s) for s in obj.__slots__ if hasattr(obj, s))
    return total


def monitor_bytes(monitor: Monitor) -> dict[str, int]:
    """What the monitor holds, by part: its history, its records, its parameter-sized state."""
    seen = {id(p) for p in monitor.params} | {id(monitor.params)}
    seen |= {id(p.grad) for p in monitor.params if p.grad is not None}
    parts = {
        "history": monitor.history,
        "records": [
            monitor.probes,
            monitor.critical_points,
            monitor.notes,
            monitor.errors,
            monitor.regimes,
            monitor.sharpness,
            monitor.refused_steps,
        ],
        "tracker": monitor._tracker,
        "pending rows": monitor._rows,
    }
    return {name: _deep_bytes(value, seen) for name, value in parts.items()}


def _hundred_tensor_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Linear(64, 64) for _ in range(50)])  # 100 tensors, 208,000 parameters


def memory(checkpoints: Iterable[int], real_steps: int) -> list[str]:
    """Monitor memory after each checkpoint; ``real_steps`` real monitored steps, then synthetic ones."""
    checkpoints = sorted(checkpoints)
    model = _hundred_tensor_model()
    params = list(model.parameters())
    numel = sum(p.numel() for p in params)
    optimizer = torch.optim.SGD(params, lr=1e-4)
    x, y = torch.randn(32, 64), torch.randn(32, 64)
    config = MonitorConfig(judge_every=25, probe_every=25)
    monitor = Monitor(model, optimizer, loss_fn=nn.functional.mse_loss, config=config)
    rows, done, peak_tracker = [], 0, 0
    start = time.perf_counter()
    for target in checkpoints:
        while done < min(target, real_steps):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            monitor.step(loss, batch=(x, y))
            optimizer.step()
            peak_tracker = max(peak_tracker, monitor._tracker.nbytes())
            done += 1
        if done < target:
            _synthetic(monitor, done, target)
            done = target
        monitor.verdict()
        gc.collect()
        sizes = monitor_bytes(monitor)
        rows.append((target, sizes, len(monitor.history)))
    seconds = time.perf_counter() - start
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    lines = [
        f"Model: 50 × Linear(64, 64) = {len(params)} parameter tensors, {numel:,} parameters "
        f"({param_bytes / 1e6:.2f} MB); SGD; default MonitorConfig with batch given (probes, verdicts). "
        f"The first {real_steps:,} steps are real monitored training steps; the rest are recorded through the "
        "monitor's own row path (`History.append`, probe and verdict records at their cadence) without "
        f"tensor work, which is what grows with the run. {seconds:.0f} s in all.",
        "",
        "| steps recorded | history | records (probes, notes, regimes, ...) | parameter-sized state now | total "
        "| rows readable |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target, sizes, length in rows:
        total = sum(sizes.values())
        lines.append(
            f"| {target:,} | {sizes['history'] / 1e3:,.0f} kB | {sizes['records'] / 1e3:,.0f} kB "
            f"| {sizes['tracker'] / 1e3:,.0f} kB | {total / 1e3:,.0f} kB | {length:,} |"
        )
    lines += [
        "",
        f"Parameter-sized state: the update tracker keeps two 4096-bucket float64 sketches for good "
        f"({2 * 4096 * 8 / 1e3:.0f} kB = {2 * 4096 * 8 / param_bytes:.2f} copies of the parameters) and holds "
        f"one flat buffer of θ only during a measured pair of steps: its peak over the real steps was "
        f"{peak_tracker / 1e6:.2f} MB = {peak_tracker / param_bytes:.2f} copies ({param_bytes / 1e6:.2f} MB of "
        "parameters); before this issue it held three copies for good.",
    ]
    return lines


def _synthetic(monitor: Monitor, start: int, stop: int) -> None:
    """Rows ``start..stop-1`` recorded without tensor work: what the monitor stores per step, per probe and per
    verdict, at its default cadence (the newest real probe record repeated)."""
    history = monitor.history
    layer = [0.01] * len(monitor.names)
    probe = monitor.probes[-1] if len(monitor.probes) else None
    every = monitor.config.judge_every
    for step in range(start, stop):
        loss = 1.0 / math.sqrt(step + 1)
        history.append(
            step,
            {"loss": loss, "grad_norm": 0.5 + 0.1 * math.sin(step), "lr": 1e-4, "update_norm": math.nan},
            layer,
            layer,
        )
        if probe is not None and step % monitor.cadence.max_every == 0:
            monitor.probes.append(probe)
        if step % every == 0:
            monitor.notes.append(f"step {step}: synthetic note")
    monitor._count = stop


# ----------------------------------------------------------------------------------------------- GPT-2


def _gpt2(seed: int) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=4, n_embd=256, n_head=4, vocab_size=2048, n_positions=128, bos_token_id=0, eos_token_id=0
    )
    return GPT2LMHeadModel(config)


def _lm_loss(outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    logits = outputs.logits[:, :-1]
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[:, 1:].reshape(-1))


class _GPT2Loop:
    def __init__(self, tokens: torch.Tensor, config: MonitorConfig | None) -> None:
        self.model = _gpt2(0)
        self.model.train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=3e-4)
        self.monitor = (
            Monitor(self.model, self.optimizer, loss_fn=_lm_loss, config=config) if config else None
        )
        self.tokens = tokens
        self.inside = 0.0
        self.steps = 0
        self.seconds = 0.0

    def run(self, steps: int) -> None:
        model, optimizer, monitor, tokens = self.model, self.optimizer, self.monitor, self.tokens
        clock = time.perf_counter
        start = clock()
        for _ in range(steps):
            optimizer.zero_grad()
            loss = _lm_loss(model(tokens), tokens)
            loss.backward()
            if monitor is not None:
                t = clock()
                monitor.step(loss, batch=(tokens, tokens))
                self.inside += clock() - t
            optimizer.step()
        self.seconds += clock() - start
        self.steps += steps


def gpt2(steps: int, chunk: int, batch: int, warmup: int) -> list[str]:
    """Bare vs monitored AdamW training of a GPT-2-shaped model, interleaved in chunks, totals compared."""
    generator = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 2048, (batch, 128), generator=generator)
    loops = {
        "bare": _GPT2Loop(tokens, None),
        "signals": _GPT2Loop(tokens, MonitorConfig(probe_every=0)),
        "default": _GPT2Loop(tokens, MonitorConfig()),
        "previous": _GPT2Loop(tokens, MonitorConfig(probe_budget=0.0, probe_max_every=100)),
    }
    for loop in loops.values():  # warm-up: the default monitor's probes back off to their steady cadence
        loop.run(warmup)
        loop.inside, loop.seconds, loop.steps = 0.0, 0.0, 0
    torch.manual_seed(11)
    for _ in range(steps // chunk):
        for loop in loops.values():
            loop.run(chunk)
    model = loops["bare"].model
    params = list(model.parameters())
    bare = loops["bare"].seconds / loops["bare"].steps
    lines = [
        f"GPT-2-shaped `GPT2LMHeadModel` (4 layers, d=256, 4 heads, vocabulary 2048, dropout 0.1 in train "
        f"mode): {sum(p.numel() for p in params):,} parameters in {len(params)} tensors; AdamW; batch "
        f"{batch} × 128 tokens; probes get `batch=(tokens, tokens)` and a causal-LM `loss_fn`. Each loop "
        f"first runs {warmup} steps (not timed), then the four loops take turns for {steps // chunk} chunks of "
        f"{chunk} steps ({steps} timed steps each); totals over all chunks, so that probes count at their real "
        "rate.",
        "",
        "| loop | s / step | end to end vs bare | inside `monitor.step` (incl. probes) | probes in the timed steps "
        "| probe interval at the end | probes over the whole run (incl. warm-up) | regime at the end | ≤ 5% |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | :---: |",
        f"| bare | {bare:.3f} | — | — | — | — | — | — | |",
    ]
    budget = MonitorConfig().probe_budget
    for name, label in (
        ("signals", "Monitor, per-step signals only (probe_every=0)"),
        ("default", f"Monitor, default config with batch= (adaptive probes, {budget:.0%} budget)"),
        ("previous", "Monitor, the previous default (no budget, at most one window apart)"),
    ):
        loop = loops[name]
        per = loop.seconds / loop.steps
        inside = loop.inside / loop.steps
        monitor = loop.monitor
        assert monitor is not None
        probes = sum(1 for p in monitor.probes if p.step >= warmup)
        cadence = monitor.cadence
        interval = cadence.interval if name != "signals" else "—"
        whole = "—"
        if name != "signals":
            share = cadence.total_probe_seconds / ((warmup + loop.steps) * bare)
            whole = f"{len(monitor.probes)}: {cadence.total_probe_seconds:.1f} s = {100 * share:.1f}% of the bare steps"
        regime = monitor.last_verdict.kind.value if monitor.last_verdict else "—"
        met = "yes" if inside / bare <= 0.05 else "**no**"
        lines.append(
            f"| {label} | {per:.3f} | {100 * (per / bare - 1):+.1f}% | {1e3 * inside:.1f} ms = "
            f"{100 * inside / bare:.1f}% | {probes} | {interval} | {whole} | {regime} | {met} |"
        )
        if monitor.errors:
            lines.append(f"| (errors: {monitor.errors[0]}) | | | | | | | | |")
    default = loops["default"].monitor
    assert default is not None
    lines += [
        "",
        f"Last probe took {default.cadence.probe_seconds:.2f} s against a measured "
        f"{default.cadence.step_seconds:.3f} s per training step. The default cadence doubles the probe interval "
        "while the regime stays the same, up to one window outside a healthy regime and "
        f"{default.cadence.healthy_max_every} steps in one; `probe_budget` = {default.config.probe_budget:g} "
        "puts a steady probe off until the measured training time makes up for it (a change of regime, or a "
        "probe the rules ask for when the window holds none, returns to every "
        f"{default.config.probe_every} steps). Probes taken by the default monitor over the whole run (steps): "
        f"{[p.step for p in default.probes]}.",
    ]
    return lines
