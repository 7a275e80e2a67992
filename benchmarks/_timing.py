"""Timing helpers shared by the benchmarks: interleaved repeats and medians, robust to a noisy machine, and a
line describing the machine's conditions for the reports."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping

import torch


def interleaved_medians(
    contenders: Mapping[str, Callable[[], object]], *, repeats: int = 7, warmup: int = 1
) -> dict[str, float]:
    """Median wall time in seconds of each contender, running them in turn so that load hits all alike."""
    for _ in range(warmup):
        for run in contenders.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def conditions(threads: int) -> str:
    """torch and Python versions, the processor, cores, torch threads and the load average right now."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"torch {torch.__version__}, Python {platform.python_version()}, {_cpu_name()}, "
        f"{os.cpu_count()} cores, torch threads = {threads}, load average {load:.1f}"
    )
