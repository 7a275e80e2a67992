"""The pullback cache's memory budget, measured (a section of ``benchmarks/curvature.py --memory``).

``HessianOperator(..., max_cache_bytes=B)`` keeps each batch's pullback only while the *estimated* memory of
all of them stays within B (4× the modules' outputs plus 2× the parameters per batch). Whether the budget
holds depends on how close the estimate is to what the graphs really keep, so this measures it: a GPT-2-
shaped model with several batches, the first product (which fills the cache) run at budgets below and above
the estimate, and the memory the process *holds* after that product (resident set, not the peak), against
the estimate and against B. Plus the MLP the issue names (10M parameters, batch 256).

Each row runs in a fresh interpreter with glibc's mmap threshold fixed at 64 KiB, so that every freed tensor
goes back to the system and the resident set after the product is what is still referenced (the cache), not
what the allocator kept for reuse.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
from typing import Any

import torch
from torch import nn

from benchmarks._gpt2_shaped import SEQUENCE, VOCABULARY, gpt2_shaped
from benchmarks._report import Section, Targets
from ravine.curvature import HessianOperator
from ravine.errors import MemoryBudgetError

__all__ = ["budget_rows", "budget_section", "one_row"]

MODEL, SEQUENCES, BATCHES = "M", 4, 4
FACTORS = (0.5, 1.05, 2.0)
"""Budgets as multiples of the estimate of the whole cache (measured first, with an unlimited budget)."""
UNLIMITED = 1 << 40
ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def _resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _gpt2_data() -> tuple[nn.Module, list[dict[str, torch.Tensor]]]:
    model, _ = gpt2_shaped(MODEL, SEQUENCES)
    batches = []
    for seed in range(BATCHES):
        ids = torch.randint(
            0, VOCABULARY, (SEQUENCES, SEQUENCE), generator=torch.Generator().manual_seed(10 + seed)
        )
        batches.append({"input_ids": ids, "labels": ids})
    return model, batches


def _mlp_data() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], Any]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(1024, 3072), nn.ReLU(), nn.Linear(3072, 2048), nn.ReLU(), nn.Linear(2048, 10)
    )
    x = torch.randn(256, 1024, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (256,), generator=torch.Generator().manual_seed(2))
    return model, (x, y), nn.functional.cross_entropy


def one_row(kind: str, budget: int, setting: str) -> dict[str, Any]:
    """One measurement in this process: ``kind`` is ``gpt2`` (4 batches) or ``mlp-gradient`` / ``mlp-hvp-*``."""
    torch.set_num_threads(1)
    loss_fn = None
    if kind == "gpt2":
        model, data = _gpt2_data()
        data_arg: Any = data
    else:
        model, data_arg, loss_fn = _mlp_data()
    cache: Any = {"auto": "auto", "true": True, "false": False}[setting]
    operator = HessianOperator(model, data=data_arg, loss_fn=loss_fn, cache=cache, max_cache_bytes=budget)
    n = sum(p.numel() for p in model.parameters())
    v = torch.randn(n, generator=torch.Generator().manual_seed(3))
    operator.loss()
    gc.collect()
    before, peak_before = _resident_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    refused = ""
    try:
        if kind == "mlp-gradient":
            operator.gradient()
        else:
            operator.matvec(v)
    except MemoryBudgetError as error:
        refused = str(error).split(";")[0]
    gc.collect()
    held = _resident_bytes() - before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    return {"kind": kind, "budget": budget, "setting": setting, "n": n, "held": held, "peak": peak,
            "estimated": operator.cache_bytes, "cached": operator.cache_active, "refused": refused}  # fmt: skip


def _child(kind: str, budget: int, setting: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.curvature", "--budget-row", kind, str(budget), setting],
        capture_output=True, text=True, check=True, env={**os.environ, **ENV},
    )  # fmt: skip
    row: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return row


def budget_rows() -> list[dict[str, Any]]:
    """The estimate with no limit, then each budget of ``FACTORS`` with cache='auto' and cache=True; the MLP."""
    from benchmarks.curvature import log

    full = _child("gpt2", UNLIMITED, "true")
    log(f"cache budget: unlimited {full}")
    rows = [full]
    for factor in FACTORS:
        for setting in ("auto", "true"):
            rows.append(_child("gpt2", int(factor * full["estimated"]), setting))
            log(f"cache budget ×{factor} {setting}: {rows[-1]}")
    for kind, setting in (("mlp-gradient", "false"), ("mlp-hvp", "true"), ("mlp-hvp", "false")):
        rows.append(_child(kind, UNLIMITED, setting))
        log(f"{kind} cache={setting}: {rows[-1]}")
    return rows


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def budget_section(rows: list[dict[str, Any]], targets: Targets) -> Section:
    """The budget table, its target row, and the MLP's HVP over gradient memory."""
    full = rows[0]
    section = Section(
        f"The cache's budget: GPT-2-shaped {MODEL} ({full['n'] / 1e6:.1f}M), {BATCHES} batches of "
        f"{SEQUENCES} × {SEQUENCE}, memory held after the product that fills the cache",
        ["max_cache_bytes", "cache=", "cached", "estimated", "held (resident)", "held ÷ estimated",
         "held ≤ budget", "peak rise", "refusal"],
        left=(0, 1, 2, 6, 8),
    )  # fmt: skip
    respected = []
    for row in rows[: 1 + 2 * len(FACTORS)]:
        budget = "unlimited"
        if row["budget"] != UNLIMITED:
            budget = f"{row['budget'] / full['estimated']:.2f}× est. = {_mib(row['budget'])}"
        within = row["budget"] == UNLIMITED or row["held"] <= row["budget"]
        if row["budget"] != UNLIMITED:
            respected.append(within)
        ratio = f"{row['held'] / row['estimated']:.2f}" if row["estimated"] else "—"
        section.rows.append([
            budget, row["setting"], "yes" if row["cached"] else "no", _mib(row["estimated"]), _mib(row["held"]),
            ratio, "yes" if within else "**no**", _mib(row["peak"]), row["refused"] or "—",
        ])  # fmt: skip
    targets.add(
        "the cache's budget respected (memory held after filling the cache ≤ max_cache_bytes)",
        f"{sum(respected)} of {len(respected)} budgets; held {_mib(full['held'])} against an estimate of "
        f"{_mib(full['estimated'])} ({full['held'] / max(full['estimated'], 1):.2f}×)",
        all(respected),
    )
    grad, cached, uncached = rows[-3:]
    section.notes.append(
        f"The issue's MLP (1024-3072-2048-10, {grad['n'] / 1e6:.1f}M parameters, batch 256, cross-entropy): one "
        f"gradient raises the peak by {_mib(grad['peak'])}; one HVP by {_mib(cached['peak'])} cached "
        f"({cached['peak'] / max(grad['peak'], 1):.2f}×; the cache then holds {_mib(cached['held'])}) and "
        f"{_mib(uncached['peak'])} uncached ({uncached['peak'] / max(grad['peak'], 1):.2f}×)."
    )
    section.notes.append(
        "Each row in a fresh interpreter (MALLOC_MMAP_THRESHOLD_=65536, MALLOC_TRIM_THRESHOLD_=0, so freed "
        "tensors return to the system); 'held' is the resident set after the first product minus before it, "
        "after a forward pass and gc; 'peak rise' is ru_maxrss's. Below the estimate, cache='auto' recomputes "
        "every product (nothing held) and cache=True refuses with MemoryBudgetError, keeping nothing. The "
        "budget bounds what is *kept*: while the first product fills the cache, the peak can reach the "
        "budget plus the batch whose graph overflows it (one batch here is estimated at "
        f"{_mib(full['estimated'] / BATCHES)}), plus the product's own working memory."
    )
    return section
