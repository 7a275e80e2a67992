"""Launch a torch.distributed test's ranks as separate processes on this machine (gloo over loopback).

Each rank runs ``sys.executable`` with the arguments given for it; the tests directory is put on its
``PYTHONPATH`` so that workers can import the tests' helpers. A rank that fails, or that is still running at the
timeout, fails the test with that rank's output; no process is left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def run_ranks(commands: Sequence[Sequence[str]], *, timeout: float = 120.0) -> list[str]:
    """Start one process per rank (``python *commands[rank]``), wait for all, return their outputs."""
    env = dict(os.environ)
    tests_dir = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(part for part in (tests_dir, env.get("PYTHONPATH", "")) if part)
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # stay on the loopback interface
    processes = [
        subprocess.Popen(
            [sys.executable, *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for command in commands
    ]
    logs: list[str] = []
    try:
        for process in processes:
            logs.append(process.communicate(timeout=timeout)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for rank, process in enumerate(processes):
        assert process.returncode == 0, f"rank {rank} failed:\n{logs[rank]}"
    return logs
