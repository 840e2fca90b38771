"""rl/methods/dereason.py: stage configs, token budgets (SFT steps for a budget; GRPO stopping at one, across
a resume), token counts from metrics, and the evaluation by difficulty bucket."""

from __future__ import annotations

import json
import os
import signal

import pytest

from rl.config import ConfigError, GRPOConfig, SFTConfig
from rl.methods.dereason import (
    StageInterrupted,
    build_config,
    evaluate_buckets,
    row_difficulty,
    sft_loss_tokens,
    sft_steps_for_tokens,
    stage_done,
    train_rl_stage,
    trained_tokens,
)

RL = {"num_generations": 2, "per_device_train_batch_size": 4, "max_completion_length": 12, "learning_rate": 1e-4,
      "logging_steps": 1, "report_to": ["jsonl"], "save_steps": 1, "save_total_limit": 0, "max_steps": 50,
      "disable_progress_bar": True}


def test_build_config_names_the_section():
    cfg = build_config(SFTConfig, {"max_steps": 3}, "sft", model="m", dataset="d", output_dir="o")
    assert cfg.max_steps == 3 and cfg.model == "m"
    with pytest.raises(ConfigError, match=r"sft: unknown key\(s\) \['max_stepz'\]"):
        build_config(SFTConfig, {"max_stepz": 3}, "sft", model="m", dataset="d", output_dir="o")
    with pytest.raises(ConfigError, match=r"rl: key\(s\) \['model'\] are set by the pipeline"):
        build_config(GRPOConfig, {"model": "x"}, "rl", model="m", dataset="d", output_dir="o")
    with pytest.raises(ConfigError, match="rl: num_generations"):
        build_config(GRPOConfig, {"num_generations": 1}, "rl", model="m", dataset="d", output_dir="o")


def test_sft_steps_for_tokens():
    assert sft_steps_for_tokens([10, 30], 2000, 10) == 10  # 10 rows x 20 tokens = 200 per step
    assert sft_steps_for_tokens([10, 30], 1, 10) == 1
    with pytest.raises(ValueError, match="empty"):
        sft_steps_for_tokens([], 100, 4)


def test_trained_tokens_reads_the_last_record_of_each_step(tmp_path):
    rows = [{"step": 1, "tokens": 10}, {"step": 2, "tokens": 20}, {"step": 2, "tokens": 25}, {"step": 3, "tokens": 5}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert trained_tokens(tmp_path, "tokens") == 40
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train_tokens": 7}\n{"step": 2, "train_tokens": 19}\n')
    assert trained_tokens(tmp_path, "train_tokens") == 19
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        trained_tokens(tmp_path / "nothing", "tokens")


def test_sft_loss_tokens_counts_the_completion(tiny_model_dir):
    from curriculum.tasks import get_task_dataset
    from rl.modeling import load_tokenizer

    ds = get_task_dataset("mixed", 4, seed=0)
    counts = sft_loss_tokens(tiny_model_dir, ds)
    tok = load_tokenizer(str(tiny_model_dir))
    for row, n in zip(ds, counts):  # the completion's tokens plus the eos
        assert n == len(tok(row["completion"][0]["content"], add_special_tokens=False)["input_ids"]) + 1


def test_row_difficulty():
    assert row_difficulty({"difficulty": 3, "extra_info": {"difficulty": 1}}) == 3
    assert row_difficulty({"extra_info": {"difficulty": 2}}) == 2
    assert row_difficulty({"extra_info": {}}) is None


def _interrupt_after(cls, step):
    original = cls.on_step_end

    def patched(self, metrics):
        original(self, metrics)
        if self.global_step == step:
            os.kill(os.getpid(), signal.SIGTERM)

    return original, patched


def test_rl_stops_at_the_token_budget_and_resumes_the_count(tmp_path, tiny_model_dir, monkeypatch):
    from curriculum.tasks import get_task_dataset
    from rl.methods.dereason import budget_grpo_trainer

    data = get_task_dataset("mixed", 16, seed=0)
    budget = 90  # 4 rollouts x <= 12 tokens per step: a few steps
    ref = train_rl_stage(RL, tiny_model_dir, data, tmp_path / "ref", token_budget=budget)
    assert stage_done(tmp_path / "ref") and ref == tmp_path / "ref" / "final"
    rows = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    tokens = [r["train_tokens"] for r in rows]
    assert tokens[-1] >= budget > tokens[-2]  # stopped at the first step that reached it
    assert len(rows) < RL["max_steps"]
    deltas = [b - a for a, b in zip([0.0] + tokens, tokens)]
    assert deltas == [r["completion/mean_length"] * 4 for r in rows]  # 2 prompts x G 2 rollouts per step

    cls = budget_grpo_trainer()
    original, patched = _interrupt_after(cls.__mro__[1], 1)  # GRPOTrainer.on_step_end, called via super()
    monkeypatch.setattr(cls.__mro__[1], "on_step_end", patched)
    with pytest.raises(StageInterrupted, match="interrupted at step 1"):
        train_rl_stage(RL, tiny_model_dir, data, tmp_path / "run", token_budget=budget)
    monkeypatch.setattr(cls.__mro__[1], "on_step_end", original)
    assert not stage_done(tmp_path / "run")
    train_rl_stage(RL, tiny_model_dir, data, tmp_path / "run", token_budget=budget)
    again = [json.loads(x)["train_tokens"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert again == tokens  # the count survived the resume, and the run stopped at the same step


def test_evaluate_buckets(tiny_model_dir):
    from curriculum.tasks import get_task_dataset

    rows = list(get_task_dataset("mixed", 8, seed=1, split="test"))
    res = evaluate_buckets(tiny_model_dir, rows, threshold=4, decodings=["greedy"], max_new_tokens=6)
    r = res["greedy"]
    hard = sum(row["extra_info"]["difficulty"] >= 4 for row in rows)
    assert (r["n"], r["n_hard"], r["n_easy"]) == (8, hard, 8 - hard)
    assert set(r["accuracy_by_difficulty"]) == {str(row["extra_info"]["difficulty"]) for row in rows}
    assert r["accuracy"] == 0.0 and r["accuracy_easy"] == 0.0  # an untrained model
    with pytest.raises(ConfigError, match="unknown decoding 'beam'"):
        evaluate_buckets(tiny_model_dir, rows, decodings=["beam"])
