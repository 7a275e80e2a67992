#!/usr/bin/env bash
# ravine's single entry point. On first use it builds .venv (reusing an already-installed torch >= 2.3,
# otherwise installing torch==2.13.0), installs ravine into it, then runs what you asked for:
#   ./run.sh tour            the main job: the lectures' demonstrations, written to ./ravine-out
#   ./run.sh tests           lint, format check, strict type check and the whole test suite
#   ./run.sh bench [NAME]    side-by-side benchmarks (installs the peers), results printed
#   ./run.sh <anything>      any other `ravine` CLI command, e.g. ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
READY="$VENV/.ravine-ready"

have_usable_torch() {
    "$1" - <<'PY' 2>/dev/null
import sys
import torch
major, minor = (int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
sys.exit(0 if (major, minor) >= (2, 3) else 1)
PY
}

ensure_env() {
    if [ -f "$READY" ] && [ "$READY" -nt pyproject.toml ]; then
        return
    fi
    local python="${PYTHON:-python3}"
    "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ravine needs Python 3.11 or newer, found " + sys.version)'
    if [ ! -x "$VENV/bin/python" ]; then
        if have_usable_torch "$python"; then
            echo "run.sh: reusing the torch already installed for $python" >&2
            "$python" -m venv --system-site-packages "$VENV"
        else
            "$python" -m venv "$VENV"
        fi
    fi
    if ! have_usable_torch "$VENV/bin/python"; then
        echo "run.sh: installing torch==2.13.0 into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
    fi
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
    touch "$READY"
}

command="${1:-tour}"
case "$command" in
    tests)
        shift
        ensure_env
        if [ ! -f "$VENV/.ravine-integrations" ] || [ pyproject.toml -nt "$VENV/.ravine-integrations" ]; then
            "$VENV/bin/python" -m pip install --quiet -e ".[dev,integrations]"
            touch "$VENV/.ravine-integrations"
        fi
        export MPLBACKEND=Agg
        "$VENV/bin/python" -m ruff check src tests benchmarks
        "$VENV/bin/python" -m ruff format --check src tests benchmarks
        "$VENV/bin/python" -m mypy
        exec "$VENV/bin/python" -m pytest -n 2 "$@"
        ;;
    bench)
        shift
        ensure_env
        # the peers' dependencies (torchvision via backpack) would pull the newest torch: keep the one we have
        "$VENV/bin/python" -c 'import torch; print("torch==" + torch.__version__)' > "$VENV/torch-constraint.txt"
        "$VENV/bin/python" -m pip install --quiet -e ".[dev,bench]" -c "$VENV/torch-constraint.txt"
        # torchvision comes only through backpack (which needs it for its examples, not for its extensions);
        # the release pip picks may be built for another torch ("operator torchvision::nms does not exist"),
        # and a torchvision that fails to load breaks transformers' model imports (GPT2LMHeadModel). Neither
        # ravine nor the benchmarks use it: remove it from the venv when it does not load.
        if ! "$VENV/bin/python" -c 'import torchvision' >/dev/null 2>&1; then
            echo "run.sh: torchvision does not load with this torch; uninstalling it from $VENV" >&2
            "$VENV/bin/python" -m pip uninstall --quiet --yes torchvision
        fi
        export MPLBACKEND=Agg
        if [ $# -gt 0 ]; then
            exec "$VENV/bin/python" -m "benchmarks.$1" "${@:2}"
        fi
        for script in benchmarks/[!_]*.py; do
            name=$(basename "$script" .py)
            "$VENV/bin/python" -m "benchmarks.$name"
        done
        ;;
    *)
        ensure_env
        if [ $# -gt 0 ]; then shift; fi
        exec "$VENV/bin/ravine" "$command" "$@"
        ;;
esac
