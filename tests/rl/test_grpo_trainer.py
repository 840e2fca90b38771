"""The GRPO loop on the tiny model: parameters move, zero advantages move nothing,
resume is exact, bad input fails early and clearly."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset

from curriculum.data import DatasetError
from rl.grpo_trainer import GRPOTrainer
from rl.modeling import ModelLoadError
from rl.rewarding import RewardError
from tests_helpers_grpo import constant_reward, make_cfg, make_dataset, make_lengths_uneven, params, token_sum_reward


def test_one_step_changes_parameters_and_logs(tiny_model_dir, tmp_path):
    cfg = make_cfg(tiny_model_dir, tmp_path)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
    before = params(trainer)
    summary = trainer.train()
    after = params(trainer)
    assert summary["global_step"] == 1
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2, "most parameters should move after one step"
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    m = rows[-1]
    for key in ("rewards/token_sum_reward/mean", "completion/mean_length", "completion/truncated_frac",
                "zero_std_frac", "clip_frac", "entropy", "grad_norm", "lr", "time/rollout", "time/reward",
                "time/update"):
        assert key in m, key
    assert m["advantages/main/abs_mean"] > 0


def test_zero_advantages_change_nothing(tiny_model_dir, tmp_path):
    cfg = make_cfg(tiny_model_dir, tmp_path, max_steps=2)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[constant_reward], args=cfg, train_dataset=make_dataset())
    before = params(trainer)
    trainer.train()
    after = params(trainer)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_gradient_accumulation_gives_the_full_batch_update(tiny_model_dir, tmp_path):
    # one step over 8 completions in one micro-batch == the same rollouts in 4 micro-batches of 2,
    # with the loss normalised by the whole batch's token count (not a mean of micro-batch means)
    def one_step(tag, micro, accum):
        cfg = make_cfg(tiny_model_dir, tmp_path / tag, per_device_train_batch_size=micro,
                       gradient_accumulation_steps=accum, max_grad_norm=0.0, learning_rate=1e-2,
                       adam_beta1=0.0, adam_beta2=0.0, adam_epsilon=1.0)  # SGD-like: the step is lr * g / (|g| + 1)
        trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
        make_lengths_uneven(trainer)  # completions of 2..12 tokens, so micro-batches differ
        lengths = []
        original = trainer.build_batch

        def recording(groups):
            batch = original(groups)
            lengths.append(batch.completion_mask.sum(dim=1).tolist())
            return batch

        trainer.build_batch = recording
        before = params(trainer)
        trainer.train()
        after = params(trainer)
        return {k: after[k] - before[k] for k in before}, lengths

    full, len_full = one_step("full", 8, 1)
    accum, len_accum = one_step("accum", 2, 4)
    assert len_full == len_accum  # the same rollouts
    total = sum(float(d.abs().sum()) for d in full.values())
    diff = sum(float((full[k] - accum[k]).abs().sum()) for k in full)
    assert total > 0 and diff < 1e-4 * total


def _run(model_dir, tmp_path, max_steps, resume=None, record=None):
    cfg = make_cfg(model_dir, tmp_path, max_steps=max_steps, save_steps=2, resume_from_checkpoint=resume,
                   save_total_limit=0)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset(10))
    original = trainer.rollout_and_score

    def recording(indices):
        record.append(list(indices))
        return original(indices)

    trainer.rollout_and_score = recording
    trainer.train()
    return params(trainer)


def test_exact_resume(tiny_model_dir, tmp_path):
    straight_prompts: list = []
    straight = _run(tiny_model_dir, tmp_path / "a", 4, record=straight_prompts)
    resumed_prompts: list = []
    _run(tiny_model_dir, tmp_path / "b", 2, record=resumed_prompts)
    assert (tmp_path / "b" / "run" / "checkpoint-2" / "model.safetensors").is_file()
    resumed = _run(tiny_model_dir, tmp_path / "b", 4, resume="latest", record=resumed_prompts)
    assert resumed_prompts == straight_prompts
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), f"{k} differs after resume"


def test_row_missing_answer_fails_before_training(tmp_path):
    ds = Dataset.from_list([{"prompt": "a", "answer": "1"}, {"prompt": "b", "answer": ""}])
    cfg = make_cfg("/does/not/matter", tmp_path)
    with pytest.raises(DatasetError, match="row 1 has no answer field"):
        GRPOTrainer(cfg.model, reward_funcs=[constant_reward], args=cfg, train_dataset=ds)


def test_row_missing_prompt_fails_before_training(tmp_path):
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": "x"}], "answer": "1"},
                            {"prompt": [], "answer": "2"}])
    cfg = make_cfg("/does/not/matter", tmp_path)
    with pytest.raises(DatasetError, match="row 1 field 'prompt' is an empty message list"):
        GRPOTrainer(cfg.model, reward_funcs=[constant_reward], args=cfg, train_dataset=ds)


def test_missing_model_path_is_one_clear_line(tmp_path):
    cfg = make_cfg(tmp_path / "no-such-model", tmp_path)
    with pytest.raises(ModelLoadError) as e:
        GRPOTrainer(cfg.model, reward_funcs=[constant_reward], args=cfg, train_dataset=make_dataset())
    assert "does not exist" in str(e.value) and "\n" not in str(e.value)


def test_nan_reward_raises_by_default_and_skips_when_configured(tiny_model_dir, tmp_path):
    calls = {"n": 0}

    def nan_once(prompts, completions, completion_ids, **kw):
        calls["n"] += 1
        out = token_sum_reward(prompts, completions, completion_ids)
        if calls["n"] == 1:
            out[0] = float("nan")
        return out

    cfg = make_cfg(tiny_model_dir, tmp_path)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[nan_once], args=cfg, train_dataset=make_dataset())
    with pytest.raises(RewardError, match="nan_once"):
        trainer.train()
    calls["n"] = 0
    cfg = make_cfg(tiny_model_dir, tmp_path / "skip", nonfinite_reward_policy="skip_batch")
    trainer = GRPOTrainer(cfg.model, reward_funcs=[nan_once], args=cfg, train_dataset=make_dataset())
    summary = trainer.train()
    assert summary["global_step"] == 1 and trainer.skipped_batches == 1 and calls["n"] == 2


def test_single_term_grpo_logs_the_loss(tiny_model_dir, tmp_path):
    # the progress bar's first key is "loss"; the single composition used to log none. On the first
    # (on-policy) iteration the ratio is 1, so the clipped token-mean loss is -sum(A m) / sum(m)
    cfg = make_cfg(tiny_model_dir, tmp_path, gradient_accumulation_steps=2, per_device_train_batch_size=4)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
    make_lengths_uneven(trainer)  # with equal lengths the token-mean of A would be 0
    batches = []
    original = trainer.build_batch

    def recording(groups):
        batches.append(original(groups))
        return batches[-1]

    trainer.build_batch = recording
    trainer.train()
    m = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    b = batches[0]
    expected = -float((b.advantages["main"] * b.completion_mask).sum() / b.completion_mask.sum())
    assert abs(expected) > 1e-4
    assert m["loss"] == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_rows_per_prompt_may_vary_and_group_index_is_kept(tiny_model_dir, tmp_path):
    # prompts_per_step is the batch-size rule: 2 prompts x G = 2, plus one executor-like row (role 1,
    # sub_group 0) in the first group: 5 rows, which "per-device batch divisible by G" would refuse
    from rl.advantages import group_mean_std
    from rollout.types import Trajectory

    cfg = make_cfg(tiny_model_dir, tmp_path, num_generations=2, per_device_train_batch_size=3, prompts_per_step=2)
    seen_meta = []

    def reads_meta(prompts, completions, completion_ids, meta, **kw):
        seen_meta.extend(meta)
        return token_sum_reward(prompts, completions, completion_ids)

    trainer = GRPOTrainer(cfg.model, reward_funcs=[reads_meta], args=cfg, train_dataset=make_dataset())
    generate = trainer.engine.generate

    def with_executor(prompt_ids, n, sampling):
        groups = generate(prompt_ids, n, sampling)
        t0 = groups[0][0]
        groups[0].append(Trajectory(prompt_ids=list(t0.prompt_ids), completion_ids=list(t0.completion_ids[:5]),
                                    role=1, sub_group=0, meta={"parent": 0, "tool_calls": 2}))
        return groups

    trainer.engine.generate = with_executor
    batches = []
    original = trainer.build_batch
    trainer.build_batch = lambda groups: batches.append(original(groups)) or batches[-1]
    before = params(trainer)
    trainer.train()
    b = batches[0]
    assert b.group_index.tolist() == [0, 0, 0, 1, 1]
    assert b.role.tolist() == [0, 0, 1, 0, 0] and b.sub_group.tolist() == [-1, -1, 0, -1, -1]
    assert [m["role"] for m in seen_meta] == [0, 0, 1, 0, 0] and seen_meta[2]["tool_calls"] == 2
    assert [m["group_index"] for m in seen_meta] == [0, 0, 0, 1, 1] and "prompt_index" in seen_meta[0]
    r = b.total_reward.double()
    mean, std = group_mean_std(r, b.group_index)
    assert mean[0] == r[:3].mean() and mean[3] == r[3:].mean()  # the group of 3 is normalised together
    expected = ((r - mean) / (std + cfg.advantage_eps)).float()
    assert torch.allclose(b.advantages["main"][:, 0], expected * b.completion_mask[:, 0], atol=1e-6)
    assert any(not torch.equal(before[k], v) for k, v in params(trainer).items())
    # build_batch keeps the group ids it is given (it used to renumber them 0, 1, ...)
    groups = trainer.rollout_and_score([0, 1])
    for g, gid in zip(groups, (7, 3)):
        for traj in g.trajectories:
            traj.group_index = gid
    assert original(groups).group_index.tolist() == [7, 7, 7, 3, 3]


def test_text_metrics_against_the_advantage_by_hand():
    """text/<name>/adv_corr: both centred within their group, then correlated over the batch."""
    from rl.batch import RolloutBatch
    from rl.batch_metrics import text_metric_stats

    n, t = 4, 3
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]], dtype=torch.float32)
    adv = torch.tensor([1.0, -1.0, 2.0, 0.0])[:, None] * mask  # sequence advantages 1, -1, 2, 0
    batch = RolloutBatch(prompt_ids=torch.zeros(n, 1, dtype=torch.long), prompt_mask=torch.ones(n, 1, dtype=torch.long),
                         completion_ids=torch.zeros(n, t, dtype=torch.long), completion_mask=mask,
                         attention_mask_completion=mask.long(), group_index=torch.tensor([0, 0, 1, 1]),
                         role=torch.zeros(n, dtype=torch.long), truncated=torch.zeros(n, dtype=torch.bool),
                         meta=[{"text_metrics": {"rechecks": r}} for r in (0.0, 2.0, 3.0, 1.0)],
                         advantages={"main": adv})
    m = text_metric_stats(batch)
    # centred in their groups: rechecks (-1, 1, 1, -1), advantages (1, -1, 1, -1): the products sum to
    # (-1) + (-1) + 1 + 1 = 0, so no correlation
    assert m["text/rechecks/mean"] == 1.5 and m["text/rechecks/adv_corr"] == 0.0
    batch.meta = [{"text_metrics": {"rechecks": r}} for r in (2.0, 0.0, 3.0, 1.0)]  # more re-checks, higher advantage
    assert text_metric_stats(batch)["text/rechecks/adv_corr"] == pytest.approx(1.0)
    batch.meta = [{"text_metrics": {"rechecks": 1.0}}] * n  # no variance: the mean only
    assert text_metric_stats(batch) == {"text/rechecks/mean": 1.0}
    batch.meta = [{}] * n
    assert text_metric_stats(batch) == {}


def test_an_embedded_task_logs_its_text_metrics(tiny_model_dir, tmp_path):
    cfg = make_cfg(tiny_model_dir, tmp_path, dataset="task:explore", dataset_num_examples=8, max_completion_length=8)
    GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg).train()
    m = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert m["text/tries/mean"] >= 0 and "text/guess/mean" in m
    cfg = make_cfg(tiny_model_dir, tmp_path / "given", dataset="task:explore")  # a given dataset: its own rows
    GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset()).train()
    assert not any(k.startswith("text/") for k in json.loads((tmp_path / "given" / "run" / "metrics.jsonl").read_text().splitlines()[-1]))


def _budget_run(model_dir, tmp_path, max_steps, budget, resume=None):
    """A run with ``max_generated_tokens``; returns (summary, params, per-step token counts counted here
    from the engine's own output, the logged rows)."""
    cfg = make_cfg(model_dir, tmp_path, max_steps=max_steps, max_generated_tokens=budget, save_steps=1,
                   save_total_limit=0, save_final=True, resume_from_checkpoint=resume)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset(10))
    make_lengths_uneven(trainer)  # 2..12 tokens a completion: the count is not a multiple of one length
    seen: list[int] = []
    generate = trainer.engine.generate

    def counting(prompt_ids, n, sampling):
        groups = generate(prompt_ids, n, sampling)
        for g in groups:  # an environment's observation token in one rollout a group: the policy did not write it
            g[0].completion_mask[-1] = 0
        seen.append(sum(sum(t.completion_mask) for g in groups for t in g))
        return groups

    trainer.engine.generate = counting
    summary = trainer.train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return summary, params(trainer), seen, [r for r in rows if "tokens/generated" in r]


def test_a_generated_token_budget_ends_the_run_after_the_step_that_reaches_it_and_resumes_exactly(tiny_model_dir, tmp_path):
    # 8 completions of 2..12 tokens a step (52 a step with make_lengths_uneven's cuts when none ends early): a budget
    # of 120 is reached in the third step, well before max_steps 10
    summary, straight, seen, rows = _budget_run(tiny_model_dir, tmp_path / "a", 10, 120)
    totals = [r["tokens/generated"] for r in rows]
    assert totals == [float(sum(seen[: i + 1])) for i in range(len(seen))]  # the engine's tokens, cumulated
    assert summary["budget_spent"] and not summary["interrupted"]
    assert summary["global_step"] == len(seen) < 10
    assert totals[-1] >= 120 > totals[-2]  # it stopped at the first step that reached the budget
    assert (tmp_path / "a" / "run" / "final" / "model.safetensors").is_file()
    # stopped after step 1 by max_steps, then resumed with the budget: the same steps, the same weights
    first, _, _, _ = _budget_run(tiny_model_dir, tmp_path / "b", 1, 120)
    assert first["global_step"] == 1 and not first["budget_spent"]
    resumed, weights, _, rows_b = _budget_run(tiny_model_dir, tmp_path / "b", 10, 120, resume="latest")
    assert resumed["global_step"] == summary["global_step"] and rows_b[-1]["tokens/generated"] == totals[-1]
    assert all(torch.equal(straight[k], weights[k]) for k in straight)
    # a run resumed when its budget is already spent trains no further step
    again, _, seen_c, _ = _budget_run(tiny_model_dir, tmp_path / "b", 10, 120, resume="latest")
    assert again["global_step"] == summary["global_step"] and seen_c == []


def test_a_negative_token_budget_is_one_clear_line(tmp_path):
    from rl.config_fields import ConfigError

    with pytest.raises(ConfigError, match="max_generated_tokens: must be >= 0"):
        make_cfg("/does/not/matter", tmp_path, max_generated_tokens=-1)
