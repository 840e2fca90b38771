"""DLER's batch-wise normalisation, GFPO's subset selection, the presets' config-time checks, and a
2-step smoke run of every leaderboard preset on the tiny model."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from curriculum.samplers import ScoredGroup, get_assembler
from rl.config import ConfigError, GRPOConfig
from rl.methods.length import batch_normalized_advantage, dler, merge_groups, select_subset
from rl.presets import get_method
from rollout.types import Trajectory
from tests_helpers_grpo import make_cfg, make_dataset

# --- DLER ------------------------------------------------------------------------------------


def _batch(rewards, groups, T=3):
    from rl.batch import RolloutBatch

    n = len(rewards)
    return RolloutBatch(
        prompt_ids=torch.zeros(n, 1, dtype=torch.long), prompt_mask=torch.ones(n, 1, dtype=torch.long),
        completion_ids=torch.zeros(n, T, dtype=torch.long), completion_mask=torch.ones(n, T),
        attention_mask_completion=torch.ones(n, T, dtype=torch.long), group_index=torch.tensor(groups),
        role=torch.zeros(n, dtype=torch.long), truncated=torch.zeros(n, dtype=torch.bool),
        total_reward=torch.tensor(rewards, dtype=torch.float32),
    )


def test_dler_batch_normalisation_hand_computed():
    # groups [1, 0] and [1, 1]: centred [0.5, -0.5, 0, 0]; batch mean 0, unbiased std sqrt(0.5 / 3)
    adv = batch_normalized_advantage(torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64), torch.tensor([0, 0, 1, 1]),
                                     eps=0.0)
    s = math.sqrt(0.5 / 3)
    assert adv.tolist() == pytest.approx([0.5 / s, -0.5 / s, 0.0, 0.0])
    # GRPO's per-group std would give +-0.7071 here: the batch std is the same for every group
    out = dler(_batch([1.0, 0.0, 1.0, 1.0], [0, 0, 1, 1]), SimpleNamespace(advantage_eps=0.0))["main"]
    assert out.shape == (4, 3) and out[:, 0].tolist() == pytest.approx([0.5 / s, -0.5 / s, 0.0, 0.0])


def test_dler_scale_is_shared_across_groups():
    # a group with a tiny spread keeps a tiny advantage (GRPO would blow it up to +-0.707)
    r = torch.tensor([1.0, 0.0, 0.51, 0.49], dtype=torch.float64)
    adv = batch_normalized_advantage(r, torch.tensor([0, 0, 1, 1]), eps=0.0)
    s = torch.tensor([0.5, -0.5, 0.01, -0.01], dtype=torch.float64).std().item()
    assert adv.tolist() == pytest.approx([0.5 / s, -0.5 / s, 0.01 / s, -0.01 / s])
    assert batch_normalized_advantage(torch.ones(4, dtype=torch.float64), torch.tensor([0, 0, 1, 1])).tolist() == [0.0] * 4


# --- GFPO ------------------------------------------------------------------------------------


def _group(lengths, totals, gid=0, idx=0):
    trajs = [Trajectory(prompt_ids=[1], completion_ids=[5] * L, group_index=gid) for L in lengths]
    return ScoredGroup(prompt_index=idx, trajectories=trajs, rewards={"accuracy": list(totals)}, total=list(totals))


def test_gfpo_keeps_the_shortest_k_in_order():
    g = _group([30, 10, 50, 20, 40, 10], [1, 0, 1, 1, 0, 1])
    sub = select_subset(g, 3, "length")
    assert [len(t.completion_ids) for t in sub.trajectories] == [10, 20, 10]  # rows 1, 3, 5 (ties: earlier first)
    assert sub.total == [0, 1, 1] and sub.rewards["accuracy"] == [0, 1, 1]


def test_gfpo_token_efficiency_keeps_highest_reward_per_token():
    g = _group([10, 40, 20, 5], [1.0, 1.0, 1.0, 0.0])
    # reward / length: 0.1, 0.025, 0.05, 0.0 -> keep rows 0 and 2
    sub = select_subset(g, 2, "token_efficiency")
    assert [len(t.completion_ids) for t in sub.trajectories] == [10, 20]


def test_gfpo_merge_gives_one_group_id():
    a, b = _group([3, 4], [1, 0], gid=5), _group([1, 2], [0, 1], gid=6)
    m = merge_groups([a, b])
    assert [t.group_index for t in m.trajectories] == [5, 5, 5, 5] and m.total == [1, 0, 0, 1]


def test_gfpo_assembler_samples_factor_times_and_keeps_k():
    cfg = SimpleNamespace(num_generations=2, method_kwargs={"gfpo_sample_factor": 3, "gfpo_metric": "length"})
    asm = get_assembler("gfpo", cfg)
    calls = []

    def rollout(indices):  # each call returns one group of G=2 per index; lengths tell the rounds apart
        calls.append(list(indices))
        return [_group([10 + 10 * j, 5 + 10 * j], [1, 0], gid=j, idx=i) for j, i in enumerate(indices)]

    groups, metrics = asm.assemble(lambda k: [7, 8][:k], rollout, 2)
    assert calls == [[7, 7, 7, 8, 8, 8]]  # one generation call, each prompt rolled out 3 times
    assert len(groups) == 2 and all(len(g.trajectories) == 2 for g in groups)
    # prompt 7: lengths 10, 5, 20, 15, 30, 25 -> the two shortest, 10 and 5, in the first rollout group (id 0)
    assert [len(t.completion_ids) for t in groups[0].trajectories] == [10, 5]
    assert {t.group_index for t in groups[0].trajectories} == {0}
    assert [len(t.completion_ids) for t in groups[1].trajectories] == [40, 35]
    assert metrics["sampling/rollouts_per_prompt"] == 6 and metrics["gfpo/kept_mean_tokens"] == pytest.approx(22.5)


def test_gfpo_keep_more_than_sampled_fails():
    with pytest.raises(ConfigError, match="gfpo_keep"):
        get_assembler("gfpo", SimpleNamespace(num_generations=2, method_kwargs={"gfpo_sample_factor": 1, "gfpo_keep": 3}))


# --- presets ----------------------------------------------------------------------------------

NEW = ("cosine", "soft_overlong", "linear_pass_rate", "grpo_lead", "gfpo", "dler")


def test_presets_expand(tmp_path):
    c = GRPOConfig(model="m", output_dir=str(tmp_path), method="dler")
    assert (c.reward_funcs, c.advantage_estimator, c.sampler, c.epsilon_high) == (["dler_truncation"], "dler", "dynamic", 0.28)
    c = GRPOConfig(model="m", output_dir=str(tmp_path), method="dler", epsilon_high=0.2)  # explicit wins
    assert c.epsilon_high == 0.2
    c = GRPOConfig(model="m", output_dir=str(tmp_path), method="gfpo")
    assert c.sampler == "gfpo" and c.method_kwargs == {"gfpo_sample_factor": 2, "gfpo_metric": "length"}
    for name in NEW:
        assert get_method(name).description


@pytest.mark.parametrize("method,kwargs,key", [
    ("cosine", {"cosine_exceed": "low"}, "cosine_exceed"),
    ("soft_overlong", {"overlong_penalty_factor": -1}, "overlong_penalty_factor"),
    ("linear_pass_rate", {"pass_rate_length_ref": "nope"}, "pass_rate_length_ref"),
    ("grpo_lead", {"lead_eps": 0}, "lead_eps"),
    ("gfpo", {"gfpo_sample_factor": 0}, "gfpo_sample_factor"),
    ("dler", {"dler_length_cap": -3}, "dler_length_cap"),
    ("dler", {"gfpo_keep": 4}, "gfpo_keep"),  # a key no active piece reads
])
def test_bad_settings_fail_at_config_time(tmp_path, method, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        GRPOConfig(model="m", output_dir=str(tmp_path), method=method, method_kwargs=kwargs)


# --- 2-step smoke run of every leaderboard preset ---------------------------------------------


class ParityGrader:
    """Correct iff the completion text has an even length: varies within a group of a random model."""

    def grade(self, completions, ground_truths):
        from rewards.math import GradeResult

        return [GradeResult(1.0, "x", "correct") if len(c) % 2 == 0 else GradeResult(0.0, "y", "wrong")
                for c in completions]


@pytest.fixture
def parity_grader(monkeypatch):
    import rewards.decs.reward
    import rewards.length.base
    import rewards.math

    g = ParityGrader()
    for mod in (rewards.length.base, rewards.math, rewards.decs.reward):
        monkeypatch.setattr(mod, "get_default_grader", lambda mode="math": g)
    return g


def _leaderboard_methods():
    from rl.experiments.compare import EFFICIENCY_METHODS

    return EFFICIENCY_METHODS


@pytest.mark.parametrize("name", _leaderboard_methods())
def test_two_step_smoke(tiny_model_dir, tmp_path, parity_grader, name):
    from rl.experiments.compare import method_settings
    from rl.grpo_trainer import GRPOTrainer

    settings = method_settings(name, 2, 12, {"decs_beta": 0.1, "decs_kappa_init": 0.5, "decs_kappa_lr": 0.5,
                                              "decs_sampler": "decs_kappa"})
    if name == "adapt_think":  # R_ref: the board measures it on its own start (compare_starts.py); here the fallback
        settings["method_kwargs"] = {**settings.get("method_kwargs", {}), "adapt_think_ref_accuracy": "first_seen"}
    cfg = make_cfg(tiny_model_dir, tmp_path, max_steps=2, logging_steps=1, **settings)
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=make_dataset())
    summary = trainer.train()
    assert summary["global_step"] == 2
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(math.isfinite(r.get("loss", 0.0)) for r in rows)
    assert any("skipped" not in r for r in rows)  # at least one step trained
    if name == "gfpo":  # 2 x G sampled per prompt, G kept
        trained = [r for r in rows if "sampling/rollouts_per_prompt" in r]
        assert trained and trained[-1]["sampling/rollouts_per_prompt"] == 8
        assert trained[-1]["gfpo/kept_mean_tokens"] <= trained[-1]["gfpo/sampled_mean_tokens"]
