#!/usr/bin/env bash
# The main job on the embedded default: install, build the tiny model, SFT warm start,
# GRPO, before/after report. Extra args go to `parsimony quickstart`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${PARSIMONY_VENV:-.venv}/bin/parsimony" quickstart "$@"
