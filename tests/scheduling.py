"""Test-file order for the parallel pass: the longest files start first.

``scripts/test.sh`` runs the suite on two pytest-xdist workers, one file per worker at a time
(``--dist loadfile``). xdist hands the files out in collection order (with ``--no-loadscope-reorder``),
so a long file collected last keeps one worker busy while the other has nothing left to do. This
module sorts the collection by each file's measured seconds, longest first (the classic
longest-processing-time schedule); files without a measurement keep their order, after the measured
ones that take longer than a minute, before the rest. When there are measured seconds it also turns
xdist's own reordering off (``--no-loadscope-reorder``: xdist would put the files with most tests first),
so any ``pytest -n N --dist loadfile`` run follows the measured order, not only ``scripts/test.sh``.

The seconds live in ``tests/durations.json`` (file -> seconds: setup, call and teardown of every test;
``PARSIMONY_DURATIONS_FILE`` names another file).
``PARSIMONY_RECORD_DURATIONS=1 bash scripts/test.sh`` measures them again and merges them into that file.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

DURATIONS = Path(os.environ.get("PARSIMONY_DURATIONS_FILE") or Path(__file__).with_name("durations.json"))
UNKNOWN_SECONDS = 60.0  # where a file without a measurement goes in the order
_measured: dict[str, float] = defaultdict(float)


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _known() -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def longest_files_first(nodeids: list[str], seconds: dict[str, float]) -> list[int]:
    """The indices of ``nodeids`` in run order: files by decreasing ``seconds`` (a missing file counts
    :data:`UNKNOWN_SECONDS`), each file's tests kept together and in their own order."""
    first: dict[str, int] = {}
    for i, n in enumerate(nodeids):
        first.setdefault(_file(n), i)
    return sorted(range(len(nodeids)),
                  key=lambda i: (-seconds.get(_file(nodeids[i]), UNKNOWN_SECONDS), first[_file(nodeids[i])], i))


def pytest_configure(config):
    # read by xdist's loadscope/loadfile scheduler in the controller, after collection
    if hasattr(config.option, "loadscopereorder") and _known():
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    seconds = _known()
    if not seconds:
        return
    order = longest_files_first([it.nodeid for it in items], seconds)
    items[:] = [items[i] for i in order]


def pytest_runtest_logreport(report):
    if os.environ.get("PARSIMONY_RECORD_DURATIONS") == "1":
        _measured[_file(report.nodeid)] += report.duration


def pytest_sessionfinish(session):
    # the controller (or a run without xdist) sees every report; an xdist worker writes nothing
    if os.environ.get("PARSIMONY_RECORD_DURATIONS") != "1" or hasattr(session.config, "workerinput"):
        return
    if not _measured:
        return
    merged = {**_known(), **{k: round(v, 1) for k, v in _measured.items()}}
    DURATIONS.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
