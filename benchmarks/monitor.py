"""Overhead of ravine.diagnose.Monitor's per-step signals on CPU: a 1M-parameter MLP, bare loop vs monitored.

Run: ``.venv/bin/python benchmarks/monitor.py [--threads N] [--steps N]``. Probes are off (probe_every=0) so
the number is the per-step cost; verdicts (every 25 steps) are included. Cockpit is timed only if importable.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from benchmarks._timing import interleaved_medians
from ravine.diagnose import Monitor, MonitorConfig


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 10))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = torch.randn(args.batch, 512), torch.randint(0, 10, (args.batch,))
    loss_fn = nn.functional.cross_entropy

    def loop(monitored: bool) -> None:
        model = _mlp()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        monitor = Monitor(model, optimizer, config=MonitorConfig(probe_every=0)) if monitored else None
        for _ in range(args.steps):
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            if monitor is not None:
                monitor.step(loss)
            optimizer.step()
        if monitor is not None:
            monitor.verdict()

    params = sum(p.numel() for p in _mlp().parameters())
    times = interleaved_medians(
        {"bare": lambda: loop(False), "monitor": lambda: loop(True)}, repeats=args.repeats
    )
    bare, mon = times["bare"] / args.steps, times["monitor"] / args.steps
    print(
        f"MLP {params:,} parameters, batch {args.batch}, Adam, {args.threads} thread(s), torch {torch.__version__}"
    )
    print("| loop | ms/step | overhead |")
    print("| --- | ---: | ---: |")
    print(f"| bare | {1e3 * bare:.2f} | — |")
    print(f"| ravine Monitor (per-step signals) | {1e3 * mon:.2f} | {100 * (mon / bare - 1):+.1f}% |")
    try:
        import cockpit  # noqa: F401
    except ImportError:
        print("Cockpit: not installed (not timed).")


if __name__ == "__main__":
    main()
