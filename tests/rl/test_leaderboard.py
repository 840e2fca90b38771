"""The leaderboard's pure pieces: the Pareto frontier, seed aggregation, tables and findings, and the
docs generator end to end on a hand-written summary.json."""

from __future__ import annotations

import json

import pytest

from rl.experiments.leaderboard import (
    aggregate_seeds,
    findings,
    frontier_methods,
    markdown_table,
    pareto_frontier,
    versus,
)


def test_pareto_frontier_hand_computed():
    # (accuracy, tokens): b dominates a (more accurate, shorter); c is the shortest; d is the most accurate;
    # e is dominated by d (less accurate, longer); f equals c exactly (both kept)
    pts = [(0.80, 100), (0.85, 90), (0.70, 40), (0.90, 120), (0.88, 130), (0.70, 40)]
    assert pareto_frontier(pts) == [False, True, True, True, False, True]


def test_pareto_frontier_edge_cases():
    assert pareto_frontier([]) == []
    assert pareto_frontier([(0.5, 10)]) == [True]
    # equal accuracy, fewer tokens dominates; equal tokens, higher accuracy dominates
    assert pareto_frontier([(0.5, 10), (0.5, 9)]) == [False, True]
    assert pareto_frontier([(0.5, 10), (0.6, 10)]) == [False, True]


def rows():
    out = []
    for dec, data in (("greedy", [("sft_start", 0.95, 200), ("grpo", 0.90, 150), ("decs", 0.91, 60),
                                  ("dler", 0.92, 80), ("cosine", 0.85, 70)]),
                      ("sampled", [("sft_start", 0.80, 190), ("grpo", 0.75, 140), ("decs", 0.70, 60),
                                   ("dler", 0.78, 50), ("cosine", 0.60, 90)])):
        for m, a, t in data:
            out.append({"method": m, "decoding": dec, "accuracy": a, "mean_tokens": t, "redundant_fraction": 0.1,
                        "mean_tries": 1.5, "train_seconds": 100.0})
    return out


def test_frontier_methods_exclude_the_sft_reference():
    # greedy: decs (0.91, 60) and dler (0.92, 80); dler dominates grpo (0.90, 150), decs dominates cosine (0.85, 70);
    # sft_start (0.95, 200) would be on the frontier but is not a competitor
    assert frontier_methods(rows(), "greedy") == ["decs", "dler"]
    assert frontier_methods(rows(), "sampled") == ["dler"]  # (0.78, 50) dominates every other method


def test_versus_decs():
    v = {(x["decoding"], x["method"]): x for x in versus(rows(), "decs")}
    assert v[("sampled", "dler")]["beats"] == "dominates"
    assert v[("sampled", "dler")]["d_accuracy"] == pytest.approx(8.0)
    assert v[("sampled", "dler")]["d_tokens"] == pytest.approx(-10 / 60)
    assert v[("greedy", "dler")]["beats"] == "accuracy" and v[("greedy", "cosine")]["beats"] == ""
    assert ("greedy", "sft_start") not in v
    text = findings(rows())
    assert "greedy**: frontier = decs, dler; decs is on" in text
    assert "sampled**: frontier = dler; decs is NOT on" in text
    assert "dler is no less accurate and no longer (dominates) than decs: +8.0 accuracy points, -17% tokens" in text


def test_aggregate_seeds_mean_and_std():
    a = [{"method": "decs", "decoding": "greedy", "accuracy": 0.8, "mean_tokens": 60.0, "redundant_fraction": None}]
    b = [{"method": "decs", "decoding": "greedy", "accuracy": 0.9, "mean_tokens": 80.0, "redundant_fraction": None}]
    c = [{"method": "decs", "decoding": "greedy", "accuracy": 1.0, "mean_tokens": 70.0, "redundant_fraction": None}]
    (row,) = aggregate_seeds([a, b, c])
    assert row["seeds"] == 3
    assert row["accuracy"] == pytest.approx(0.9) and row["accuracy_std"] == pytest.approx(0.1)
    assert row["mean_tokens"] == pytest.approx(70.0) and row["mean_tokens_std"] == pytest.approx(10.0)
    assert row["redundant_fraction"] is None and "redundant_fraction_std" not in row
    # AdaptThink's mode and its accuracies are averaged too, not taken from the first seed
    modes = [[{"method": "adapt_think", "decoding": "sampled", "accuracy": 0.9, "mean_tokens": 100.0, "nothink_fraction": f,
               "nothink_accuracy": acc, "think_accuracy": 0.95}] for f, acc in ((0.1, 0.8), (0.3, None), (0.2, 0.9))]
    (row,) = aggregate_seeds(modes)
    assert row["nothink_fraction"] == pytest.approx(0.2) and row["nothink_accuracy"] == pytest.approx(0.85)
    assert row["think_accuracy"] == pytest.approx(0.95)


def test_markdown_table_marks_the_frontier_and_std():
    table = markdown_table(rows())
    lines = table.splitlines()
    assert lines[0].startswith("| method | decoding | accuracy (%) | mean tokens |") and "mean tries" in lines[0]
    assert "| dler | sampled | 78.0 | 50.0 | 0.100 | 1.50 | 100 | **yes** |" in lines
    assert "| cosine | greedy | 85.0 | 70.0 | 0.100 | 1.50 | 100 |  |" in lines
    assert any(line.startswith("| sft_start | greedy") and line.endswith("| ref |") for line in lines)
    agg = aggregate_seeds([rows()[:1], [dict(rows()[0], accuracy=0.85)]])
    assert "90.0 ± 7.1" in markdown_table(agg)


def test_leaderboard_command_writes_the_doc(tmp_path):
    from rl.commands.leaderboard import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(rows()))
    (run / "summary_meta.json").write_text(json.dumps({"task": "explore_heavy", "command": "parsimony compare --task explore",
                                                       "machine": "test box", "date": "2026-12-02", "total_seconds": 600,
                                                       "grpo_steps": 60, "prompts_per_step": 8, "num_generations": 8}))
    out = tmp_path / "docs" / "leaderboard.md"
    assert main(["--from", str(run), "--out", str(out)]) == 0
    text = out.read_text()
    assert "## Task `explore_heavy`" in text and "parsimony compare --task explore" in text and "test box" in text
    assert "| dler | sampled | 78.0 | 50.0 |" in text and "decs is NOT on the frontier" in text
    assert "one seed" in text and "![explore_heavy](img_leaderboard_explore_heavy.png)" in text
    assert (tmp_path / "docs" / "img_leaderboard_explore_heavy.png").stat().st_size > 1000


def test_compare_expands_the_efficiency_group():
    from rl.experiments.compare import EFFICIENCY_METHODS, expand_methods, method_settings

    assert expand_methods("efficiency") == list(EFFICIENCY_METHODS)
    assert expand_methods("grpo,efficiency,decs_plain") == list(EFFICIENCY_METHODS) + ["decs_plain"]
    assert {"grpo", "length_penalty", "cosine", "soft_overlong", "linear_pass_rate", "grpo_lead", "gfpo", "dler", "l1",
            "thinkprune", "kimi_length", "sigmoid_length", "laser_d", "shorter_better", "alp", "short_rl",
            "decs", "adapt_think"} == set(EFFICIENCY_METHODS)
    for m in EFFICIENCY_METHODS:  # every one resolves to a config
        assert method_settings(m, 60, 256)["method"] in (m, "decs")
    assert method_settings("dler", 60, 256)["method_kwargs"] == {"dler_length_cap": 128}
    assert method_settings("l1", 60, 256)["method_kwargs"] == {"length_target": 128}
    # token-denominated settings scaled from the paper's budget: 100 of 4096 tokens, 0.001 per token of 6000
    assert method_settings("short_rl", 60, 256)["method_kwargs"] == {"short_rl_length_tolerance": 6}
    assert method_settings("shorter_better", 60, 256)["method_kwargs"] == {"sb_beta": pytest.approx(6.0 / 256)}


@pytest.mark.slow
def test_compare_seeds_mode_end_to_end(tmp_path):
    """`parsimony compare --seeds 2` on a 3-step SFT start: two seed directories, then one row per cell with
    mean and std, the leaderboard files, and GFPO's doubled generation counted against its budget."""
    from rl.experiments.compare import main

    out = tmp_path / "lb"
    args = ["--out", str(out), "--sft-steps", "3", "--grpo-steps", "1", "--eval-problems", "2", "--methods",
            "grpo,gfpo", "--prompts-per-step", "2", "--num-generations", "2", "--max-completion-length", "16",
            "--seeds", "2", "--seed", "5"]
    assert main(args) == 0
    for k in (5, 6):
        assert (out / f"seed{k}" / "summary.json").is_file()
    per_seed = [json.loads((out / f"seed{k}" / "summary.json").read_text()) for k in (5, 6)]
    rows = json.loads((out / "summary.json").read_text())
    assert {(r["method"], r["decoding"]) for r in rows} == {
        (m, d) for m in ("sft_start", "grpo", "gfpo") for d in ("greedy", "sampled")}
    for r in rows:
        assert r["seeds"] == 2 and "accuracy_std" in r and "mean_tokens_std" in r
        cells = [next(x for x in s if (x["method"], x["decoding"]) == (r["method"], r["decoding"])) for s in per_seed]
        assert r["mean_tokens"] == pytest.approx(sum(c["mean_tokens"] for c in cells) / 2)
    by = {r["method"]: r for r in rows if r["decoding"] == "greedy"}
    assert by["gfpo"]["approx_rollouts"] == 2 * by["grpo"]["approx_rollouts"]  # 2 x G generated per prompt
    meta = json.loads((out / "summary_meta.json").read_text())
    assert meta["seeds"] == [5, 6] and "--seeds 2" in meta["command"] and meta["machine"]
    assert meta["reused_stages"] == [] and len(meta["seed_seconds"]) == 2  # every stage trained by this invocation
    # a rerun reuses every seed's stages, and the page says which
    assert main(args) == 0
    meta = json.loads((out / "summary_meta.json").read_text())
    assert meta["reused_stages"] == [f"seed{k}/{m}" for k in (5, 6) for m in ("grpo", "gfpo")]
    assert (out / "plot.png").stat().st_size > 1000 and "frontier" in (out / "leaderboard.md").read_text()


def test_approx_rounds_weighs_each_log_row_by_the_steps_it_covers():
    from rl.experiments.compare import approx_rounds

    # logged every 5 steps plus the last one (7): 5 + 2 steps, not 2 rows x 5
    rows = [{"step": 5, "loss": 0.1}, {"step": 7, "loss": 0.1}, {"step": 7, "eval/accuracy": 0.5}]
    assert approx_rounds(rows, 8) == 7
    # a dynamic sampler's extra rounds and GFPO's 2 x G group count in full
    rows = [{"step": 5, "loss": 0.1, "sampling/generation_rounds": 2, "sampling/rollouts_per_prompt": 16}]
    assert approx_rounds(rows, 8) == 5 * 2 * 2


def test_leaderboard_command_keeps_other_tasks_sections(tmp_path):
    """Regenerating one task's section keeps the other tasks' sections of the page verbatim (their runs
    may be gone), replaces the rerun task's, and --replace drops the rest."""
    from rl.commands.leaderboard import main
    from rl.experiments.leaderboard import task_sections

    out = tmp_path / "docs" / "leaderboard.md"
    out.parent.mkdir()
    old_explore = "## Task `explore_heavy`\n\n- command: `old explore run`\n\n| a | b |\n|---|---|"
    old_overthink = "## Task `overthink_heavy`\n\n- command: `stale overthink run`"
    out.write_text(f"# The efficiency-method leaderboard\n\nGenerated long ago.\n\n{old_explore}\n\n{old_overthink}\n")
    assert task_sections(out.read_text()) == {"explore_heavy": old_explore, "overthink_heavy": old_overthink}

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(rows()))
    (run / "summary_meta.json").write_text(json.dumps({
        "task": "overthink_heavy", "command": "parsimony compare --task overthink", "total_seconds": 120,
        "reused_stages": ["grpo", "decs"], "train": {"grpo": {"seconds": 1800}, "decs": {"seconds": 2400}}}))
    assert main(["--from", str(run), "--out", str(out)]) == 0
    sections = task_sections(out.read_text())
    assert list(sections) == ["explore_heavy", "overthink_heavy"]
    assert sections["explore_heavy"] == old_explore
    assert "stale overthink run" not in out.read_text() and "parsimony compare --task overthink" in sections["overthink_heavy"]
    # a run whose stages were trained by earlier invocations says so, with the stages' own time (30 + 40 min)
    assert "2 min for this invocation, which reused 2 stage(s) trained earlier (grpo, decs); the GRPO stages took 70 min" \
        in sections["overthink_heavy"]

    assert main(["--from", str(run), "--out", str(out), "--replace"]) == 0
    assert list(task_sections(out.read_text())) == ["overthink_heavy"]
