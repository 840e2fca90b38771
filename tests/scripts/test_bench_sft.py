"""scripts/bench_sft.py runs and measures what it says: the padding share falls as batches are
cut into more length-sorted pieces (its timings are not asserted: tests never time anything)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_sft_reports_every_variant_and_less_padding_with_more_pieces(tmp_path):
    main = runpy.run_path(str(REPO / "scripts" / "bench_sft.py"))["main"]
    out = tmp_path / "bench.json"
    assert main(["--steps", "1", "--batch-size", "8", "--threads", "1", "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"plain", "split_by_length=2", "split_by_length=4", "group_by_length",
                            "split_by_length=4 + bf16"}
    pad = {k: v["padding_share"] for k, v in results.items()}
    assert pad["plain"] > pad["split_by_length=2"] > pad["split_by_length=4"] >= 0
    assert pad["split_by_length=4 + bf16"] == pad["split_by_length=4"]  # the same batches, only the precision differs
    assert all(v["s_per_step"] > 0 for v in results.values())
