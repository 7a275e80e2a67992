"""Imports run one way: errors → optim / curvature / data → surfaces / diagnose → experiments → report → tour → cli.

Every module under src/ravine is parsed with ``ast`` (nothing is imported), and each ``import`` or ``from ... import``
— at the top, inside functions, or under ``TYPE_CHECKING`` — is checked against the rules below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ravine"

LOWER = ("optim", "curvature", "surfaces", "diagnose", "experiments", "data")
"""Parts that compute; none of them may import what renders or runs them."""
UPPER = ("report", "tour", "cli", "commands")
"""What renders and runs: nothing in :data:`LOWER` may import these."""
CORE = ("optim", "curvature")
"""The engines, which may import only these modules of ravine."""
CORE_MAY_IMPORT = ("errors", "_validate", "_rng")


def module_name(path: Path) -> str:
    """``src/ravine/optim/_presets.py`` → ``ravine.optim._presets`` (a package's ``__init__`` → the package)."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every ravine module ``source`` (the text of ``module``) imports, relative imports resolved.

    ``from ravine.x import y`` counts as importing ``ravine.x`` and, when ``y`` is a submodule, ``ravine.x.y``;
    both are returned, so that ``from ravine import report`` is caught.
    """
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            names.add(origin)
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "ravine" or name.startswith("ravine.")}


def part_of(name: str) -> str:
    """``ravine.optim._presets`` → ``optim``; ``ravine`` → ``""``."""
    return name.split(".")[1] if name.count(".") >= 1 else ""


def violations(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """The rules ``module`` breaks, one line each (empty when it keeps them all)."""
    own = part_of(module)
    found = []
    for name in sorted(imported(source, module, is_package=is_package)):
        target = part_of(name)
        if own in LOWER and target in UPPER:
            found.append(f"{module} imports {name}: {own} must not import {target}")
        if own in CORE and target not in (own, *CORE_MAY_IMPORT) and name != "ravine":
            found.append(f"{module} imports {name}: {own} may import only {CORE_MAY_IMPORT} from ravine")
        if own in CORE and name == "ravine":
            found.append(
                f"{module} imports the ravine package itself: {own} may import only {CORE_MAY_IMPORT}"
            )
    return found


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_module_is_parsed() -> None:
    names = {module_name(path) for path in _modules()}
    assert {
        "ravine.optim",
        "ravine.curvature",
        "ravine.cli",
        "ravine.report.tour",
        "ravine.tour.chapters",
    } <= names
    assert not (SRC / "commands").exists() and not (SRC / "cli.py").exists()


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(SRC)))
def test_imports_run_one_way(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert violations(source, module_name(path), is_package=path.name == "__init__.py") == []


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("ravine.experiments.momentum", "from ravine.report import experiments\n", "must not import report"),
        ("ravine.experiments", "def f():\n    import ravine.report.experiments\n", "must not import report"),
        ("ravine.surfaces.stories", "from ravine import tour\n", "must not import tour"),
        (
            "ravine.diagnose._monitor",
            "if TYPE_CHECKING:\n    from ravine.cli import app\n",
            "must not import cli",
        ),
        ("ravine.data._datasets", "from ravine.commands.optim import x\n", "must not import commands"),
        ("ravine.optim._presets", "from ravine.diagnose import Monitor\n", "may import only"),
        ("ravine.curvature._base", "from ..surfaces import Surface\n", "may import only"),
        ("ravine.curvature._base", "import ravine\n", "may import only"),
    ],
)
def test_a_forbidden_import_is_caught(module: str, source: str, rule: str) -> None:
    found = violations(source, module)
    assert found and all(rule in line for line in found), found


def test_allowed_imports_pass() -> None:
    assert (
        violations(
            "from ravine.errors import ConfigError\nfrom ravine._validate import x\n", "ravine.optim._a"
        )
        == []
    )
    assert (
        violations("from . import _transforms\nfrom ._schedules import Constant\n", "ravine.optim._presets")
        == []
    )
    assert violations("from ravine.report import save_figure\n", "ravine.tour.chapters.lab") == []
    assert violations("from ravine.experiments import REGISTRY\n", "ravine.report.experiments") == []
