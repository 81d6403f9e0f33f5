#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment, in the one order this stack installs in:
#   1. torch, pinned (an unpinned torch pulls a multi-GB CUDA build)
#   2. mmcv 2.1.0 compiled against that torch (scripts/install_mmcv.sh)
#   3. this package, editable, with the extras asked for
#
# Usage: scripts/bootstrap.sh [VENV_DIR]      (default: .venv)
# Environment: UP2_TORCH (default 2.13.0), UP2_EXTRAS (default "dev"), PYTHON (default python3).
# A stamp file records a hash of the inputs, so a second call with nothing changed returns at once.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${1:-$ROOT/.venv}
TORCH_VERSION=${UP2_TORCH:-2.13.0}
EXTRAS=${UP2_EXTRAS:-dev}
PYTHON=${PYTHON:-python3}

STAMP_INPUT="$TORCH_VERSION|$EXTRAS|$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/bootstrap.sh" "$ROOT/scripts/install_mmcv.sh" | sha256sum)"
STAMP=$(printf '%s' "$STAMP_INPUT" | sha256sum | cut -c1-16)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
if [ -f "$VENV/.up2-stamp" ] && [ "$(cat "$VENV/.up2-stamp")" = "$STAMP" ]; then
    # Dependencies are current; only (re)point the editable install at this checkout, which may
    # be a new clone (CI keeps the environment between runs, not the clone).
    "$PY" -m pip install --quiet --no-deps -e "$ROOT"
else
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet "torch==$TORCH_VERSION" wheel
    "$ROOT/scripts/install_mmcv.sh" "$PY"
    "$PY" -m pip install --quiet -e "$ROOT[$EXTRAS]"
    echo "$STAMP" > "$VENV/.up2-stamp"
fi
"$PY" -c "import up2core, mmdet, mmcv.ops; print('[bootstrap] up2', up2core.__version__, 'ready in', '$VENV')"
