"""Curvature side by side: ravine vs PyHessian, hessian-eigenthings, curvlinops and SciPy eigsh, in one run.

A 97,866-parameter MLP (40-320-256-10, ReLU) trained briefly on MNIST-1D (generated offline by
``ravine.data.mnist1d``); the Hessian of the mean cross-entropy over a fixed full batch of training samples,
float32, CPU, the same weights for every contender.

1. Top-5 eigenvalues to 1e-3 relative accuracy: Hessian-vector products (HVPs) and wall time of ravine's
   ``lanczos`` vs PyHessian's power iteration (its default tol, and the largest tol that reaches 1e-3),
   hessian-eigenthings' Lanczos (default steps, and the fewest steps that reach 1e-3) and SciPy's ``eigsh`` on
   ravine's operator. Truth: ``eigsh`` in float64 on ravine's operator at tol 1e-10, cross-checked by ravine's
   float64 ``lanczos`` at tol 1e-10.
2. One HVP's time over one gradient's (a plain ``loss.backward()``), for ravine and the peers.
3. Trace at equal HVP budgets: ravine's Hutchinson and Hutch++ vs PyHessian's ``trace()``; the exact trace is
   the sum of BackPACK's exact Hessian diagonal (checked against ravine's float64 HVPs).
4. Spectral density at equal HVP budgets: ravine's ``spectral_density`` (SLQ) vs PyHessian's ``density()``,
   against a high-budget SLQ reference: Wasserstein-1 distance of the spectral measures, negative shares,
   trace.
5. SLQ at ravine's default size: time inside and outside the HVPs.

ravine's ``HessianOperator`` caches each batch's linearised gradient (``cache="auto"``, the default); rows
marked ``cache=False`` measure the same library recomputing the forward and backward for every product.

Timings are medians of interleaved repeats (``benchmarks/_timing.py``) and are reported as ratios against
the peer measured in the same run. HVP counts are exact: ravine reports its own, PyHessian's
``hessian_vector_product`` and hessian-eigenthings' ``matvec`` are wrapped with counters.

GPT-2-shaped sections (``benchmarks/_gpt2_shaped.py``), each its own mode:

- ``--gpt2``: a tiny random GPT-2 (33,920 parameters): ravine's Lanczos vs SciPy eigsh at tol 1e-3 … 1e-10
  (HVPs, interleaved wall time, time outside the HVPs); then top-5 to 1e-3 in float32 against
  hessian-eigenthings (its ``hf_lm_loss`` helper), PyHessian and eigsh, with errors against a float64 truth
  computed without ravine.
- ``--memory``: one HVP's time and peak memory over one gradient's, cached and uncached, at three GPT-2 sizes
  (1.4M, 5.2M, 10.2M parameters) × three batches (2, 4, 8 sequences of 64 tokens), one fresh process each;
  then the cache's memory budget (``benchmarks/_cache_budget.py``: what the cached pullbacks hold against
  their estimate and ``max_cache_bytes``) and the 10M-parameter MLP at batch 256. ``--budget``: that alone.
- ``--all``: the MLP sections, then both.

    .venv/bin/python -m benchmarks.curvature [--quick] [--gpt2 | --memory | --budget | --all] [--markdown PATH]
        [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import importlib
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import Tensor, nn
from torch.nn.functional import cross_entropy

from benchmarks._report import Section, Targets, emit, fmt_time
from benchmarks._timing import conditions, interleaved_medians
from ravine.curvature import HessianOperator, hutchinson, hutchpp, lanczos, spectral_density
from ravine.data import mnist1d

TOP = 5
TARGET_ACCURACY = 1e-3
CONSOLE = Console(stderr=True, highlight=False)
_START = time.perf_counter()


def log(message: str) -> None:
    """A progress line on stderr with the elapsed time."""
    CONSOLE.print(f"[dim]{time.perf_counter() - _START:7.1f}s[/dim] {message}")


@dataclass(frozen=True)
class Config:
    """Sizes of one run; ``QUICK`` is for a smoke test, ``FULL`` for the numbers in BENCHMARKS.md."""

    samples: int
    repeats: int
    hvp_repeats: int
    trace_budgets: tuple[int, ...]
    trace_seeds: int
    density_budget: int
    density_seeds: int
    reference: tuple[int, int]
    slq_default: tuple[int, int]


FULL = Config(
    samples=2000,
    repeats=3,
    hvp_repeats=15,
    trace_budgets=(30, 90),
    trace_seeds=3,
    density_budget=100,
    density_seeds=3,
    reference=(4, 200),
    slq_default=(10, 40),
)
QUICK = Config(
    samples=1000,
    repeats=2,
    hvp_repeats=5,
    trace_budgets=(30,),
    trace_seeds=2,
    density_budget=60,
    density_seeds=1,
    reference=(2, 120),
    slq_default=(10, 20),
)


# ------------------------------------------------------------------------------------------ problem
@dataclass(frozen=True)
class Problem:
    """The model, the fixed full batch and the run's sizes, shared by every section."""

    model: nn.Module
    x: Tensor
    y: Tensor
    config: Config


def make_model() -> nn.Sequential:
    """40 → 320 → 256 → 10 with ReLU: 97,866 parameters."""
    return nn.Sequential(nn.Linear(40, 320), nn.ReLU(), nn.Linear(320, 256), nn.ReLU(), nn.Linear(256, 10))


def make_problem(samples: int) -> tuple[nn.Sequential, Tensor, Tensor, str]:
    """The trained model and a fixed full batch ``(x, y)`` of ``samples`` training samples."""
    data = mnist1d(num_samples=5000, seed=0)
    torch.manual_seed(0)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(15):
        order = torch.randperm(len(data.y_train), generator=generator)
        for start in range(0, len(order), 128):
            index = order[start : start + 128]
            loss = cross_entropy(model(data.x_train[index]), data.y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        accuracy = float((model(data.x_test).argmax(1) == data.y_test).float().mean())
    x, y = data.x_train[:samples], data.y_train[:samples]
    with torch.no_grad():
        loss_value = float(cross_entropy(model(x), y))
    note = (
        f"{data.name}, 15 epochs of Adam (test accuracy {accuracy:.2f}, loss on the batch {loss_value:.3f})"
    )
    return model, x, y, note


def relative_error(values: Tensor, truth: Tensor) -> float:
    """max_i |λ̂_i − λ_i| / |λ_i| over the top eigenvalues, both sorted in descending order."""
    estimate = torch.sort(values.to(torch.float64), descending=True).values[: truth.shape[0]]
    if estimate.shape[0] < truth.shape[0]:
        return math.inf
    return float(((estimate - truth).abs() / truth.abs()).max())


# --------------------------------------------------------------------------------------- peer glue
def _pyhessian_module() -> Any:
    """The module ``pyhessian.hessian`` (``pyhessian.hessian.hessian`` is the class); imported when used."""
    return importlib.import_module("pyhessian.hessian")


@contextmanager
def pyhessian_counter() -> Iterator[list[int]]:
    """Count PyHessian's HVPs: with ``data=`` every product goes through ``hessian_vector_product``."""
    count = [0]
    module = _pyhessian_module()
    original = module.hessian_vector_product

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    module.hessian_vector_product = counted
    try:
        yield count
    finally:
        module.hessian_vector_product = original


@contextmanager
def torch_eig_for_pyhessian() -> Iterator[None]:
    """PyHessian 0.1's ``density()`` calls ``torch.eig``, removed in torch 2; lend it one built on ``eigh``.

    T is the symmetric tridiagonal Lanczos matrix, so ``eigh`` is exact; the shape of the result is the old
    API's: eigenvalues as (real, imaginary) columns, eigenvectors as columns.
    """
    original = getattr(torch, "eig", None)

    def eig(matrix: Tensor, eigenvectors: bool = False) -> tuple[Tensor, Tensor]:
        values, vectors = torch.linalg.eigh(matrix)
        return torch.stack([values, torch.zeros_like(values)], 1), vectors

    setattr(torch, "eig", eig)  # noqa: B010 (torch's own is a stub that raises)
    try:
        yield
    finally:
        if original is None:
            delattr(torch, "eig")
        else:
            setattr(torch, "eig", original)  # noqa: B010


def make_pyhessian(
    model: nn.Module, x: Tensor, y: Tensor, criterion: Callable[..., Tensor] | None = None
) -> Any:
    """PyHessian's ``hessian`` object (it runs one forward and ``backward(create_graph=True)``)."""
    import pyhessian

    model.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # its backward(create_graph=True) reference-cycle warning
        return pyhessian.hessian(model, criterion or nn.CrossEntropyLoss(), data=(x, y), cuda=False)


def release(model: nn.Module) -> None:
    """Drop the gradients PyHessian leaves behind (they hold a graph: a reference cycle)."""
    model.zero_grad(set_to_none=True)


class Counted:
    """A linear operator that counts and times the products of another (``shape``, ``dtype``, ``matmat``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.shape: tuple[int, int] = tuple(inner.shape)
        self.dtype: torch.dtype = inner.dtype
        self.device: torch.device = inner.device
        self.num_hvps = 0
        self.seconds = 0.0

    def matmat(self, V: Tensor) -> Tensor:
        start = time.perf_counter()
        result: Tensor = self.inner.matmat(V)
        self.seconds += time.perf_counter() - start
        self.num_hvps += V.shape[1]
        return result

    def matvec(self, v: Tensor) -> Tensor:
        return self.matmat(v[:, None])[:, 0]


def eigsh_top(operator: Any, *, tol: float, seed: int = 0) -> tuple[Tensor, int]:
    """SciPy's ARPACK ``eigsh`` (largest algebraic) on a ravine-style operator; eigenvalues and HVPs."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    counted = Counted(operator)
    n = counted.shape[0]
    dtype = np.float64 if counted.dtype == torch.float64 else np.float32

    def matvec(v: Any) -> Any:
        vector = torch.from_numpy(np.ascontiguousarray(v, dtype=dtype).reshape(-1))
        return counted.matvec(vector).detach().numpy()

    start = np.random.default_rng(seed).standard_normal(n).astype(dtype)
    values = eigsh(LinearOperator((n, n), matvec=matvec, dtype=dtype), k=TOP, which="LA", tol=tol, v0=start)[
        0
    ]
    return torch.sort(torch.as_tensor(values, dtype=torch.float64), descending=True).values, counted.num_hvps


# -------------------------------------------------------------------------------- SLQ measures
@dataclass
class Quadrature:
    """SLQ nodes and weights per probe (rows), NaN-free."""

    nodes: Tensor
    weights: Tensor

    @staticmethod
    def of(nodes: Any, weights: Any) -> Quadrature:
        x = torch.as_tensor(np.asarray(nodes, dtype=np.float64))
        w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        finite = torch.isfinite(x)
        return Quadrature(
            torch.where(finite, x, torch.zeros_like(x)), torch.where(finite, w, torch.zeros_like(w))
        )

    def share_below(self, threshold: float) -> float:
        return float((self.weights * (self.nodes < threshold)).sum(1).mean())

    def trace(self, n: int) -> float:
        return float(n * (self.weights * self.nodes).sum(1).mean())

    def abs_max(self) -> float:
        return float(self.nodes.abs().max())


def wasserstein1(a: Quadrature, b: Quadrature) -> float:
    """W1 distance between two spectral measures (each the mean over its probes of Σ_j w_j δ(θ_j))."""
    x = torch.cat([a.nodes.reshape(-1), b.nodes.reshape(-1)])
    w = torch.cat([a.weights.reshape(-1) / a.nodes.shape[0], -b.weights.reshape(-1) / b.nodes.shape[0]])
    order = torch.argsort(x)
    x, cdf_gap = x[order], torch.cumsum(w[order], 0)
    return float((cdf_gap[:-1].abs() * x.diff()).sum())


# ------------------------------------------------------------------------------------------ results
# -------------------------------------------------------------------------------------- 1. top-5
@dataclass
class EigenRun:
    values: Tensor
    hvps: int
    note: str = ""


def eigen_section(problem: Problem, targets: Targets) -> tuple[Section, Tensor]:
    model, x, y, config = problem.model, problem.x, problem.y, problem.config
    import hessian_eigenthings as he

    log("top-5 truth: eigsh (float64, tol 1e-10) on ravine's operator")
    H64 = HessianOperator(model, cross_entropy, (x, y), dtype=torch.float64)
    truth, truth_hvps = eigsh_top(H64, tol=1e-10)
    check = lanczos(H64, TOP, tol=1e-10, max_hvps=3000)
    agreement = relative_error(check.eigenvalues, truth)
    log(
        f"  truth {[round(float(v), 5) for v in truth]} ({truth_hvps} HVPs); ravine float64 lanczos {agreement:.1e}"
    )

    last: dict[str, EigenRun] = {}

    def ravine_run() -> EigenRun:
        H = HessianOperator(model, cross_entropy, (x, y))
        result = lanczos(H, TOP, tol=TARGET_ACCURACY)
        flagged = int(result.converged.sum())
        return EigenRun(
            result.eigenvalues, result.num_hvps, f"{flagged}/{TOP} certified: ‖Hx − θx‖ ≤ tol·θmax"
        )

    def ravine_uncached_run() -> EigenRun:
        result = lanczos(HessianOperator(model, cross_entropy, (x, y), cache=False), TOP, tol=TARGET_ACCURACY)
        return EigenRun(result.eigenvalues, result.num_hvps, "forward and backward recomputed per product")

    def eigsh_run() -> EigenRun:
        values, hvps = eigsh_top(HessianOperator(model, cross_entropy, (x, y)), tol=TARGET_ACCURACY)
        return EigenRun(values, hvps, "ARPACK, ncv=20")

    def pyhessian_run(tol: float, max_iter: int) -> EigenRun:
        with pyhessian_counter() as count:
            torch.manual_seed(0)
            hessian = make_pyhessian(model, x, y)
            values = hessian.eigenvalues(maxIter=max_iter, tol=tol, top_n=TOP)[0]
            release(model)
        return EigenRun(
            torch.tensor(values, dtype=torch.float64), count[0], f"tol={tol:g}, maxIter={max_iter}"
        )

    def eigenthings_run(steps: int | None) -> EigenRun:
        operator = he.HessianOperator(model, [(x, y)], he.supervised_loss(cross_entropy))
        count = [0]
        inner = operator.matvec

        def matvec(v: Tensor) -> Tensor:
            count[0] += 1
            result: Tensor = inner(v)
            return result

        operator.matvec = matvec
        result = he.lanczos(operator, k=TOP, which="LA", seed=0, max_iter=steps)
        flagged = int(result.converged.sum())
        reorth = (
            "reorthogonalised" if (steps or 2 * TOP) <= 50 else "no reorthogonalisation (default above 50)"
        )
        label = f"max_iter={steps}" if steps else "max_iter=2k (default)"
        return EigenRun(result.eigenvalues, count[0], f"{label}, {reorth}; {flagged}/{TOP} flagged converged")

    log("PyHessian power iteration: default tol, then a tol ladder until 1e-3 is reached")
    ladder_notes: list[str] = []
    pyhessian_default = pyhessian_run(1e-3, 100)
    default_error = relative_error(pyhessian_default.values, truth)
    ladder_notes.append(f"tol 1e-3 (default): {pyhessian_default.hvps} HVPs, error {default_error:.1e}")
    chosen_tol = 1e-7
    for tol in (1e-4, 1e-5, 1e-6, 1e-7):
        run = pyhessian_run(tol, 1000)
        error = relative_error(run.values, truth)
        ladder_notes.append(f"tol {tol:g}: {run.hvps} HVPs, error {error:.1e}")
        log(f"  PyHessian tol {tol:g}: {run.hvps} HVPs, error {error:.1e}")
        chosen_tol = tol
        if error <= TARGET_ACCURACY:
            break

    log("hessian-eigenthings Lanczos: default steps, then a ladder until 1e-3 is reached")
    chosen_steps = 100
    for steps in (15, 20, 25, 30, 40, 60, 80, 100):
        run = eigenthings_run(steps)
        error = relative_error(run.values, truth)
        ladder_notes.append(f"hessian-eigenthings max_iter {steps}: error {error:.1e}")
        log(f"  hessian-eigenthings max_iter {steps}: error {error:.1e}")
        chosen_steps = steps
        if error <= TARGET_ACCURACY:
            break

    contenders: dict[str, Callable[[], EigenRun]] = {
        "ravine `lanczos(H, 5, tol=1e-3)`": ravine_run,
        "SciPy `eigsh` on ravine's operator (tol=1e-3)": eigsh_run,
        f"PyHessian `eigenvalues(top_n=5, tol={chosen_tol:g})` (tuned to reach 1e-3)": lambda: pyhessian_run(
            chosen_tol, 1000
        ),
        "PyHessian `eigenvalues(top_n=5)` (default tol=1e-3)": lambda: pyhessian_run(1e-3, 100),
        f"hessian-eigenthings `lanczos(k=5, max_iter={chosen_steps})` (tuned)": lambda: eigenthings_run(
            chosen_steps
        ),
        "hessian-eigenthings `lanczos(k=5)` (default)": lambda: eigenthings_run(None),
        "ravine `lanczos` on `HessianOperator(cache=False)`": ravine_uncached_run,
    }

    def recorder(name: str, run: Callable[[], EigenRun]) -> Callable[[], object]:
        def call() -> object:
            last[name] = run()
            return None

        return call

    ravine_run(), ravine_uncached_run(), eigsh_run()  # warm-up: torch.func's first calls
    log(f"timing the top-5 contenders, {config.repeats} interleaved repeats")
    medians = interleaved_medians(
        {name: recorder(name, run) for name, run in contenders.items()}, repeats=config.repeats, warmup=0
    )
    ravine_name = next(iter(contenders))
    tuned_name = list(contenders)[2]
    section = Section(
        f"Top-{TOP} eigenvalues to {TARGET_ACCURACY:g} relative accuracy",
        [
            "method",
            "HVPs",
            "max rel. error",
            f"reached {TARGET_ACCURACY:g}",
            "wall time",
            "time / ravine",
            "notes",
        ],
        left=(0, 6),
    )
    base = medians[ravine_name]
    for name, run in last.items():
        error = relative_error(run.values, truth)
        section.rows.append(
            [
                name,
                str(run.hvps),
                f"{error:.1e}",
                "yes" if error <= TARGET_ACCURACY else "**no**",
                fmt_time(medians[name]),
                f"{medians[name] / base:.2f}×",
                run.note,
            ]
        )
    ours, theirs = last[ravine_name], last[tuned_name]
    hvp_ratio = theirs.hvps / ours.hvps
    time_ratio = medians[tuned_name] / medians[ravine_name]
    section.notes += [
        f"Truth: `eigsh` in float64 on ravine's operator, tol 1e-10 ({truth_hvps} HVPs): "
        + ", ".join(f"{float(v):.5f}" for v in truth)
        + f"; ravine's float64 `lanczos(tol=1e-10)` agrees to {agreement:.1e}.",
        "Tuning used the truth (an oracle a user does not have): PyHessian ladder "
        + "; ".join(ladder_notes)
        + ".",
        "Wall time includes building each tool's operator (PyHessian's constructor runs a forward and a "
        "backward with `create_graph=True`); median of interleaved repeats.",
        "PyHessian puts the model in eval mode (no effect here: no BatchNorm or dropout).",
    ]
    shares = []
    for _ in range(3):
        counted = Counted(HessianOperator(model, cross_entropy, (x, y)))
        start = time.perf_counter()
        lanczos(counted, TOP, tol=TARGET_ACCURACY)
        total = time.perf_counter() - start
        shares.append((total - counted.seconds) / total)
    section.notes.append(
        f"Of ravine's `lanczos` wall time, {100 * statistics.median(shares):.0f}% (median of 3 runs) is spent "
        "outside the HVPs (preallocated basis, T = Qᵀ(HQ) updated by a row and a column per step, residuals "
        "estimated from T and computed from the basis only to certify; before: 18%)."
    )
    H = HessianOperator(model, cross_entropy, (x, y))
    early = []
    for budget in range(ours.hvps - 6, ours.hvps, 2):
        stopped = lanczos(H, TOP, tol=TARGET_ACCURACY, max_hvps=budget)
        early.append(f"{budget} HVPs → {relative_error(stopped.eigenvalues, truth):.0e}")
    section.notes.append(
        f"ravine stops on residuals (‖Hx − θx‖ ≤ tol·θmax), which bound the eigenvalue error only linearly; "
        f"the error after fewer products was: {', '.join(early)}."
    )
    ravine_error = relative_error(ours.values, truth)
    targets.add(
        f"top-{TOP} to {TARGET_ACCURACY:g}",
        f"ravine error {ravine_error:.1e} with {ours.hvps} HVPs",
        ravine_error <= TARGET_ACCURACY,
    )
    targets.add(
        "≥ 5× fewer HVPs than PyHessian (tuned to reach 1e-3)",
        f"{theirs.hvps} / {ours.hvps} = {hvp_ratio:.1f}×",
        hvp_ratio >= 5,
    )
    targets.add(
        "≥ 3× faster than PyHessian (tuned to reach 1e-3)",
        f"{fmt_time(medians[tuned_name])} / {fmt_time(medians[ravine_name])} = {time_ratio:.1f}×",
        time_ratio >= 3,
    )
    return section, truth


# --------------------------------------------------------------------------------- 2. HVP vs grad
def hvp_section(problem: Problem, targets: Targets) -> Section:
    model, x, y, config = problem.model, problem.x, problem.y, problem.config
    import hessian_eigenthings as he
    from curvlinops import HessianLinearOperator

    log(f"HVP vs gradient, {config.hvp_repeats} interleaved repeats")
    H = HessianOperator(model, cross_entropy, (x, y))
    n = H.shape[0]
    generator = torch.Generator().manual_seed(1)
    v = torch.randn(n, generator=generator)
    block = torch.randn(n, 16, generator=generator)
    plain = HessianOperator(model, cross_entropy, (x, y), cache=False)
    reference = plain.matvec(v)
    cached_error = float((H.matvec(v) - reference).abs().max() / reference.abs().max())
    pyh = make_pyhessian(model, x, y)
    pyh_v = [
        piece.reshape(p.shape)
        for piece, p in zip(torch.split(v, [p.numel() for p in pyh.params]), pyh.params, strict=True)
    ]
    eigenthings = he.HessianOperator(model, [(x, y)], he.supervised_loss(cross_entropy))
    curvlinops = HessianLinearOperator(
        model, nn.CrossEntropyLoss(), list(model.parameters()), [(x, y)], check_deterministic=False
    )

    def plain_gradient() -> None:
        model.zero_grad(set_to_none=True)
        cross_entropy(model(x), y).backward()

    rebuilt = HessianOperator(model, cross_entropy, (x, y))

    def rebuilt_cache() -> None:
        rebuilt.clear_cache()
        rebuilt.matvec(v)

    per_block = {"ravine `H @ V`, per vector (block of 16)", "ravine `cache=False`, per vector (block of 16)"}
    contenders: dict[str, Callable[[], object]] = {
        "plain gradient (`loss.backward()`)": plain_gradient,
        "ravine `H.gradient()`": H.gradient,
        "ravine `H @ v` (one vector)": lambda: H.matvec(v),
        "ravine `H @ V`, per vector (block of 16)": lambda: H.matmat(block),
        "PyHessian HVP (reuses the graph of ∇L kept by its constructor)": lambda: (
            _pyhessian_module().hessian_vector_product(pyh.gradsH, pyh.params, pyh_v)
        ),
        "hessian-eigenthings `matvec` (autograd double backward)": lambda: eigenthings.matvec(v),
        "curvlinops `H @ v` (jvp of jacrev)": lambda: curvlinops @ v,
        "ravine `cache=False` `H @ v` (one vector)": lambda: plain.matvec(v),
        "ravine `cache=False`, per vector (block of 16)": lambda: plain.matmat(block),
        "ravine first product after a parameter update (builds the cache, then applies it)": rebuilt_cache,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        medians = interleaved_medians(contenders, repeats=config.hvp_repeats, warmup=2)
    release(model)
    for name in per_block:
        medians[name] /= 16
    base = medians["plain gradient (`loss.backward()`)"]
    section = Section(
        "One HVP's time over one gradient's",
        ["operation", "time", "× plain gradient"],
        [[name, fmt_time(seconds), f"{seconds / base:.2f}×"] for name, seconds in medians.items()],
    )
    section.notes += [
        f"Full batch of {x.shape[0]} samples, float32; median of {config.hvp_repeats} interleaved repeats.",
        "ravine's `H @ v` (default `cache=\"auto\"`) is one backward through each batch's cached pullback of "
        "∇L (`torch.func.vjp` of `grad`), rebuilt when the parameters change; with `cache=False` it "
        "recomputes the forward and backward for every product (forward-over-reverse), as curvlinops does; "
        "hessian-eigenthings recomputes them too (reverse-over-reverse); PyHessian's product is only the "
        "second backward through a graph its constructor kept, valid until the weights change.",
        f"The cached product matches `cache=False` to {cached_error:.1e} (relative, max-norm, float32); "
        f"estimated cache memory {H.cache_bytes / 2**20:.0f} MiB.",
    ]
    ratio = medians["ravine `H @ v` (one vector)"] / base
    block_ratio = medians["ravine `H @ V`, per vector (block of 16)"] / base
    uncached_ratio = medians["ravine `cache=False` `H @ v` (one vector)"] / base
    targets.add(
        "one HVP ≤ 3× one gradient",
        f"ravine {ratio:.2f}× (one vector), {block_ratio:.2f}× (per vector in a block of 16); "
        f"`cache=False` {uncached_ratio:.2f}×",
        ratio <= 3,
    )
    return section


# --------------------------------------------------------------------------------------- 3. trace
def exact_trace(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, str]:
    """tr H from BackPACK's exact Hessian diagonal (float64), checked on a few coordinates against ravine."""
    try:
        from backpack import backpack, extend
        from backpack.extensions import DiagHessian
    except ImportError:
        H = HessianOperator(model, cross_entropy, (x, y), dtype=torch.float64)
        estimate = hutchpp(H, num_hvps=600, seed=12345)
        return (
            estimate.estimate,
            f"BackPACK missing: reference is Hutch++ with 600 HVPs (±{estimate.stderr:.2f})",
        )
    twin = extend(copy.deepcopy(model).double())
    loss = extend(nn.CrossEntropyLoss())(twin(x.double()), y)
    with backpack(DiagHessian()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loss.backward()
    diagonal = torch.cat([p.diag_h.reshape(-1) for p in twin.parameters()])
    H = HessianOperator(model, cross_entropy, (x, y), dtype=torch.float64)
    n = H.shape[0]
    coordinates = torch.tensor([0, n // 7, n // 2, n - 2571, n - 1])
    E = torch.zeros(n, len(coordinates), dtype=torch.float64)
    E[coordinates, torch.arange(len(coordinates))] = 1.0
    entries = H.matmat(E)[coordinates, torch.arange(len(coordinates))]
    gap = float((entries - diagonal[coordinates]).abs().max() / diagonal[coordinates].abs().max())
    return float(
        diagonal.sum()
    ), f"sum of BackPACK's exact Hessian diagonal (float64; matches ravine's H_ii to {gap:.0e})"


def _rms(items: list[tuple[float, float, float, int]]) -> str:
    return f"{100 * math.sqrt(statistics.fmean(e * e for e, _, _, _ in items)):.1f}%"


def _median_time(items: list[tuple[float, float, float, int]]) -> float:
    return statistics.median(t for _, _, t, _ in items)


def trace_section(problem: Problem, truth_trace: float, how: str, targets: Targets) -> Section:
    model, x, y, config = problem.model, problem.x, problem.y, problem.config
    log(f"trace: exact {truth_trace:.4f}; budgets {config.trace_budgets} × {config.trace_seeds} seeds")
    H = HessianOperator(model, cross_entropy, (x, y))
    section = Section(
        "Trace at equal HVP budgets",
        ["method", "HVPs", "RMS rel. error", "reported ± (mean)", "time (median)", "time / PyHessian"],
    )

    def pyhessian_trace(seed: int, **kwargs: Any) -> tuple[float, float, int]:
        with pyhessian_counter() as count:
            torch.manual_seed(seed)
            samples = make_pyhessian(model, x, y).trace(**kwargs)
            release(model)
        return float(np.mean(samples)), math.nan, count[0]

    def ravine_trace(
        estimator: Callable[..., Any], operator: Any, budget: int, seed: int
    ) -> tuple[float, float, int]:
        result = estimator(operator, num_hvps=budget, seed=seed)
        return float(result.estimate), float(result.stderr), int(result.num_hvps)

    plain = HessianOperator(model, cross_entropy, (x, y), cache=False)

    for budget in config.trace_budgets:
        methods: dict[str, Callable[[int], tuple[float, float, int]]] = {
            "ravine `hutchinson`": partial(ravine_trace, hutchinson, H, budget),
            "ravine `hutchpp`": partial(ravine_trace, hutchpp, H, budget),
            "ravine `hutchinson` with `cache=False`": partial(ravine_trace, hutchinson, plain, budget),
            f"PyHessian `trace(maxIter={budget}, tol=0)`": partial(pyhessian_trace, maxIter=budget, tol=0.0),
        }
        if budget == config.trace_budgets[0]:
            methods["PyHessian `trace()` (default: stops when the mean moves < 0.1%)"] = pyhessian_trace
        tally: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name in methods}
        for seed in range(config.trace_seeds):
            for name, method in methods.items():  # interleaved: every method once per seed
                start = time.perf_counter()
                estimate, stderr, used = method(seed)
                seconds = time.perf_counter() - start
                tally[name].append(
                    ((estimate - truth_trace) / truth_trace, stderr / truth_trace, seconds, used)
                )
            log(f"  budget {budget}, seed {seed}: done")
        pyh_name = f"PyHessian `trace(maxIter={budget}, tol=0)`"
        pyh_time = statistics.median(t for _, _, t, _ in tally[pyh_name])

        targets.add(
            f"trace vs PyHessian at {budget} HVPs",
            f"RMS error ravine Hutchinson {_rms(tally['ravine `hutchinson`'])}, Hutch++ "
            f"{_rms(tally['ravine `hutchpp`'])}, PyHessian {_rms(tally[pyh_name])} ({config.trace_seeds} seeds); "
            f"time ravine Hutchinson {_median_time(tally['ravine `hutchinson`']) / pyh_time:.2f}× PyHessian's",
            None,
        )
        for name, items in tally.items():
            rms = math.sqrt(statistics.fmean(e * e for e, _, _, _ in items))
            reported = statistics.fmean(r for _, r, _, _ in items)
            seconds = statistics.median(t for _, _, t, _ in items)
            section.rows.append(
                [
                    name,
                    "/".join(str(u) for u in sorted({u for _, _, _, u in items})),
                    f"{100 * rms:.1f}%",
                    "—" if math.isnan(reported) else f"{100 * reported:.1f}%",
                    fmt_time(seconds),
                    f"{seconds / pyh_time:.2f}×",
                ]
            )
    section.notes += [
        f"Exact trace {truth_trace:.4f}: {how}.",
        f"Errors over {config.trace_seeds} seeds per method (the seed sets the probes); Rademacher probes "
        "everywhere. ravine's Hutch++ spends a third of the budget on a sketch, a third on its exact trace.",
        "Time / PyHessian is against PyHessian at the same budget; ravine multiplies its probes in blocks "
        "(`matmat`: one backward per probe through the cached pullback; vmap of forward-over-reverse with "
        "`cache=False`), PyHessian one at a time through its kept graph.",
    ]
    return section


# -------------------------------------------------------------------------------------- 4. density
def density_section(problem: Problem, truth_trace: float, targets: Targets) -> Section:
    model, x, y, config = problem.model, problem.x, problem.y, problem.config
    probes, steps = config.reference
    log(f"density reference: SLQ {probes} probes × {steps} steps (ravine's spectral_density)")
    H = HessianOperator(model, cross_entropy, (x, y))
    dense_reference = spectral_density(H, num_probes=probes, num_steps=steps, seed=1000)
    reference = Quadrature.of(dense_reference.nodes, dense_reference.weights)
    n = H.shape[0]
    scale = reference.abs_max()
    width = float(reference.nodes.max() - reference.nodes.min())
    half = probes // 2
    floor = (
        wasserstein1(
            Quadrature(reference.nodes[:half], reference.weights[:half]),
            Quadrature(reference.nodes[half:], reference.weights[half:]),
        )
        if half
        else math.nan
    )
    ref_neg3 = reference.share_below(-1e-3 * scale)
    ref_neg6 = reference.share_below(-1e-6 * scale)
    ref_flat3 = 1.0 - ref_neg3 - float((reference.weights * (reference.nodes > 1e-3 * scale)).sum(1).mean())
    plain = HessianOperator(model, cross_entropy, (x, y), cache=False)
    budget = config.density_budget
    quarter = max(budget // 4, 1)
    runs: dict[str, list[tuple[Quadrature, float, str]]] = {}
    for seed in range(config.density_seeds):
        with pyhessian_counter() as count, torch_eig_for_pyhessian():
            start = time.perf_counter()
            torch.manual_seed(seed)
            nodes, weights = make_pyhessian(model, x, y).density(iter=budget, n_v=1)
            seconds = time.perf_counter() - start
            release(model)
        runs.setdefault(f"PyHessian `density(iter={budget}, n_v=1)`", []).append(
            (Quadrature.of(nodes, weights), seconds, f"{count[0]} HVPs")
        )
        contenders = [
            (f"ravine `spectral_density(num_probes=1, num_steps={budget})`", H, 1, budget),
            (f"ravine `spectral_density(num_probes=4, num_steps={quarter})`", H, 4, quarter),
            (f"ravine `spectral_density(num_probes=1, num_steps={budget})`, `cache=False`", plain, 1, budget),
        ]
        for name, operator, P, m in contenders:
            start = time.perf_counter()
            result = spectral_density(operator, num_probes=P, num_steps=m, seed=seed)
            seconds = time.perf_counter() - start
            bound = getattr(result, "negative_bound", None)
            own = f"{result.negative_share:.3f} ± {result.negative_stderr:.3f}" + (
                f" (bound {bound:.3f})" if isinstance(bound, float) else ""
            )
            runs.setdefault(name, []).append((Quadrature.of(result.nodes, result.weights), seconds, own))
        log(f"  density seed {seed}: done")
    section = Section(
        f"Spectral density at an equal budget of {budget} HVPs",
        [
            "method",
            "W1 / width",
            f"neg. share, λ < −10⁻³·λmax (ref {ref_neg3:.4f})",
            f"neg. share, λ < −10⁻⁶·λmax (ref {ref_neg6:.3f})",
            "ravine's own: share ± stderr (bound), eps=1e-6",
            "trace rel. error",
            "time",
            "time / PyHessian",
        ],
        left=(0, 4),
    )
    pyh_time = statistics.median(s for _, s, _ in next(iter(runs.values())))
    for name, items in runs.items():
        w1 = statistics.fmean(wasserstein1(q, reference) / width for q, _, _ in items)
        neg3 = [q.share_below(-1e-3 * q.abs_max()) for q, _, _ in items]
        neg6 = [q.share_below(-1e-6 * q.abs_max()) for q, _, _ in items]
        trace_error = statistics.fmean(abs(q.trace(n) - truth_trace) / truth_trace for q, _, _ in items)
        seconds = statistics.median(s for _, s, _ in items)
        own = "—" if name.startswith("PyHessian") else "; ".join(o for _, _, o in items)
        section.rows.append(
            [
                name,
                f"{w1:.1e}",
                ", ".join(f"{v:.4f}" for v in neg3),
                ", ".join(f"{v:.3f}" for v in neg6),
                own,
                f"{100 * trace_error:.1f}%",
                fmt_time(seconds),
                f"{seconds / pyh_time:.2f}×",
            ]
        )
    names = list(runs)
    same = max(
        float((a.nodes - b.nodes).abs().max())
        for (a, _, _), (b, _, _) in zip(runs[names[0]], runs[names[1]], strict=True)
    )
    section.notes.append(
        "For the same seed PyHessian's probe and ravine's one probe are the same Rademacher vector (both draw "
        f"from torch's CPU generator in the same order): max |Δ node| between the two is {same:.0e}, so those "
        "two rows are one computation (up to float32 rounding of the products) and differ only in time."
    )

    def w1_of(name: str) -> float:
        return statistics.fmean(wasserstein1(q, reference) / width for q, _, _ in runs[name])

    def time_of(name: str) -> float:
        return statistics.median(s for _, s, _ in runs[name]) / pyh_time

    targets.add(
        f"density vs PyHessian at {budget} HVPs",
        f"W1/width PyHessian {w1_of(names[0]):.1e}, ravine 1×{budget} {w1_of(names[1]):.1e}, ravine "
        f"4×{quarter} {w1_of(names[2]):.1e}; time ravine 1×{budget} {time_of(names[1]):.2f}× PyHessian's "
        f"(`cache=False` {time_of(names[3]):.2f}×)",
        None,
    )
    section.notes += [
        f"Reference: SLQ with {probes} probes × {steps} steps (seed 1000, float64 recurrence, full "
        f"reorthogonalisation); spectrum width {width:.3f}, λmax ≈ {scale:.3f}; W1 between its two halves of "
        f"probes {floor / width:.1e} of the width (its own noise floor). Trace errors are against the exact trace.",
        f"Values per seed ({config.density_seeds} seeds). W1 is the Wasserstein-1 distance of the spectral measures "
        "(mean over probes of Σ w_j δ(θ_j)) divided by the width: it does not depend on a kernel width or on "
        "where a threshold cuts.",
        f"{100 * ref_flat3:.0f}% of the reference's spectral mass lies within ±10⁻³·λmax of zero. How a short "
        "Lanczos run splits that cluster decides the negative share at eps=10⁻⁶ (ravine's default threshold): "
        "compare each run's value with the reference's. The across-probe standard error does not see this "
        "error (all probes share the quadrature's bias); ravine's quadrature bound does.",
        "PyHessian 0.1's `density()` calls `torch.eig`, removed from torch; the benchmark lends it an "
        "`eigh`-based stand-in for the call (exact for its symmetric tridiagonal T).",
    ]
    return section


# ------------------------------------------------------------------------------------ 5. SLQ layout
def slq_layout_section(problem: Problem) -> Section:
    model, x, y, config = problem.model, problem.x, problem.y, problem.config
    probes, steps = config.slq_default
    log(f"SLQ at ravine's default size: {probes} probes × {steps} steps")
    timed = Counted(HessianOperator(model, cross_entropy, (x, y)))
    medians = interleaved_medians(
        {"ravine": lambda: spectral_density(timed, num_probes=probes, num_steps=steps, seed=0)},
        repeats=1,
        warmup=0,
    )
    section = Section(
        f"SLQ at ravine's default size ({probes} probes × {steps} steps): where the time goes",
        ["implementation", "total", "in HVPs", "outside HVPs (reorthogonalisation, bookkeeping)"],
    )
    total = medians["ravine"]
    section.rows.append(
        [
            "ravine `spectral_density` (probe-major basis, bmm; cached HVPs)",
            fmt_time(total),
            fmt_time(timed.seconds),
            fmt_time(total - timed.seconds),
        ]
    )
    section.notes.append(
        "Before these changes (basis stored (steps, n, probes), einsum; HVPs recomputed per product) the same "
        "call took 53.38 s, of which 20.58 s in HVPs and 32.80 s outside, in an earlier run on this machine."
    )
    return section


# ------------------------------------------------------------------------------------------- main
def problem_line(config: Config, threads: int, note: str, n: int, samples: int) -> str:
    """The machine's conditions, the peers' versions and the problem, for the section's header."""
    from importlib.metadata import PackageNotFoundError, version

    names = ("pyhessian", "hessian-eigenthings", "curvlinops-for-pytorch", "backpack-for-pytorch", "scipy")
    versions = []
    for name in names:
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} not installed")
    return (
        f"{conditions(threads)}; {', '.join(versions)}. Model: MLP 40-320-256-10 (ReLU), {n:,} parameters; "
        f"{note}. Hessian of the mean cross-entropy over a fixed full batch of {samples} training samples, "
        "float32." + (" Quick run (`--quick`)." if config is QUICK else "")
    )


# ------------------------------------------------------------------------ GPT-2-shaped section
GPT2_TOLS = (1e-3, 1e-6, 1e-8, 1e-10)
GPT2_REPEATS = 3


def tiny_gpt2(dtype: torch.dtype) -> tuple[nn.Module, dict[str, Tensor]]:
    """A tiny random GPT-2 (2 layers, width 32, vocabulary 200: 33,920 parameters) and 8 sequences of 32 tokens."""
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=200, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model: nn.Module = transformers.GPT2LMHeadModel(config)
    model = model.to(dtype)
    ids = torch.randint(0, 200, (8, 32), generator=torch.Generator().manual_seed(1))
    return model, {"input_ids": ids, "labels": ids}


def gpt2_section(targets: Targets) -> Section:
    """Lanczos top-5 against SciPy's eigsh on the same (cached, float64) operator of a tiny GPT-2."""
    model, batch = tiny_gpt2(torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GPT-2's loss is float32 inside (ravine warns about it once)
        H = HessianOperator(model, data=batch, dtype=torch.float64)
        H.loss()
    n = H.shape[0]
    section = Section(
        f"Tiny GPT-2 (n = {n:,}, float64, cached): ravine's Lanczos vs SciPy eigsh, top-{TOP}",
        ["tol", "ravine HVPs", "eigsh HVPs", "ravine time", "eigsh time", "ravine/eigsh time",
         "ravine outside HVPs", "eigsh outside HVPs", "max |Δλ|/λ₁"],
    )  # fmt: skip
    for tol in GPT2_TOLS:
        runs: dict[str, list[tuple[float, float]]] = {"ravine": [], "eigsh": []}  # (wall, share outside)
        for _ in range(GPT2_REPEATS):  # interleaved: load hits both alike
            ours = Counted(H)
            start = time.perf_counter()
            result = lanczos(ours, TOP, tol=tol, max_hvps=3000)
            elapsed = time.perf_counter() - start
            runs["ravine"].append((elapsed, 1 - ours.seconds / elapsed))
            theirs = Counted(H)
            start = time.perf_counter()
            values, _ = eigsh_top(theirs, tol=tol)
            elapsed = time.perf_counter() - start
            runs["eigsh"].append((elapsed, 1 - theirs.seconds / elapsed))
        ours_time, theirs_time = (statistics.median(t for t, _ in runs[name]) for name in ("ravine", "eigsh"))
        ours_out, theirs_out = (statistics.median(o for _, o in runs[name]) for name in ("ravine", "eigsh"))
        gap = float((result.eigenvalues - values).abs().max() / values[0].abs())
        section.rows.append([
            f"{tol:g}", f"{ours.num_hvps}{'' if result.all_converged else ' (not converged)'}",
            str(theirs.num_hvps), fmt_time(ours_time), fmt_time(theirs_time), f"{ours_time / theirs_time:.2f}×",
            f"{ours_out:.1%}", f"{theirs_out:.1%}", f"{gap:.1e}",
        ])  # fmt: skip
        targets.add(
            f"GPT-2 tol {tol:g}: HVPs ≤ eigsh's, time ≤ 1.0× eigsh's, ≤ 10% outside the HVPs",
            f"{ours.num_hvps} vs {theirs.num_hvps} HVPs; {ours_time / theirs_time:.2f}× its time; {ours_out:.1%}",
            ours.num_hvps <= theirs.num_hvps and ours_time <= theirs_time and ours_out <= 0.10,
        )  # fmt: skip
    section.notes.append(
        f"Medians of {GPT2_REPEATS} interleaved runs (ravine, eigsh, ravine, ...); the time outside the HVPs is each "
        "run's wall time minus the time inside the operator's products, median share."
    )
    return section


def gpt2_main(threads: int, markdown: Path | None) -> None:
    torch.set_num_threads(threads)
    from benchmarks._gpt2_shaped import peers_section

    targets = Targets()
    section = gpt2_section(targets)
    peers = peers_section(targets, repeats=3)
    target_table = Section("Targets (GPT-2 section)", ["target", "measured", "met"], left=(0, 1, 2))
    target_table.rows = [[t, m, "yes" if ok else "**no**"] for t, m, ok in targets.lines]
    elapsed = time.perf_counter() - _START
    header = (
        f"`.venv/bin/python -m benchmarks.curvature --gpt2`, {elapsed / 60:.1f} min. {conditions(threads)}\n"
    )
    emit(
        "\n".join(
            [
                "## Curvature on a tiny GPT-2\n",
                header,
                target_table.markdown(),
                section.markdown(),
                peers.markdown(),
            ]
        ),
        markdown,
    )


# ------------------------------------------------------------------ memory of one HVP vs a gradient
def memory_main(markdown: Path | None, *, budget_only: bool = False) -> None:
    """The 3 sizes × 3 batches of ``benchmarks/_gpt2_shaped.py``, measured in a fresh process (``--memory-rows``),
    then the cache's budget (``benchmarks/_cache_budget.py``); ``budget_only``: the latter alone."""
    import json
    import subprocess

    from benchmarks._cache_budget import budget_rows, budget_section
    from benchmarks._gpt2_shaped import scaling_section

    targets = Targets()
    sections = []
    if not budget_only:
        log("GPT-2-shaped time and memory: 3 sizes × 3 batches × (gradient, cached HVP, uncached HVP)")
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.curvature", "--memory-rows"],
            capture_output=True,
            text=True,
            check=True,
        )
        sections.append(scaling_section(json.loads(out.stdout.strip().splitlines()[-1]), targets))
    log("the cache's budget: a GPT-2-shaped model with 4 batches at budgets around the estimate; the MLP")
    sections.append(budget_section(budget_rows(), targets))
    target_table = Section("Targets (memory)", ["target", "measured", "met"], left=(0, 1, 2))
    target_table.rows = [[t, m, "yes" if ok else "**no**"] for t, m, ok in targets.lines]
    elapsed = time.perf_counter() - _START
    flag = "--budget" if budget_only else "--memory"
    header = f"`.venv/bin/python -m benchmarks.curvature {flag}`, {elapsed / 60:.1f} min. {conditions(1)}\n"
    emit(
        "\n".join(["## Curvature time and memory on GPT-2-shaped models\n", header, target_table.markdown(),
                   *(section.markdown() for section in sections)]),
        markdown,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller run (about a minute)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the markdown section here")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine a second OpenMP thread waits on a busy core)",
    )
    parser.add_argument(
        "--gpt2",
        action="store_true",
        help="only the tiny GPT-2 sections (Lanczos vs eigsh; top-5 vs the peers)",
    )
    parser.add_argument(
        "--memory", action="store_true", help="only the HVP/gradient time and memory on GPT-2-shaped models"
    )
    parser.add_argument("--memory-rows", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--budget", action="store_true", help="only the cache's memory budget (part of --memory)"
    )
    parser.add_argument("--budget-row", nargs=3, metavar=("KIND", "BUDGET", "CACHE"), help=argparse.SUPPRESS)
    parser.add_argument("--all", action="store_true", help="the MLP sections, then --gpt2, then --memory")
    args = parser.parse_args(argv)
    if args.memory_rows:
        import json

        from benchmarks._gpt2_shaped import scaling_rows

        print(json.dumps(scaling_rows()))
        return
    if args.budget_row:
        import json

        from benchmarks._cache_budget import one_row

        kind, budget, setting = args.budget_row
        print(json.dumps(one_row(kind, int(budget), setting)))
        return
    if args.memory or args.budget:
        memory_main(args.markdown, budget_only=args.budget)
        return
    if args.gpt2:
        gpt2_main(args.threads, args.markdown)
        return
    config = QUICK if args.quick else FULL
    torch.set_num_threads(args.threads)
    log(f"{'quick' if args.quick else 'full'} run, {args.threads} thread(s): training the model")
    model, x, y, note = make_problem(config.samples)
    n = sum(p.numel() for p in model.parameters())
    header = problem_line(config, args.threads, note, n, config.samples)
    targets = Targets()
    problem = Problem(model, x, y, config)
    eigen, _ = eigen_section(problem, targets)
    hvp = hvp_section(problem, targets)
    truth_trace, how = exact_trace(model, x, y)
    trace = trace_section(problem, truth_trace, how, targets)
    density = density_section(problem, truth_trace, targets)
    layout = slq_layout_section(problem)
    target_table = Section("Targets", ["target", "measured", "met"], left=(0, 1, 2))
    target_table.rows = [
        [t, m, "— (reported)" if ok is None else "yes" if ok else "**no**"] for t, m, ok in targets.lines
    ]
    elapsed = time.perf_counter() - _START
    command = "`.venv/bin/python -m benchmarks.curvature" + (" --quick" if args.quick else "") + "`"
    parts = [
        "## Curvature: ravine vs PyHessian, hessian-eigenthings, curvlinops, SciPy\n",
        f"{command}, {elapsed / 60:.1f} min. {header}\n",
        target_table.markdown(),
        eigen.markdown(),
        hvp.markdown(),
        trace.markdown(),
        density.markdown(),
        layout.markdown(),
    ]
    text = "\n".join(parts)
    emit(text, args.markdown)
    if args.all:
        gpt2_main(args.threads, args.markdown and args.markdown.with_suffix(".gpt2.md"))
        memory_main(args.markdown and args.markdown.with_suffix(".memory.md"))


if __name__ == "__main__":
    main(sys.argv[1:])
