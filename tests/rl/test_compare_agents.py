"""``parsimony compare-agents``: the executor metrics of the held-out evaluation (a scripted planner and
executor, counted by hand), the arms' configs, the verdict, and a smoke run of every arm at tiny budgets
with its cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl.experiments import compare_agents as ca
from test_grpo_mgrpo import PlannerExecutorEngine, dataset


def test_evaluation_counts_executor_calls_their_format_and_local_accuracy(tiny_model_dir):
    from transformers import AutoTokenizer

    from rl.eval.episodes import evaluate_episodes

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # the 4 rows follow the scripted plans in order (truth 26): 2*3, 4*5 -> 26 (2 calls, right);
    # 4*5 -> 25 (1 call, wrong); no call -> 26 (right); 1+1 (no <result>), 2*3, 4*5 -> 7 (3 calls, wrong)
    res = evaluate_episodes(None, tok, list(dataset(4)), environment="planner",
                            environment_kwargs={"executor_max_episode_tokens": 300}, max_turns=5,
                            max_episode_tokens=700, max_new_tokens=150, engine=PlannerExecutorEngine(tok))
    assert res["accuracy"] == pytest.approx(2 / 4)
    assert [s["executor_calls"] for s in res["samples"]] == [2, 1, 0, 3]
    assert res["mean_executor_calls"] == pytest.approx(6 / 4)
    assert res["samples"][3]["executor_format_ok"] == [False, True, True]
    assert res["executor_format_ok"] == pytest.approx(5 / 6)  # the 1+1 call gave no result
    assert res["executor_accuracy"] == pytest.approx(5 / 6)  # its r_local is 0 (no result vs "2"), the others' 1
    # no sub-episode: no executor metric
    engine = PlannerExecutorEngine(tok)
    engine.seen = 2  # the plan without a call
    none = evaluate_episodes(None, tok, list(dataset(1)), environment="planner", max_turns=5, max_new_tokens=150,
                             engine=engine)
    assert none["accuracy"] == 1.0 and none["mean_executor_calls"] == 0.0
    assert none["executor_accuracy"] is None and none["executor_format_ok"] is None


def test_arms_share_the_budget_and_differ_only_in_who_trains(tmp_path):
    args = ca.parse_args(["--out", str(tmp_path), "--grpo-steps", "3", "--prompts-per-step", "2", "--num-generations", "4",
                          "--d-max", "2"])
    starts = {"sft": tmp_path / "sft", "single": tmp_path / "single"}
    cfgs = {a: ca.arm_configs(args, a, starts, tmp_path / a) for a in ca.ARMS}
    for arm, (planner, _) in cfgs.items():  # the same budget (LoRA adapters at their own lr)
        assert (planner.max_steps, planner.per_device_train_batch_size, planner.num_generations,
                planner.learning_rate) == (3, 8, 4, args.lora_lr if arm == "mgrpo_lora" else args.lr)
    lora, none = cfgs["mgrpo_lora"]
    assert none is None and lora.use_peft and lora.role_adapters == ["planner", "executor"] and args.lora_lr == 10 * args.lr
    assert lora.environment == "planner" and lora.model == str(starts["sft"])
    single, none = cfgs["single_agent"]
    assert none is None and single.method == "grpo" and single.environment == "tools" and single.model == str(starts["single"])
    assert single.dataset_kwargs == {"role": "single"}
    shared, none = cfgs["mgrpo_shared"]
    assert none is None and shared.environment == "planner" and shared.method_kwargs.get("mgrpo_train_roles", "all") == "all"
    assert shared.method_kwargs["mgrpo_d_max"] == 2
    frozen, fex = cfgs["frozen_executor"]
    assert frozen.method_kwargs["mgrpo_train_roles"] == "planner" and frozen.method_kwargs.get("mgrpo_store") is None
    sep, sex = cfgs["mgrpo_separate"]
    assert sep.method_kwargs["mgrpo_store"] == "memory" == sex.method_kwargs["mgrpo_store"]
    assert sep.method_kwargs["mgrpo_run"] == sex.method_kwargs["mgrpo_run"] != fex.method_kwargs["mgrpo_run"]
    assert sex.method_kwargs["mgrpo_train_roles"] == "executor" and sex.output_dir == str(tmp_path / "mgrpo_separate" / "executor")
    assert {sep.model, sex.model, frozen.model, fex.model, shared.model} == {str(starts["sft"])}
    with pytest.raises(SystemExit):
        ca.parse_args(["--arms", "mgrpo_shared,judge"])


def test_verdict_needs_every_baseline_beaten():
    rows = [{"method": m, "decoding": "greedy", "accuracy": a} for m, a in
            (("single_agent", 0.40), ("frozen_executor", 0.55), ("mgrpo_shared", 0.60), ("mgrpo_separate", 0.50))]
    assert ca.beats_baselines(rows) == {"mgrpo_shared": {"greedy": True}, "mgrpo_separate": {"greedy": False}}
    assert ca.beats_baselines(rows[2:3]) == {"mgrpo_shared": {"greedy": None}}


@pytest.mark.slow
def test_every_arm_runs_and_a_rerun_reuses_each_stage(tiny_model_dir, tmp_path, capsys):
    # --generated-tokens 1 ends every arm after its first of 2 steps (the separate executor with its planner)
    argv = ["--out", str(tmp_path / "cmp"), "--model-dir", str(tiny_model_dir), "--sft-steps", "2", "--grpo-steps", "2",
            "--generated-tokens", "1",
            "--prompts-per-step", "2", "--num-generations", "2", "--eval-problems", "3", "--decodings", "greedy",
            "--max-completion-length", "48", "--max-episode-tokens", "96", "--executor-max-episode-tokens", "64"]
    assert ca.main(argv) == 0
    out = Path(tmp_path / "cmp")
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary] == ["sft_start", "sft_single", *ca.ARMS]
    for r in summary:
        assert {"method", "accuracy", "executor_accuracy", "mean_calls"} <= set(r) and r["problems"] == 3
        assert 0.0 <= r["accuracy"] <= 1.0 and r["decoding"] == "greedy"
    for arm in ca.ARMS:
        assert (out / arm / "final").is_dir() and (out / arm / "eval.json").is_file()
    assert (out / "mgrpo_separate" / "executor" / "final").is_dir()  # the separate executor trained and saved
    info = json.loads((out / "mgrpo_separate" / "train_info.json").read_text())
    assert info["steps"] == {"planner": 1, "executor": 1}
    assert json.loads((out / "frozen_executor" / "train_info.json").read_text())["steps"] == {"planner": 1, "executor": None}
    for arm in ca.ARMS:
        info = json.loads((out / arm / "train_info.json").read_text())
        assert info["budget_spent"] and info["generated_tokens"] >= 1 and info["settings"]["max_generated_tokens"] == 1
    assert all(r["train_tokens"] >= 1 for r in summary if r["method"] in ca.ARMS)
    assert (out / "plot.png").stat().st_size > 0 and "| mgrpo_shared | greedy |" in (out / "summary.md").read_text()
    meta = json.loads((out / "summary_meta.json").read_text())
    assert set(meta["mgrpo_beats_baselines"]) == {"mgrpo_shared", "mgrpo_separate", "mgrpo_lora"}
    # the multi-agent start trains 2 x --sft-steps (its planner sees ~1/4.5 of the rows a step), the single one --sft-steps
    last = {d: json.loads((out / d / "metrics.jsonl").read_text().splitlines()[-1])["step"] for d in ("sft_multi", "sft_single")}
    assert meta["multi_sft_steps"] == 4 and last == {"sft_multi": 4, "sft_single": 2}
    assert (out / "mgrpo_lora" / "final" / "planner").is_dir() and (out / "mgrpo_lora" / "final" / "executor").is_dir()
    capsys.readouterr()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/train_info.json")}
    assert ca.main(argv) == 0  # everything cached: no SFT, no training, no evaluation again
    printed = capsys.readouterr().out
    assert all(f"reusing {out / arm}" in printed for arm in ca.ARMS) and "reusing " + str(out / "sft_multi") in printed
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/train_info.json")} == stamps
    assert json.loads((out / "summary.json").read_text()) == summary


def test_a_negative_token_budget_is_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ca.parse_args(["--out", str(tmp_path / "cmp"), "--generated-tokens", "-5"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and "--generated-tokens: must be >= 0" in err


def test_a_trained_arm_from_another_start_is_not_reused(tmp_path):
    out = tmp_path / "cmp"
    (out / "single_agent" / "final").mkdir(parents=True)
    (out / "single_agent" / "train_info.json").write_text(json.dumps({"settings": {"start": str(out / "sft_single/final")}}))
    args = ca.parse_args(["--out", str(out), "--single-guesses"])
    assert ca.train_arm(args, "single_agent", {"single": out / "sft_single/final"}, out)["settings"]  # same start: reused
    with pytest.raises(ValueError, match="was trained from .*sft_single/final.*sft_single_guesses/final"):
        ca.train_arm(args, "single_agent", {"single": out / "sft_single_guesses/final"}, out)


def test_compare_agents_is_a_subcommand_with_a_script_wrapper(capsys):
    from rl.commands.cli import SUBCOMMANDS, main

    assert SUBCOMMANDS["compare-agents"][0] == "rl.experiments.compare_agents"
    assert main(["compare-agents", "--help"]) == 0 and "mgrpo_separate" in capsys.readouterr().out
    script = Path(__file__).resolve().parents[2] / "scripts" / "compare_agents.py"
    assert "from rl.experiments.compare_agents import main" in script.read_text()


def test_margins_are_measured_in_combined_standard_errors():
    from rl.experiments.agents_report import verdict_with_se

    rows = [{"method": "single_agent", "decoding": "sampled", "accuracy": 0.30, "accuracy_se": 0.03},
            {"method": "frozen_executor", "decoding": "sampled", "accuracy": 0.40, "accuracy_se": 0.04},
            {"method": "mgrpo_shared", "decoding": "sampled", "accuracy": 0.50, "accuracy_se": 0.04}]
    v = verdict_with_se(rows)["mgrpo_shared"]["sampled"]
    # 20 points over the single agent, SE hypot(3, 4) = 5: clear; 10 over the frozen executor, SE 5.66: not
    assert v["single_agent"] == {"margin": 20.0, "combined_se": 5.0, "clear": True}
    assert v["frozen_executor"] == {"margin": 10.0, "combined_se": 5.66, "clear": False}


def test_seeds_pool_the_episodes():
    from rl.experiments.agents_report import aggregate

    seed = lambda acc, over: [{"method": "mgrpo_shared", "decoding": "greedy", "accuracy": acc, "problems": 100,
                               "executor_accuracy": None, "executor_format_ok": 1.0, "mean_calls": 3.0,
                               "mean_tokens": 200.0, "truncated_frac": over, "train_seconds": 10.0}]
    (row,) = aggregate([seed(0.4, 0.1), seed(0.6, 0.3)])
    assert row["seeds"] == 2 and row["problems"] == 200
    assert row["accuracy"] == pytest.approx(0.5) and row["accuracy_std"] == pytest.approx(0.1414, abs=1e-4)
    assert row["accuracy_se"] == pytest.approx((0.25 / 200) ** 0.5) and row["truncated_frac"] == pytest.approx(0.2)


def test_the_context_limit_sets_every_budget():
    args = ca.parse_args(["--task", "long_context"])
    assert args.context_tokens == 512 and args.max_episode_tokens is None
    planner = ca.parse_args([])
    assert (planner.context_tokens, planner.max_episode_tokens, planner.executor_max_episode_tokens) == (None, 384, 192)
    with pytest.raises(SystemExit):
        ca.parse_args(["--task", "long_context", "--max-episode-tokens", "300"])


@pytest.mark.slow
def test_long_context_over_two_seeds(tiny_model_dir, tmp_path):
    """``--task long_context --seeds 2``: per-seed runs under the shared context, then the mean over seeds
    with the context overruns in the table."""
    out = tmp_path / "lc"
    argv = ["--task", "long_context", "--out", str(out), "--model-dir", str(tiny_model_dir), "--arms", "single_agent",
            "--sft-steps", "1", "--grpo-steps", "1", "--prompts-per-step", "1", "--num-generations", "2", "--eval-problems", "2",
            "--decodings", "greedy", "--max-completion-length", "32", "--seeds", "2"]
    assert ca.main(argv) == 0
    for k in (0, 1):
        meta = json.loads((out / f"seed{k}" / "summary_meta.json").read_text())
        budgets = meta["episode_budgets"]
        assert meta["context_tokens"] == 512 and meta["seed"] == k
        assert all(100 < budgets[r] < 512 for r in ("planner", "executor", "single"))
        cfg = json.loads((out / f"seed{k}" / "single_agent" / "train_info.json").read_text())
        assert cfg["steps"] == {"planner": 1}
    rows = json.loads((out / "summary.json").read_text())
    assert {r["method"] for r in rows} == {"sft_single", "single_agent"}
    assert all(r["seeds"] == 2 and r["problems"] == 4 and "truncated_frac" in r for r in rows)
    assert "| context overruns |" in (out / "summary.md").read_text()
    meta = json.loads((out / "summary_meta.json").read_text())
    assert meta["seeds"] == [0, 1] and meta["context_tokens"] == 512 and len(meta["seed_seconds"]) == 2
