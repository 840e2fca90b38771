#!/usr/bin/env bash
# The test suite: installs what is missing, then runs pytest. Extra args go to pytest.
# Two passes: the tests run on 2 pytest-xdist workers (one file per worker at a time: module fixtures
# are built once), then the tests marked `serial` (wall-clock bounds, e.g. a circuit breaker's
# cool-down) run alone, so that the other worker's CPU load cannot break their timing.
# The parallel pass hands out the longest files first (tests/scheduling.py reads tests/durations.json and
# turns xdist's own reordering off);
# PARSIMONY_RECORD_DURATIONS=1 measures that pass's files again (run it on the whole suite).
# PARSIMONY_TEST_WORKERS=1 runs everything in one process, as before. A pass that collects no tests
# is fine; both collecting none (pytest's exit code 5) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh || exit 1
VENV=${PARSIMONY_VENV:-.venv}
WORKERS=${PARSIMONY_TEST_WORKERS:-2}
PYTEST=("$VENV/bin/python" -m pytest -q --timeout=600)
if [ "$WORKERS" -le 1 ] || ! "$VENV/bin/python" -c "import xdist" 2>/dev/null; then
  "${PYTEST[@]}" "$@"
  code=$?
  [ "$code" -eq 5 ] && { echo "[test] pytest collected no tests: failing" >&2; exit 1; }
  exit "$code"
fi
echo "[test] pass 1: $WORKERS workers, the tests not marked serial"
"${PYTEST[@]}" -n "$WORKERS" --dist loadfile -m "not serial" "$@"
one=$?
echo "[test] pass 2: the tests marked serial, alone"
PARSIMONY_RECORD_DURATIONS=0 "${PYTEST[@]}" -m serial "$@"
two=$?
if [ "$one" -eq 5 ] && [ "$two" -eq 5 ]; then
  echo "[test] pytest collected no tests: failing" >&2
  exit 1
fi
for code in "$one" "$two"; do
  if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then exit "$code"; fi
done
exit 0
