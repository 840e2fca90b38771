"""The ``decs`` advantage estimator against hand-computed values, and the DECS recipes.

Conventions in the comments: b = decs_beta, r = outcome reward, L = response length,
L_max = padded batch width unless stated. NRP / non-redundant positions get R = r(1+b),
redundant positions of correct responses get R = r + b(1 - L/L_max). Per position, over
the group: A = (R - mean) / (unbiased std + eps); eps = 0 unless stated.

Useful hand results (unbiased std):
    [x, x, 0]         -> [1/sqrt3, 1/sqrt3, -2/sqrt3]        = [0.577350, 0.577350, -1.154701]
    [1.04, 1.1, 0]    mean 0.713333, devs [.326667, .386667, -.713333], ss 0.765067,
                      std sqrt(0.382533) = 0.618493          -> [0.528166, 0.625176, -1.153341]
    [1.07, 1.1, 0]    mean 0.723333, devs [.346667, .376667, -.723333], ss 0.785267,
                      std sqrt(0.392633) = 0.626605          -> [0.553246, 0.601123, -1.154370]
    [a, b] (a != b)   -> [-1/sqrt2, +1/sqrt2] if a < b       = [-0.707107, 0.707107]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rl.advantages import ADVANTAGES, get_advantage
from rl.batch import RolloutBatch
from rl.config import ConfigError, GRPOConfig, load_config
from rl.methods.decs import DECSSettings, decs, decs_token_rewards, position_group_mean_std

REPO = Path(__file__).resolve().parents[2]
S3, S2 = 3**0.5, 2**0.5


def make_batch(rewards, group_index, lengths, T, redundant_spans, completion_mask=None, name="decs_redundancy"):
    """redundant_spans: per row None or (first, last) inclusive token positions marked 1."""
    n = len(rewards)
    attn = torch.zeros(n, T, dtype=torch.long)
    red = torch.zeros(n, T)
    for i, L in enumerate(lengths):
        attn[i, :L] = 1
        if redundant_spans[i] is not None:
            a, b = redundant_spans[i]
            red[i, a : b + 1] = 1.0
    mask = attn.float() if completion_mask is None else torch.as_tensor(completion_mask, dtype=torch.float32)
    batch = RolloutBatch(
        prompt_ids=torch.zeros(n, 1, dtype=torch.long),
        prompt_mask=torch.ones(n, 1, dtype=torch.long),
        completion_ids=torch.zeros(n, T, dtype=torch.long),
        completion_mask=mask,
        attention_mask_completion=attn,
        group_index=torch.tensor(group_index, dtype=torch.long),
        role=torch.zeros(n, dtype=torch.long),
        truncated=torch.zeros(n, dtype=torch.bool),
        total_reward=torch.tensor(rewards, dtype=torch.float32),
    )
    if name is not None:
        batch.rewards = {"accuracy": torch.tensor(rewards, dtype=torch.float32), name: red}
    return batch


def cfg(eps=0.0, **method_kwargs):
    # the hand computations below use L_max = the batch width T (decs_l_max: batch); the default
    # (max_completion_length, the paper's) has its own tests at the end
    method_kwargs.setdefault("decs_l_max", "batch")
    return SimpleNamespace(advantage_eps=eps, max_completion_length=20, scale_rewards="group", method_kwargs=method_kwargs)


def three_rollout_group(**kw):
    # row 0: correct, L=6, redundant tokens 3..5;  row 1: correct, L=4, no redundancy;  row 2: wrong, L=10
    return make_batch([1.0, 1.0, 0.0], [0, 0, 0], [6, 4, 10], 10, [(3, 5), None, None], **kw)


def test_registered():
    entry = get_advantage("decs")
    assert ADVANTAGES["decs"] is entry and entry.fn is decs and entry.name == "decs"


def test_three_rollout_group_by_hand():
    batch = three_rollout_group()
    # token rewards, b=0.1, L_max=10 (decs_l_max: batch): base 1.1; row 0 redundant: 1 + 0.1(1 - 6/10) = 1.04; wrong: 0
    R = decs_token_rewards(batch, DECSSettings(l_max="batch"), cfg())
    assert torch.allclose(R[0], torch.tensor([1.1, 1.1, 1.1, 1.04, 1.04, 1.04, 1.1, 1.1, 1.1, 1.1], dtype=torch.float64))
    assert torch.allclose(R[1], torch.full((10,), 1.1, dtype=torch.float64))
    assert torch.equal(R[2], torch.zeros(10, dtype=torch.float64))

    A = decs(batch, cfg(decs_l_max="batch"))["main"]
    assert A.shape == (3, 10) and A.dtype == torch.float32
    a, c = 1 / S3, -2 / S3  # positions with R = [1.1, 1.1, 0]
    p, q, w = 0.528166, 0.625176, -1.153341  # positions with R = [1.04, 1.1, 0]
    expected = torch.tensor(
        [
            # 0  1  2  3  4  5  | 6..9: row 0 is padding (R stays 1.1 in the statistics, masked to 0)
            [a, a, a, p, p, p, 0, 0, 0, 0],
            [a, a, a, q, 0, 0, 0, 0, 0, 0],  # L=4: positions 4.. masked
            [c, c, c, w, w, w, c, c, c, c],
        ]
    )
    assert torch.allclose(A, expected, atol=1e-5)


def test_default_eps_is_advantage_eps():
    batch = three_rollout_group()
    A = decs(batch, SimpleNamespace(method_kwargs={"decs_l_max": "batch"}))["main"]  # no advantage_eps attribute: 1e-6
    # position 0: R = [1.1, 1.1, 0], std 0.635085 -> 0.366667 / (0.635085 + 1e-6)
    assert A[0, 0].item() == pytest.approx(0.366667 / 0.635086, abs=1e-5)


def test_l_max_max_completion_length_and_int():
    batch = three_rollout_group()
    # L_max = args.max_completion_length = 20: row 0 redundant R = 1 + 0.1(1 - 6/20) = 1.07
    A = decs(batch, cfg(decs_l_max="max_completion_length"))["main"]
    assert A[:, 3].tolist() == pytest.approx([0.553246, 0.601123, -1.154370], abs=1e-5)
    assert A[:, 0].tolist() == pytest.approx([1 / S3, 1 / S3, -2 / S3], abs=1e-5)
    B = decs(batch, cfg(decs_l_max=20))["main"]
    assert torch.allclose(A, B)
    with pytest.raises(ConfigError, match="decs_l_max"):
        decs(batch, SimpleNamespace(method_kwargs={"decs_l_max": "max_completion_length"}, max_completion_length=None))


def test_beta_setting():
    batch = three_rollout_group()
    # b = 0.5: base 1.5; redundant 1 + 0.5(1 - 0.6) = 1.2 -> R = [1.2, 1.5, 0]:
    # mean 0.9, devs [.3, .6, -.9], ss 1.26, std sqrt(0.63) = 0.793725
    A = decs(batch, cfg(decs_beta=0.5))["main"]
    assert A[:, 3].tolist() == pytest.approx([0.377964, 0.755929, -1.133893], abs=1e-5)
    # b = 0: R = r everywhere -> plain GRPO on [1, 1, 0]
    A0 = decs(batch, cfg(decs_beta=0.0))["main"]
    assert A0[:, 3].tolist() == pytest.approx([1 / S3, 1 / S3, -2 / S3], abs=1e-5)


def test_two_interleaved_groups_with_arbitrary_ids():
    # group 7 = rows 0, 2; group 3 = rows 1, 3 (T = 4 = L_max, b = 0.1)
    #   row 0: correct, L=4, redundant 2..3 -> 1 + 0.1(1 - 4/4) = 1.0   row 2: correct, L=2, none
    #   row 1: correct, L=3, redundant 1..2 -> 1 + 0.1(1 - 3/4) = 1.025 row 3: wrong, L=4
    batch = make_batch([1.0, 1.0, 1.0, 0.0], [7, 3, 7, 3], [4, 3, 2, 4], 4, [(2, 3), (1, 2), None, None])
    A = decs(batch, cfg())["main"]
    h = 1 / S2
    expected = torch.tensor(
        [
            [0, 0, -h, -h],  # group 7: pos 0,1 [1.1, 1.1] -> 0; pos 2,3 [1.0, 1.1 (row 2 padding)]
            [h, h, h, 0],  # group 3: [1.1|1.025|1.025|1.1 vs 0] -> +h; pos 3 masked (L=3)
            [0, 0, 0, 0],  # pos 2,3 would be +h but row 2 has L=2
            [-h, -h, -h, -h],
        ]
    )
    assert torch.allclose(A, expected, atol=1e-6)
    # constant positions are exactly 0, not float noise
    assert A[0, 0].item() == 0.0 and A[0, 1].item() == 0.0


def test_all_correct_group_only_length_varies_and_b_is_scale_free():
    # two correct rollouts: row 0 L=4 redundant 2..3 (1 + b(1 - 4/8)), row 1 L=8 redundant 4..7 (1 + b(1 - 1))
    batch = make_batch([1.0, 1.0], [0, 0], [4, 8], 8, [(2, 3), (4, 7)])
    h = 1 / S2
    expected = torch.tensor([[0, 0, -h, -h, 0, 0, 0, 0], [0, 0, h, h, -h, -h, -h, -h]])
    for b in (0.1, 0.01):
        A = decs(batch, cfg(decs_beta=b))["main"]
        assert torch.allclose(A, expected, atol=1e-6), b


def test_singleton_group_uses_mean_zero_std_one():
    # group 5 has one rollout: correct, L=3 of T=3, redundant token 2 -> R = [1.1, 1.1, 1.0]; A = R / (1 + eps)
    batch = make_batch([1.0, 1.0, 0.0], [5, 9, 9], [3, 3, 3], 3, [(2, 2), None, None])
    A = decs(batch, cfg())["main"]
    assert A[0].tolist() == pytest.approx([1.1, 1.1, 1.0], abs=1e-6)
    assert A[1].tolist() == pytest.approx([1 / S2] * 3, abs=1e-6)
    A = decs(batch, cfg(eps=0.1))["main"]
    assert A[0].tolist() == pytest.approx([1.0, 1.0, 1.0 / 1.1], abs=1e-6)


def test_completion_mask_is_applied():
    # same group, but row 0's tokens 1 and 4 are a tool observation (mask 0, still counted in L)
    mask = [[1, 0, 1, 1, 0, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0], [1] * 10]
    A = decs(three_rollout_group(completion_mask=mask), cfg())["main"]
    assert A[0].tolist() == pytest.approx([1 / S3, 0, 1 / S3, 0.528166, 0, 0.528166, 0, 0, 0, 0], abs=1e-5)


def test_missing_redundancy_reward_is_a_clear_error():
    batch = three_rollout_group()
    del batch.rewards["decs_redundancy"]
    with pytest.raises(ValueError, match="add 'decs_redundancy' to reward_funcs"):
        decs(batch, cfg())
    # a custom name is honoured
    batch = three_rollout_group(name="my_red")
    assert decs(batch, cfg(decs_redundancy_reward="my_red"))["main"].abs().sum() > 0
    with pytest.raises(ValueError, match="'my_red'"):
        decs(three_rollout_group(), cfg(decs_redundancy_reward="my_red"))
    # a sequence-level tensor under that name is rejected
    batch = three_rollout_group()
    batch.rewards["decs_redundancy"] = torch.zeros(3)
    with pytest.raises(ValueError, match="token-level"):
        decs(batch, cfg())


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"decs_beta": -0.1}, "decs_beta"),
        ({"decs_beta": "0.1"}, "decs_beta"),
        ({"decs_beta": True}, "decs_beta"),
        ({"decs_l_max": "longest"}, "decs_l_max"),
        ({"decs_l_max": 0}, "decs_l_max"),
        ({"decs_redundancy_reward": ""}, "decs_redundancy_reward"),
    ],
)
def test_settings_validation_names_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=f"method_kwargs.{key}"):
        DECSSettings.from_kwargs(kwargs)


def test_settings_defaults_and_unrelated_keys():
    s = DECSSettings.from_kwargs({"decs_judge": "endpoint", "decs_kappa_lr": 0.2})
    assert (s.beta, s.l_max, s.redundancy_reward) == (0.1, "max_completion_length", "decs_redundancy")


def test_position_group_mean_std_helper():
    v = torch.tensor([[1.0, 2.0], [3.0, 2.0], [5.0, 7.0]], dtype=torch.float64)
    mean, std, const = position_group_mean_std(v, torch.tensor([1, 1, 0]))
    assert mean.tolist() == [[2.0, 2.0], [2.0, 2.0], [0.0, 0.0]]
    assert torch.allclose(std, torch.tensor([[S2, 0.0], [S2, 0.0], [1.0, 1.0]], dtype=torch.float64))
    assert const.tolist() == [[False, True], [False, True], [False, False]]


# --- recipes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny", "r1-distill-qwen-1.5b", "r1-distill-qwen-7b"])
def test_recipes_parse(name, monkeypatch):
    from curriculum.decs_kappa import KappaSettings

    path = REPO / "recipes" / "decs" / f"{name}.yaml"
    if name != "tiny":  # the config (and --dry_run) resolves without a judge URL; the real run needs one
        monkeypatch.delenv("PARSIMONY_DECS_JUDGE_URL", raising=False)
        cfg_ = load_config(GRPOConfig, ["--config", str(path)])
        with pytest.raises(ConfigError, match="decs_judge_url.*PARSIMONY_DECS_JUDGE_URL"):
            get_advantage("decs").preflight(cfg_)  # run before the model loads
        monkeypatch.setenv("PARSIMONY_DECS_JUDGE_URL", "http://127.0.0.1:10041/v1")
        get_advantage("decs").preflight(cfg_)
    cfg_ = load_config(GRPOConfig, ["--config", str(path)])
    assert cfg_.method == "decs"
    assert cfg_.advantage_estimator == "decs" and cfg_.sampler == "decs_kappa"
    assert "decs_redundancy" in cfg_.reward_funcs and "accuracy" in cfg_.reward_funcs
    assert cfg_.loss_composition == "single"
    DECSSettings.from_args(cfg_)  # the method settings validate
    KappaSettings.from_args(cfg_)
    assert cfg_.method_kwargs["decs_beta"] == 0.1
    if name == "tiny":  # the settings of the tuning study (docs/decs.md, Results)
        assert cfg_.step_prompts == 8 and cfg_.num_generations == 8 and cfg_.max_completion_length == 256
        assert cfg_.learning_rate == 5e-5 and cfg_.dataset == "task:overthink_heavy"
        assert cfg_.method_kwargs["decs_kappa_init"] == 0.5 and cfg_.method_kwargs["decs_kappa_lr"] == 0.5
    else:
        assert cfg_.method_kwargs["decs_kappa_lr"] == 0.2  # the paper's
        # the paper: G = 16, 64 prompts per step on 8 processes, 16k responses, lr 2e-6 constant, T = 0.6
        assert cfg_.num_generations == 16 and cfg_.step_prompts * 8 == 64
        assert cfg_.max_completion_length == 16384 and cfg_.learning_rate == 2e-6
        assert cfg_.lr_scheduler_type == "constant" and cfg_.temperature == 0.6
        assert cfg_.bf16 and cfg_.gradient_checkpointing
        assert cfg_.method_kwargs["decs_judge"] == "endpoint"
        assert cfg_.model.startswith("deepseek-ai/DeepSeek-R1-Distill-Qwen-")
    assert {f.name for f in dataclasses.fields(GRPOConfig)} >= set(
        __import__("yaml").safe_load(path.read_text())
    )


def test_the_default_l_max_is_the_papers_maximum_response_length():
    """pixas/DECS pads every response to max_response_length before the reward, so its L_max is that length,
    not the batch's longest completion (audit item 1)."""
    batch = three_rollout_group()
    R = decs_token_rewards(batch, DECSSettings(), cfg())  # max_completion_length = 20
    # row 0 redundant: 1 + 0.1 (1 - 6/20) = 1.07 (with the batch width 10 it would be 1.04)
    assert torch.allclose(R[0, 3:6], torch.full((3,), 1.07, dtype=torch.float64))
    assert DECSSettings.from_kwargs({}).l_max == "max_completion_length"


def test_a_wrong_responses_tail_gets_no_length_reward_when_the_graders_disagree():
    """The redundancy reward grades on its own: where it marked a wrong response's tail, the paper's
    `score > 0` gate still gives that response r(1 + b) = 0 everywhere (audit item 2)."""
    batch = make_batch([0.0, 1.0], [0, 0], [6, 4], 6, [(2, 4), None])  # row 0: wrong, but marked redundant
    R = decs_token_rewards(batch, DECSSettings(), cfg())
    assert torch.equal(R[0], torch.zeros(6, dtype=torch.float64))  # was [0, 0, 0.05, 0.05, 0.05, 0]
    assert torch.allclose(R[1], torch.full((6,), 1.1, dtype=torch.float64))
