#!/usr/bin/env bash
# Create .venv (if missing) and install parsimony with its dev extras.
# On machines without an NVIDIA GPU, torch is pinned to the CPU wheel (torch==2.13.0) first,
# so that nothing pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${PARSIMONY_VENV:-.venv}
STAMP="$VENV/.parsimony-installed"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
# reinstall when pyproject.toml changed since the last install
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && "$VENV/bin/python" -c "import rl, rewards, torch, transformers" 2>/dev/null; then
  exit 0
fi
PIP="$VENV/bin/python -m pip"
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "[setup] no NVIDIA GPU: installing the CPU build of torch"
  $PIP install -q "torch==2.13.0"
fi
echo "[setup] installing parsimony-rl[dev]"
$PIP install -q -e ".[dev]"
touch "$STAMP"
