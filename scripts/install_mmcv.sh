#!/usr/bin/env bash
# Install mmcv 2.1.0 (with its compiled ops) into the Python environment given as $1
# (default: the python on PATH), matched to the torch ALREADY installed there.
#
# Why a script: mmcv has no wheel for recent torch, so it must be compiled against the exact
# torch of the environment, with `setuptools<70` and without build isolation.  pip's shared
# wheel cache would hand a wheel built for one torch to an environment with another (ABI
# mismatch at import), so built wheels are kept in a folder keyed by the torch version
# instead, and pip's cache is bypassed.
#
# Order of preference:
#   1. mmcv already importable with its ops            -> nothing to do
#   2. a prebuilt wheel in ../shared/wheels (torch 2.13.0+cpu, CPython 3.11 only)
#   3. a wheel this script built earlier for the same torch ($UP2_MMCV_CACHE/torch-<version>)
#   4. build from source (about 18 minutes on 2 cores), then keep the wheel for step 3
set -euo pipefail

PY=${1:-python}
MMCV_VERSION=2.1.0
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED_WHEELS=${UP2_SHARED_WHEELS:-$HERE/../../shared/wheels}
CACHE_ROOT=${UP2_MMCV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/up2/mmcv-wheels}

PLAN_ONLY=${UP2_MMCV_PLAN_ONLY:-}
if [ -z "$PLAN_ONLY" ] && "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
    echo "[install_mmcv] mmcv $MMCV_VERSION with ops already importable"
    exit 0
fi

TORCH=$("$PY" -c "import torch; print(torch.__version__)")
PYTAG=$("$PY" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
CACHE_DIR="$CACHE_ROOT/$PYTAG-torch-$TORCH"
pick() { ls "$1"/mmcv-"$MMCV_VERSION"-"$PYTAG"-*.whl 2>/dev/null | head -n 1 || true; }

WHEEL=""
if [ "$TORCH" = "2.13.0+cpu" ] && [ -d "$SHARED_WHEELS" ]; then
    WHEEL=$(pick "$SHARED_WHEELS")
    [ -n "$WHEEL" ] && echo "[install_mmcv] using prebuilt wheel $WHEEL"
fi
if [ -z "$WHEEL" ]; then
    WHEEL=$(pick "$CACHE_DIR")
    [ -n "$WHEEL" ] && echo "[install_mmcv] using wheel built earlier for torch $TORCH: $WHEEL"
fi
if [ -n "$PLAN_ONLY" ]; then  # say what would be done, do nothing (for tests)
    echo "[install_mmcv] plan: ${WHEEL:-build from source for torch $TORCH into $CACHE_DIR}"
    exit 0
fi
if [ -z "$WHEEL" ]; then
    echo "[install_mmcv] building mmcv $MMCV_VERSION from source against torch $TORCH (slow: ~18 min on 2 cores)"
    # The build needs pkg_resources from `setuptools<70`, which torch >= 2.9 declares too old
    # (it asks for setuptools >= 77).  So build in a throwaway venv with the same torch, where that
    # conflict is harmless, and keep the user's environment consistent.
    mkdir -p "$CACHE_DIR"
    BUILD_DIR=$(mktemp -d)
    trap 'rm -rf "$BUILD_DIR"' EXIT
    BASE_PY=$("$PY" -c "import sys; print(getattr(sys, '_base_executable', sys.executable))")
    "$BASE_PY" -m venv "$BUILD_DIR/venv"
    "$BUILD_DIR/venv/bin/python" -m pip install --quiet "torch==$TORCH" numpy
    "$BUILD_DIR/venv/bin/python" -m pip install --quiet 'setuptools<70' wheel ninja 2>&1 | grep -v "incompatible" || true
    MAX_JOBS=${MAX_JOBS:-$(nproc)} "$BUILD_DIR/venv/bin/python" -m pip wheel --no-build-isolation \
        --no-deps --no-cache-dir --wheel-dir "$CACHE_DIR" "mmcv==$MMCV_VERSION"
    WHEEL=$(pick "$CACHE_DIR")
    [ -n "$WHEEL" ] || { echo "[install_mmcv] build produced no wheel in $CACHE_DIR" >&2; exit 1; }
fi
"$PY" -m pip install --no-cache-dir "$WHEEL"
"$PY" -c "import mmcv, mmcv.ops; print('[install_mmcv] mmcv', mmcv.__version__, 'ops OK')"
