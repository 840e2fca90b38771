"""``parsimony compare-trl``: TRL's GRPOTrainer and parsimony's on the same start, data and
reward, evaluated on the same held-out problems (issue 11, item 3)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

if importlib.util.find_spec("trl") is None:  # the dev extra; CI installs it, so there its absence fails
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but trl (the dev extra) is not installed")
    pytest.skip("trl is not installed (pip install -e '.[dev]')", allow_module_level=True)


def test_trl_reward_adapter_grades_like_the_accuracy_reward():
    """TRL passes conversational completions as message lists and the other columns (plus its
    own extras) as keyword arguments; the adapter gives the same scores as our reward."""
    from rewards import get_reward_func
    from rl.experiments.compare_trl import trl_reward

    ours = get_reward_func("accuracy")
    adapter = trl_reward("accuracy")
    texts = ["so \\boxed{7}", "so \\boxed{8}", "the answer is 7.", "7 and then we stop at 3+4="]
    gts = [{"ground_truth": "7", "style": "rule"}] * 4
    prompts = [[{"role": "user", "content": "Compute left to right: 3+4"}]] * 4
    expected = ours(prompts=prompts, completions=texts, reward_model=gts, data_source=["t"] * 4)
    got = adapter(
        prompts=prompts, completions=[[{"role": "assistant", "content": t}] for t in texts], completion_ids=[[1]] * 4,
        reward_model=gts, data_source=["t"] * 4, extra_info=[{}] * 4,
        trainer_state=object(), log_extra=lambda *a: None, log_metric=lambda *a: None,
    )
    assert got == expected == [1.0, 0.0, 1.0, 0.0]
    assert adapter.__name__ == "accuracy"  # TRL logs rewards/<name>/mean
    assert adapter(prompts=["p"], completions=["\\boxed{7}"], answer=["7"]) == [1.0]  # plain-text completions too


@pytest.mark.slow
def test_compare_trl_smoke(tiny_model_dir, tmp_path, capsys):
    from rl.experiments.compare_trl import main

    out = tmp_path / "cmp"
    code = main([
        "--model", str(tiny_model_dir), "--steps", "2", "--prompts-per-step", "2", "--num-generations", "2",
        "--max-completion-length", "16", "--warmup-steps", "1", "--train-examples", "16", "--eval-problems", "4",
        "--eval-batch-size", "8", "--out", str(out), "--threads", "1",
        "--dataset_kwargs", '{"redundancy": "none"}',
        "--ours-overrides", '{"async_rollouts": true, "vllm_is_cap": 2.0, "hf_decode": "compact"}',
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| run | decoding | held-out accuracy |" in printed
    for fw in ("start", "parsimony", "trl"):
        assert f"| {fw} | greedy |" in printed and f"| {fw} | sampled |" in printed

    summary = json.loads((out / "summary.json").read_text())
    rows = {(r["framework"], r["decoding"]): r for r in summary["rows"]}
    assert set(rows) == {(f, d) for f in ("start", "parsimony", "trl") for d in ("greedy", "sampled")}
    for fw in ("parsimony", "trl"):
        for d in ("greedy", "sampled"):
            r = rows[(fw, d)]
            assert r["steps"] == 2 and r["num_problems"] == 4
            assert 0.0 <= r["accuracy"] <= 1.0 and r["stderr"] >= 0.0
            assert 0 < r["mean_tokens"] <= 16
            assert r["seconds_per_step"] > 0
        assert (out / fw / "final" / "config.json").is_file()
    # the settings that must agree, as TRL's trainer read them
    trl = summary["settings"]["trl_effective"]
    assert trl["loss_type"] == "dapo" and trl["scale_rewards"] == "group" and trl["top_k"] == 0
    assert trl["beta"] == 0.0 and trl["num_iterations"] == 1 and trl["use_vllm"] is False
    assert trl["num_generations"] == 2 and trl["per_device_train_batch_size"] == 4 and trl["generation_batch_size"] == 4
    assert summary["settings"]["loss_agg_mode"] == "token-mean" and summary["settings"]["dataset_kwargs"] == {
        "redundancy": "none"}
    assert "| trl | sampled |" in (out / "summary.md").read_text()
    # the overrides reached parsimony's trainer only: its rollouts ran one step ahead
    assert summary["settings"]["parsimony_overrides"]["async_rollouts"] is True
    logged = [json.loads(x) for x in (out / "parsimony" / "metrics.jsonl").read_text().splitlines()]
    assert [r["async/staleness"] for r in logged if "async/staleness" in r] == [0.0, 1.0]
    assert "async_rollouts" in (out / "summary.md").read_text()


def test_compare_trl_rejects_bad_options(tmp_path):
    from rl.experiments.compare_trl import main

    with pytest.raises(SystemExit, match="frameworks"):
        main(["--frameworks", "parsimony,verl", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="dataset_kwargs"):
        main(["--dataset_kwargs", "{nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"ours-overrides: \['learning_rate'\] are shared settings"):
        main(["--ours-overrides", '{"learning_rate": 1.0}', "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"ours-overrides: \['hf_decod'\] are not GRPOConfig fields"):
        main(["--ours-overrides", '{"hf_decod": "compact"}', "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="ours-overrides: must be a JSON object"):
        main(["--ours-overrides", "[1]", "--out", str(tmp_path)])


def test_compare_trl_is_a_subcommand():
    from rl.commands.cli import SUBCOMMANDS

    assert SUBCOMMANDS["compare-trl"][0] == "rl.experiments.compare_trl"
