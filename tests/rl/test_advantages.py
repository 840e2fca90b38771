"""Advantage estimators against hand-computed values.

Main fixture: two groups of 4, interleaved (rows 0,2,4,6 = group 0, rows 1,3,5,7 = group 1).

    group 0 rewards [1, 0, 0, 1]: mean 0.5,  deviations +-0.5,             unbiased std sqrt(1/3)
    group 1 rewards [1, 1, 1, 0]: mean 0.75, deviations [.25,.25,.25,-.75], unbiased std 0.5
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from rl.advantages import (
    ADVANTAGES,
    broadcast_to_tokens,
    get_advantage,
    group_mean_std,
    register_advantage,
)
from rl.batch import RolloutBatch


def make_batch(rewards, group_index, mask=None, T=3):
    n = len(rewards)
    if mask is None:
        mask = torch.ones(n, T)
    mask = torch.as_tensor(mask, dtype=torch.float32)
    T = mask.shape[1]
    return RolloutBatch(
        prompt_ids=torch.zeros(n, 1, dtype=torch.long),
        prompt_mask=torch.ones(n, 1, dtype=torch.long),
        completion_ids=torch.zeros(n, T, dtype=torch.long),
        completion_mask=mask,
        attention_mask_completion=torch.ones(n, T, dtype=torch.long),
        group_index=torch.tensor(group_index, dtype=torch.long),
        role=torch.zeros(n, dtype=torch.long),
        truncated=torch.zeros(n, dtype=torch.bool),
        total_reward=torch.tensor(rewards, dtype=torch.float32),
    )


REWARDS = [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
GROUPS = [0, 1, 0, 1, 0, 1, 0, 1]
H = math.sqrt(3) / 2  # 0.5 / sqrt(1/3)


def cfg(**kw):
    base = dict(scale_rewards="group", advantage_eps=0.0)
    base.update(kw)
    return SimpleNamespace(**base)


def per_row(adv):
    """[N, T] with a full mask -> [N] (and check every token of a row is equal)."""
    assert torch.equal(adv, adv[:, :1].expand_as(adv))
    return adv[:, 0]


def close(a, b, tol=1e-6):
    assert torch.allclose(a.double(), torch.tensor(b, dtype=torch.float64), atol=tol, rtol=0), (a, b)


def test_grpo_group_scaling():
    out = get_advantage("grpo")(make_batch(REWARDS, GROUPS), cfg())
    assert set(out) == {"main"} and out["main"].shape == (8, 3)
    close(per_row(out["main"]), [H, 0.5, -H, 0.5, -H, 0.5, H, -1.5])


def test_grpo_eps_is_added_to_std():
    out = get_advantage("grpo")(make_batch(REWARDS, GROUPS), cfg(advantage_eps=0.5))
    # group 1: std 0.5 -> divide by 1.0; group 0: 0.5 / (sqrt(1/3) + 0.5)
    g0 = 0.5 / (math.sqrt(1 / 3) + 0.5)
    close(per_row(out["main"]), [g0, 0.25, -g0, 0.25, -g0, 0.25, g0, -0.75])


def test_grpo_default_eps_is_small():
    c = SimpleNamespace()  # nothing set: scale_rewards=group, eps=1e-6
    out = get_advantage("grpo")(make_batch(REWARDS, GROUPS), c)
    close(per_row(out["main"]), [H, 0.5, -H, 0.5, -H, 0.5, H, -1.5], tol=1e-5)


def test_grpo_batch_scaling():
    # all 8 rewards: five 1s, three 0s -> mean 0.625, sum sq dev 5*.375^2 + 3*.625^2 = 1.875,
    # unbiased var 1.875 / 7; the mean stays per group
    s = math.sqrt(1.875 / 7)
    out = get_advantage("grpo")(make_batch(REWARDS, GROUPS), cfg(scale_rewards="batch"))
    a, b, c = 0.5 / s, 0.25 / s, 0.75 / s
    close(per_row(out["main"]), [a, b, -a, b, -a, b, a, -c])


def test_grpo_batch_scaling_uses_the_global_batch_under_ddp():
    """Another process holds rewards [0, 0, 1, 1]: the std is over all 12 rows, the mean per group."""
    batch = make_batch(REWARDS, GROUPS)
    batch.global_total_reward = torch.tensor(REWARDS + [0.0, 0.0, 1.0, 1.0])
    pool = torch.tensor(REWARDS + [0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    s = float(pool.std())  # 7 ones, 5 zeros: mean 7/12, unbiased
    assert s == pytest.approx(math.sqrt((7 * (5 / 12) ** 2 + 5 * (7 / 12) ** 2) / 11))
    out = get_advantage("grpo")(batch, cfg(scale_rewards="batch"))
    close(per_row(out["main"]), [x / s for x in [0.5, 0.25, -0.5, 0.25, -0.5, 0.25, 0.5, -0.75]])


def test_grpo_no_scaling():
    out = get_advantage("grpo")(make_batch(REWARDS, GROUPS), cfg(scale_rewards="none"))
    close(per_row(out["main"]), [0.5, 0.25, -0.5, 0.25, -0.5, 0.25, 0.5, -0.75])


def test_grpo_unknown_scale_raises():
    with pytest.raises(ValueError, match="scale_rewards"):
        get_advantage("grpo")(make_batch(REWARDS, GROUPS), cfg(scale_rewards="global"))


def test_dr_grpo_ignores_scale_rewards():
    for mode in ("group", "batch", "none"):
        out = get_advantage("dr_grpo")(make_batch(REWARDS, GROUPS), cfg(scale_rewards=mode))
        close(per_row(out["main"]), [0.5, 0.25, -0.5, 0.25, -0.5, 0.25, 0.5, -0.75])


def test_rloo_leave_one_out():
    # group 0, r=1: others [0,0,1] mean 1/3 -> 2/3;  r=0: others [1,0,1] mean 2/3 -> -2/3
    # group 1, r=1: others [1,1,0] mean 2/3 -> 1/3;  r=0: others [1,1,1] mean 1 -> -1
    out = get_advantage("rloo")(make_batch(REWARDS, GROUPS), cfg())
    t = 1 / 3
    close(per_row(out["main"]), [2 * t, t, -2 * t, t, -2 * t, t, 2 * t, -1.0])


# Ragged, unsorted, non-contiguous ids: group 9 = rows 0,2,5 rewards [3,0,0];
# group 4 = rows 1,4 rewards [1,2]; group 2 = row 3 (singleton) reward 5.
RAGGED_R = [3.0, 1.0, 0.0, 5.0, 2.0, 0.0]
RAGGED_G = [9, 4, 9, 2, 4, 9]


def test_group_mean_std_ragged_unsorted_and_singleton():
    mean, std = group_mean_std(torch.tensor(RAGGED_R), torch.tensor(RAGGED_G))
    # group 9: mean 1, dev [2,-1,-1], ss 6, var 3; group 4: mean 1.5, var 0.5; singleton: 0 and 1
    close(mean, [1.0, 1.5, 1.0, 0.0, 1.5, 1.0])
    r3, rh = math.sqrt(3), math.sqrt(0.5)
    close(std, [r3, rh, r3, 1.0, rh, r3])


def test_grpo_ragged_unsorted_and_singleton():
    out = get_advantage("grpo")(make_batch(RAGGED_R, RAGGED_G), cfg())
    r3, rh = math.sqrt(3), math.sqrt(0.5)
    close(per_row(out["main"]), [2 / r3, -0.5 / rh, -1 / r3, 5.0, 0.5 / rh, -1 / r3])


def test_rloo_ragged_and_singleton_is_zero():
    # group 9: r=3 vs others [0,0] -> 3; r=0 vs others [3,0] -> -1.5. group 4: 1-2=-1, 2-1=1
    out = get_advantage("rloo")(make_batch(RAGGED_R, RAGGED_G), cfg())
    close(per_row(out["main"]), [3.0, -1.0, -1.5, 0.0, 1.0, -1.5])


def test_order_does_not_matter():
    """Permuting rows permutes the advantages and nothing else."""
    perm = [5, 3, 0, 4, 1, 2]
    for name in ("grpo", "dr_grpo", "rloo"):
        a = per_row(get_advantage(name)(make_batch(RAGGED_R, RAGGED_G), cfg())["main"])
        b = per_row(
            get_advantage(name)(
                make_batch([RAGGED_R[i] for i in perm], [RAGGED_G[i] for i in perm]), cfg()
            )["main"]
        )
        assert torch.allclose(a[perm], b), name


def test_zero_variance_group_is_zero_not_nan():
    out = get_advantage("grpo")(make_batch([1.0, 1.0, 0.0, 0.0], [0, 0, 1, 1]), SimpleNamespace())
    assert torch.equal(out["main"], torch.zeros(4, 3))


def test_completion_mask_is_applied():
    # row 0: 3 tokens with a tool observation at t=1; row 1: 2 tokens then padding
    mask = [[1, 0, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]
    b = make_batch([1.0, 0.0, 0.0, 1.0], [0, 0, 0, 0], mask=mask)
    # one group [1,0,0,1]: mean .5, std sqrt(1/3) -> +-sqrt(3)/2 (the mask does not change the stats)
    for name in ("grpo", "dr_grpo", "rloo"):
        out = get_advantage(name)(b, cfg())["main"]
        assert out.dtype == torch.float32 and out.shape == (4, 4)
        assert torch.equal(out == 0, torch.tensor(mask) == 0), name
    out = get_advantage("grpo")(b, cfg())["main"]
    close(out, [[H, 0, H, H], [-H, -H, 0, 0], [-H, -H, -H, -H], [0, 0, 0, 0]])


def test_broadcast_to_tokens():
    out = broadcast_to_tokens(torch.tensor([2.0, -1.0]), torch.tensor([[1, 1, 0], [0, 1, 1]]))
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.tensor([[2.0, 2.0, 0.0], [0.0, -1.0, -1.0]]))


def test_missing_total_reward_raises():
    b = make_batch(REWARDS, GROUPS)
    b.total_reward = None
    with pytest.raises(ValueError, match="total_reward"):
        get_advantage("grpo")(b, cfg())


def test_registry_duplicate_and_unknown():
    assert {"grpo", "dr_grpo", "rloo"} <= set(ADVANTAGES)
    with pytest.raises(ValueError, match="already registered"):
        register_advantage("grpo")(lambda batch, cfg: {})
    with pytest.raises(ValueError, match=r"unknown advantage estimator 'nope'.*grpo"):
        get_advantage("nope")
    try:
        @register_advantage("_test_const")
        def const(batch, cfg):
            return {"main": broadcast_to_tokens(torch.ones(batch.num_rollouts), batch.completion_mask)}

        entry = get_advantage("_test_const")
        assert entry.fn is const and entry.name == "_test_const"
        b = make_batch(REWARDS, GROUPS)
        assert torch.equal(entry(b, cfg())["main"], const(b, cfg())["main"])
        groups = [object()]
        assert entry.prepare_groups(groups, cfg(), 0) == (groups, {})  # no preparation declared: identity
    finally:
        ADVANTAGES.pop("_test_const", None)


def test_an_estimator_declares_its_group_preparation():
    calls = []

    def prepare(groups, cfg, step):
        calls.append(step)
        return groups[:1], {"prepared": 1.0}

    try:
        @register_advantage("_test_prepared", prepare_groups=prepare)
        def const(batch, cfg):
            return {"main": torch.zeros_like(batch.completion_mask)}

        assert get_advantage("_test_prepared").prepare_groups(["a", "b"], cfg(), 7) == (["a"], {"prepared": 1.0})
        assert calls == [7]
        assert not hasattr(const, "prepare_groups")  # nothing is attached to the function
    finally:
        ADVANTAGES.pop("_test_prepared", None)
