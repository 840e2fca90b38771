"""AdaptThink on the board: ``parsimony compare`` trains its both-modes start beside the shared one, measures
R_ref on it for exactly the prompts the run draws, and trains only ``adapt_think`` from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl.experiments.compare_methods import EFFICIENCY_METHODS, method_settings, parse_variants
from rl.experiments.compare_starts import needs_nothink_start


def test_only_adapt_think_and_its_variants_need_the_both_modes_start():
    variants = parse_variants(['fs=adapt_think:{"adapt_think_ref_accuracy": "first_seen"}'])
    assert "adapt_think" in EFFICIENCY_METHODS
    assert needs_nothink_start(method_settings("adapt_think", 10, 64))
    assert needs_nothink_start(method_settings("fs", 10, 64, variants=variants))
    assert not any(needs_nothink_start(method_settings(m, 10, 64)) for m in EFFICIENCY_METHODS if m != "adapt_think")


@pytest.mark.slow
def test_compare_trains_adapt_think_from_its_own_start_with_r_ref_of_the_drawn_prompts(tmp_path):
    from curriculum.data import load_dataset_spec
    from curriculum.samplers import PromptSampler
    from rewards.adapt_think import prompt_key
    from rl.experiments.compare import main

    out = tmp_path / "cmp"
    args = ["--out", str(out), "--task", "explore", "--sft-steps", "5", "--grpo-steps", "2", "--eval-problems", "4",
            "--methods", "grpo,adapt_think", "--prompts-per-step", "2", "--num-generations", "4",
            "--max-completion-length", "32", "--report-to", "jsonl", "--warmup-steps", "0"]
    assert main(args) == 0
    info = {m: json.loads((out / m / "train_info.json").read_text()) for m in ("grpo", "adapt_think")}
    assert Path(info["grpo"]["settings"]["start"]) == out / "sft" / "final"
    assert Path(info["adapt_think"]["settings"]["start"]) == out / "sft_nothink" / "final"
    ref = Path(info["adapt_think"]["settings"]["method_kwargs"]["adapt_think_ref_accuracy"])
    assert ref.parent == out / "sft_nothink" and "method_kwargs" not in info["grpo"]["settings"]
    records = [json.loads(x) for x in ref.read_text().splitlines()]
    rows = load_dataset_spec("task:explore", "train", 4096, 0, {})
    drawn = [prompt_key(rows[i]["prompt"]) for i in PromptSampler(len(rows), seed=0).draw(2 * 2)]
    assert [r["prompt"] for r in records] == drawn  # the run's prompts, in the order it draws them
    assert all(r["samples"] == 16 and r["ref_accuracy"] == r["correct"] / 16 for r in records)
    metrics = [json.loads(x) for x in (out / "adapt_think" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in metrics if "adapt_think/nothink_frac" in r]
    assert trained and all(r["adapt_think/nothink_frac"] == 0.5 for r in trained)  # both modes in every group
    # the second start is evaluated and drawn as a reference, not a competitor
    summary = json.loads((out / "summary.json").read_text())
    assert {(r["method"], r["decoding"]) for r in summary} == {
        (m, d) for m in ("sft_start", "sft_nothink_start", "grpo", "adapt_think") for d in ("greedy", "sampled")}
    assert all(r["nothink_fraction"] is not None for r in summary)
    # each mode's accuracy where the mode occurs (None where no answer was in it)
    for r in summary:
        assert set(r) >= {"nothink_accuracy", "think_accuracy"}
        assert (r["nothink_accuracy"] is None) == (r["nothink_fraction"] == 0.0)
        assert (r["think_accuracy"] is None) == (r["nothink_fraction"] == 1.0)
    # the table shows the mode's columns where some answer skipped thinking (a 5-step start may never)
    shown = "| nothink_fraction | nothink_accuracy | think_accuracy |" in (out / "summary.md").read_text()
    assert shown == any(r["nothink_fraction"] for r in summary)
    board = (out / "leaderboard.md").read_text()
    assert "| sft_nothink_start |" in board
    assert next(line for line in board.splitlines() if line.startswith("| sft_nothink_start |")).count("| ref |") >= 1
    # a rerun reuses both starts and the R_ref file
    stamp = ref.stat().st_mtime_ns
    assert main(args) == 0 and ref.stat().st_mtime_ns == stamp
