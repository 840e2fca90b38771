#!/usr/bin/env bash
# The test suite: installs what is missing, then runs pytest. Extra args go to pytest.
# pytest's exit code 5 ("no tests collected") is a failure here.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh || exit 1
VENV=${PARSIMONY_VENV:-.venv}
"$VENV/bin/python" -m pytest -q --timeout=600 "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "[test] pytest collected no tests: failing" >&2
  exit 1
fi
exit "$code"
