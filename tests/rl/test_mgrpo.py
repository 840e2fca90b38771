"""M-GRPO by hand: the main and executor rewards, trajectory alignment (d < D, d = D, d > D, d = 0)
with exact counts, hierarchical advantages, the preset; and the trainer on scripted planner/executor
episodes (aligned batch sizes, per-role advantages) and on the HF engine."""

from __future__ import annotations

import math

import pytest
import torch

from curriculum.samplers import ScoredGroup
from rewards.mgrpo import MGRPOReward, executor_reward, main_reward
from rl.config import ConfigError, GRPOConfig
from rl.methods.mgrpo import align_group, align_positions, alignment_rng, hierarchical_advantage, prepare_groups, resolve_d_max
from rollout.types import Trajectory


def test_main_reward_and_executor_reward_composition():
    assert main_reward(False, False) == 0.0 and main_reward(True, False) == pytest.approx(0.1)
    assert main_reward(True, True) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="correct implies format_ok"):
        main_reward(False, True)
    assert executor_reward(False, 1.0, 1.0) == 0.0  # invalid format: 0 whatever the parent did
    assert executor_reward(True, 0.1, 1.0) == pytest.approx(0.1)  # defaults w_main 1, w_local 0
    assert executor_reward(True, 0.1, 1.0, w_main=0.5, w_local=0.5) == pytest.approx(0.55)
    # a well-formatted executor whose planner scored R_M = 0 gets MrlX's 0.1 (audit item 5), or 0 when asked
    assert executor_reward(True, 0.0, None) == pytest.approx(0.1)
    assert executor_reward(True, 0.0, 1.0, w_local=0.5) == pytest.approx(0.6)
    assert executor_reward(True, 0.0, None, parent_zero=0.0) == 0.0
    assert executor_reward(False, 0.0, None) == 0.0  # its own format invalid: still 0
    assert executor_reward(True, 1.0, None, w_main=0.5, w_local=0.5) == pytest.approx(0.5)


def test_mgrpo_reward_reads_parents_from_the_call_or_from_meta():
    fn = MGRPOReward(w_main=1.0, w_local=0.5)
    comps = ["so \\boxed{26}", "\\boxed{25}", "no box", "<result>6</result>", "x", "<result>6</result>"]
    meta = [
        {"role": 0, "group_index": 0, "sub_group": 0}, {"role": 0, "group_index": 0, "sub_group": 1},
        {"role": 0, "group_index": 1, "sub_group": 0},
        {"role": 1, "group_index": 0, "sub_group": 1, "executor_format_ok": True, "executor_r_local": 1.0},
        {"role": 1, "group_index": 0, "sub_group": 0, "executor_format_ok": False, "executor_r_local": 0.0},
        {"role": 1, "group_index": 5, "sub_group": 0, "executor_format_ok": True, "executor_r_local": 0.0,
         "parent_main_reward": 1.0},  # decoupled: its parent is not in this call
    ]
    gts = [{"ground_truth": "26"}] * 2 + [{"ground_truth": "7"}] + [{"ground_truth": "26"}] * 3
    out = fn(prompts=[""] * 6, completions=comps, completion_ids=[[]] * 6, meta=meta, reward_model=gts)
    assert out == pytest.approx([1.0, 0.1, 0.0, 0.1 + 0.5 * 1.0, 0.0, 1.0])
    m = fn.pop_meta()
    assert m[0] == {"mgrpo_format_ok": True, "mgrpo_correct": True} and m[3] == {"parent_main_reward": pytest.approx(0.1)}
    with pytest.raises(ValueError, match="no parent planner rollout"):
        fn(prompts=[""], completions=["x"], completion_ids=[[]], reward_model=[{"ground_truth": "1"}],
           meta=[{"role": 1, "group_index": 0, "sub_group": 3, "executor_format_ok": True}])


def test_align_positions_exact_counts():
    rng = alignment_rng(0, 0, 0, 0)
    assert align_positions(0, 3, rng) == []  # no call: no executor sample
    assert align_positions(3, 3, rng) == [0, 1, 2]  # d = D: as they are
    for d, D in [(1, 4), (2, 3), (2, 7)]:  # d < D: all d kept, D - d copies from the same rollout
        pos = align_positions(d, D, alignment_rng(1, 2, 3, d))
        assert len(pos) == D and pos[:d] == list(range(d)) and all(0 <= p < d for p in pos[d:])
    for d, D in [(5, 2), (4, 3), (9, 1)]:  # d > D: a random D kept, in call order, no repeats
        pos = align_positions(d, D, alignment_rng(1, 2, 3, d))
        assert len(pos) == D and pos == sorted(set(pos)) and all(0 <= p < d for p in pos)
    # seeded by position only: the same draws again (resumable), other draws elsewhere
    a = [align_positions(6, 3, alignment_rng(7, s, 1, 2)) for s in range(8)]
    assert a == [align_positions(6, 3, alignment_rng(7, s, 1, 2)) for s in range(8)] and len({tuple(x) for x in a}) > 1
    with pytest.raises(ValueError):
        align_positions(1, 0, rng)


def test_resolve_d_max():
    assert resolve_d_max(3, [0, 9], cap=2) == 3
    assert resolve_d_max("auto", [1, 3, 0, 2, 5], cap=8) == 2  # median_low of [1, 2, 3, 5]
    assert resolve_d_max("auto", [4, 4, 6], cap=3) == 3 and resolve_d_max("auto", [0, 0], cap=3) == 1


def _traj(role, sub, reward_tag, call=0):
    return Trajectory(prompt_ids=[1], completion_ids=[2, 3], role=role, sub_group=sub,
                      meta={"tag": reward_tag, "call_index": call})


def _group(calls, prompt_index=0):
    """K = len(calls) planner rollouts; rollout k has calls[k] executor children (reward 10k + call)."""
    trajs = [_traj(0, k, f"p{k}") for k in range(len(calls))]
    trajs += [_traj(1, k, f"e{k}.{c}", c) for k, d in enumerate(calls) for c in range(d)]
    total = [float(k) for k in range(len(calls))] + [10.0 * k + c for k, d in enumerate(calls) for c in range(d)]
    return ScoredGroup(prompt_index=prompt_index, trajectories=trajs, rewards={"r": list(total)}, total=total)


def test_align_group_d_less_equal_more_and_zero():
    g, counts = align_group(_group([1, 2, 4, 0]), d_max=2, seed=0, step=0)
    assert counts == {"calls": 7, "samples": 6, "dropped": 2, "duplicated": 1, "zero_call_rollouts": 1, "planners": 4}
    tags = [t.meta["tag"] for t in g.trajectories]
    assert tags[:4] == ["p0", "p1", "p2", "p3"]  # planners first, unchanged
    assert tags[4:6] == ["e0.0", "e0.0"]  # d = 1 < 2: its one trajectory and a copy
    assert tags[6:8] == ["e1.0", "e1.1"]  # d = D
    kept = tags[8:10]
    assert len(set(kept)) == 2 and all(t.startswith("e2.") for t in kept) and kept == sorted(kept)  # d = 4 > 2
    assert [t.meta.get("aligned_copy", False) for t in g.trajectories[4:]] == [False, True, False, False, False, False]
    # rewards and totals follow the rows
    assert g.total == g.rewards["r"] and g.total[4:8] == [0.0, 0.0, 10.0, 11.0]
    assert all(g.total[8 + i] == 20.0 + int(kept[i].split(".")[1]) for i in range(2))
    # every prompt: exactly (K - zero-call rollouts) * D executor samples, however the calls fall
    class Cfg:
        seed, method_kwargs = 3, {"mgrpo_d_max": 3}
    out, m = prepare_groups([_group([1, 2, 4, 0], 0), _group([3, 5, 1, 1], 1)], Cfg(), step=4)
    assert [sum(t.role == 1 for t in x.trajectories) for x in out] == [3 * 3, 4 * 3]
    assert m["mgrpo/d_max"] == 3 and m["mgrpo/executor_samples"] == 21 and m["mgrpo/zero_call_rollouts"] == 1
    assert m["mgrpo/executor_dropped"] == (4 - 3) + (5 - 3) and m["mgrpo/executor_duplicated"] == 2 + 1 + 2 + 2
    again, _ = prepare_groups([_group([1, 2, 4, 0], 0), _group([3, 5, 1, 1], 1)], Cfg(), step=4)
    assert [[t.meta["tag"] for t in x.trajectories] for x in again] == [[t.meta["tag"] for t in x.trajectories] for x in out]


def test_hierarchical_advantage_by_hand():
    # prompt 0: planners [1, 0], executors [1, 1, 0, 0]; prompt 1: planners [0.1, 0.1] (equal), one executor 0.4
    r = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.1, 0.1, 0.4])
    g = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1])
    role = torch.tensor([0, 0, 1, 1, 1, 1, 0, 0, 1])
    a = hierarchical_advantage(r, g, role, eps=1e-6)
    p = 0.5 / math.sqrt(0.5)  # (1 - 0.5) / std([1, 0]) = 1/sqrt(2)
    e = 0.5 / math.sqrt(1 / 3)  # (1 - 0.5) / std([1, 1, 0, 0]) = sqrt(3)/2
    assert a.tolist() == pytest.approx([p, -p, e, e, -e, -e, 0.0, 0.0, 0.4 / (1 + 1e-6)], rel=1e-5)
    assert hierarchical_advantage(r, g, role, mode="none").tolist() == pytest.approx(
        [0.5, -0.5, 0.5, 0.5, -0.5, -0.5, 0.0, 0.0, 0.4])


def test_the_preset_expands_and_settings_are_checked(tiny_model_dir, tmp_path):
    cfg = GRPOConfig(model=str(tiny_model_dir), output_dir=str(tmp_path), method="mgrpo")
    assert cfg.reward_funcs == ["mgrpo_reward"] and cfg.advantage_estimator == "mgrpo"
    assert cfg.environment == "planner" and "planner" in cfg.system_prompt
    assert cfg.method_kwargs == {"mgrpo_d_max": "auto", "mgrpo_d_max_cap": 8, "mgrpo_w_main": 1.0, "mgrpo_w_local": 0.0,
                                 "mgrpo_parent_zero_reward": 0.1}
    with pytest.raises(ConfigError, match="mgrpo_d_max"):
        GRPOConfig(model=str(tiny_model_dir), output_dir=str(tmp_path), method="mgrpo", method_kwargs={"mgrpo_d_max": 0})
    with pytest.raises(ConfigError, match="mgrpo_w_local"):
        GRPOConfig(model=str(tiny_model_dir), output_dir=str(tmp_path), method="mgrpo",
                   method_kwargs={"mgrpo_w_main": 0, "mgrpo_w_local": 0})
