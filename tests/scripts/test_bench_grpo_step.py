"""scripts/bench_grpo_step.py runs both trainers on one tiny step each and writes bench.json in the
documented shape (its timings are not asserted: tests never time anything)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from rl.bench_grpo import BREAKDOWN

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_grpo_step_writes_ratio_ours_trl_and_settings(tmp_path):
    pytest.importorskip("trl")
    main = runpy.run_path(str(REPO / "scripts" / "bench_grpo_step.py"), run_name="bench")["main"]
    argv = ["--out", str(tmp_path), "--steps", "1", "--warmup", "0", "--rounds", "1", "--prompts-per-step", "2",
            "--num-generations", "2", "--max-completion-length", "6", "--train-examples", "16",
            "--variants", '{"compact": {"hf_decode": "compact", "split_by_length": 2}}']
    assert main(argv) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert {"ratio", "ours", "trl", "settings"} <= set(report)
    assert report["ratio"] > 0
    for fw in ("ours", "trl"):
        assert report[fw]["median_s_per_step"] > 0 and report[fw]["min_s_per_step"] > 0
        # forced lengths: every completion has max_completion_length tokens, on both sides
        assert report[fw]["mean_completion_tokens_per_step"] == 2 * 2 * 6
    assert set(BREAKDOWN) <= set(report["ours"]["breakdown"])
    assert report["sizes"]["tiny"]["ours+compact"]["ratio"] > 0
    s = report["settings"]
    assert s["top_k"] == 0 and s["num_generations"] == 2 and s["max_completion_length"] == 6
    assert s["min_new_tokens"] == 6 and "differences" in s and s["machine"]["nproc"] >= 1
