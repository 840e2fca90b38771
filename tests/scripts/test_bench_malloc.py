"""scripts/bench_malloc.py runs both allocator arms on the same decode, each in its own process, and reports
them (its timings are not asserted: tests never time anything)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_bench_malloc_runs_both_arms_on_the_same_tokens(tmp_path):
    main = runpy.run_path(str(REPO / "scripts" / "bench_malloc.py"))["main"]
    out = tmp_path / "bench.json"
    assert main(["--batch", "2", "--tokens", "4", "--rounds", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["same_tokens"] is True and report["ratio_wall"]["default"] == 1.0
    assert [r["tuned"] for r in report["runs"]["default"]] == [False]
    assert [r["tuned"] for r in report["runs"]["tuned"]] == [True]
    for arm in ("default", "tuned"):
        assert report["median"][arm]["wall_s"] > 0 and report["median"][arm]["minor_faults"] > 0


def test_bench_malloc_rejects_a_bad_setting(capsys):
    main = runpy.run_path(str(REPO / "scripts" / "bench_malloc.py"))["main"]
    with pytest.raises(SystemExit) as e:
        main(["--batch", "0"])
    assert e.value.code == 2 and "--batch: must be >= 1" in capsys.readouterr().err
