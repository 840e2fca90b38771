"""The leaderboard's length-efficiency rewards against hand-computed values on small groups.

A fake grader (correct iff the text contains ``\\boxed{<ground truth>}``) keeps these pure.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from rewards import REWARDS, get_reward_func
from rewards.length.published import (
    CosineLengthReward,
    DLERTruncationReward,
    GRPOLeadReward,
    LinearPassRateReward,
    SoftOverlongReward,
    cosine_interp,
    group_keys,
    soft_overlong_penalty,
)
from rewards.math import GradeResult

EOS = 2


class FakeGrader:
    def grade(self, completions, ground_truths):
        return [GradeResult(1.0, gt, "correct") if f"\\boxed{{{gt}}}" in c else GradeResult(0.0, None, "wrong")
                for c, gt in zip(completions, ground_truths)]


R, W = "so \\boxed{4}", "so \\boxed{5}"


def ids(n, ended=True):
    """n token ids, the last one eos when ``ended``."""
    return [7] * (n - 1) + [EOS if ended else 7] if n else []


def make(cls, max_len=100, **kw):
    r = cls(grader=FakeGrader())
    r.setup(tokenizer=SimpleNamespace(eos_token_id=EOS), args=SimpleNamespace(max_completion_length=max_len, method_kwargs=kw))
    return r


def test_registered_with_their_settings():
    for name, cls in [("cosine", CosineLengthReward), ("soft_overlong", SoftOverlongReward),
                      ("linear_pass_rate", LinearPassRateReward), ("grpo_lead", GRPOLeadReward),
                      ("dler_truncation", DLERTruncationReward)]:
        fn = get_reward_func(name)
        assert isinstance(fn, cls) and fn.__name__ == name and REWARDS[name].settings is cls.method_settings


def test_cosine_interp_endpoints_and_midpoint():
    assert cosine_interp(0, 10, 2.0, 1.0) == pytest.approx(2.0)
    assert cosine_interp(10, 10, 2.0, 1.0) == pytest.approx(1.0)
    assert cosine_interp(5, 10, 2.0, 1.0) == pytest.approx(1.5)  # cos(pi/2) = 0: the midpoint
    assert cosine_interp(5, 10, -10.0, 0.0) == pytest.approx(-5.0)


def test_cosine_reward_by_correctness_and_length():
    r = make(CosineLengthReward, max_len=100)  # the paper's values: correct 2 -> 1, wrong -10 -> 0, exceed -10
    out = r(prompts=["p"] * 5, completions=[R, R, W, W, R],
            completion_ids=[ids(25), ids(50), ids(25), ids(50), ids(100, ended=False)], answer=["4"] * 5)
    # L = 25: (1 + cos(pi/4)) / 2 = 0.853553; correct 1 + 1 * 0.853553, wrong 0 - 10 * 0.853553
    assert out == pytest.approx([1.853553, 1.5, -8.535534, -5.0, -10.0], abs=1e-5)
    assert r.pop_metrics() == {"cosine/exceeded": 1.0}


def test_cosine_settings_and_validation():
    r = make(CosineLengthReward, max_len=100, cosine_max_len=10, cosine_correct_short=1.0, cosine_correct_long=0.5)
    assert r(prompts=["p"], completions=[R], completion_ids=[ids(5)], answer=["4"]) == pytest.approx([0.75])
    with pytest.raises(ValueError, match="cosine_wrong_long"):
        CosineLengthReward.method_settings.from_kwargs({"cosine_wrong_long": "x"})


def test_soft_overlong_penalty_regions():
    # L_max 100, buffer 20: 0 up to 80, linear to -1 at 100, -1 beyond
    assert [soft_overlong_penalty(L, 100, 20) for L in (50, 80, 90, 100, 120)] == pytest.approx([0, 0, -0.5, -1, -1])


def test_soft_overlong_reward():
    r = make(SoftOverlongReward, max_len=100)  # buffer defaults to 20% of 100 = 20; correct +1, wrong -1
    out = r(prompts=["p"] * 4, completions=[R, R, W, W], completion_ids=[ids(70), ids(95), ids(70), ids(85)],
            answer=["4"] * 4)
    assert out == pytest.approx([1.0, 1.0 - 0.75, -1.0, -1.0 - 0.25])
    r2 = make(SoftOverlongReward, max_len=100, overlong_buffer=50, overlong_penalty_factor=2.0, overlong_wrong_reward=0.0)
    assert r2(prompts=["p"] * 2, completions=[R, W], completion_ids=[ids(60), ids(60)], answer=["4"] * 2) == pytest.approx(
        [1.0 - 2 * 0.2, -2 * 0.2])
    with pytest.raises(ValueError, match="overlong_buffer"):
        SoftOverlongReward.method_settings.from_kwargs({"overlong_max_len": 10, "overlong_buffer": 20})


def test_linear_pass_rate_scales_by_the_groups_pass_rate():
    r = make(LinearPassRateReward, max_len=40)  # alpha 0.5, L_ref = 40
    meta = [{"prompt_index": 0}] * 4 + [{"prompt_index": 1}] * 2
    out = r(prompts=["a"] * 4 + ["b"] * 2, completions=[R, R, W, R, R, W],
            completion_ids=[ids(10), ids(20), ids(30), ids(40), ids(20), ids(10)], answer=["4"] * 6, meta=meta)
    # group 0: pass rate 3/4 -> 1 - 0.5 * 0.75 * L / 40; group 1: pass rate 1/2 -> 1 - 0.5 * 0.5 * 20 / 40
    assert out == pytest.approx([1 - 0.375 * 0.25, 1 - 0.375 * 0.5, 0.0, 1 - 0.375, 1 - 0.125, 0.0])


def test_linear_pass_rate_group_reference():
    r = make(LinearPassRateReward, max_len=100, pass_rate_alpha=1.0, pass_rate_length_ref="group")
    out = r(prompts=["a"] * 2, completions=[R, R], completion_ids=[ids(10), ids(20)], answer=["4"] * 2)
    assert out == pytest.approx([0.5, 0.0])  # all correct: p = 1, L_ref = the group's longest (20)


def test_grpo_lead_z_score_among_correct():
    r = make(GRPOLeadReward, lead_alpha=0.1)
    meta = [{"group_index": 3}] * 5
    out = r(prompts=["p"] * 5, completions=[R, R, W, R, W], completion_ids=[ids(10), ids(20), ids(5), ids(30), ids(50)],
            answer=["4"] * 5, meta=meta)
    # correct lengths 10, 20, 30: mean 20, population std sqrt(200/3) = 8.16497; z = -1.22474, 0, 1.22474
    z = 10 / math.sqrt(200 / 3)
    assert out == pytest.approx([math.exp(0.1 * z), 1.0, -1.0, math.exp(-0.1 * z), -1.0], rel=1e-6)


def test_grpo_lead_single_correct_and_groups_apart():
    r = make(GRPOLeadReward, lead_alpha=0.5, lead_wrong_reward=0.0)
    meta = [{"prompt_index": 0}, {"prompt_index": 0}, {"prompt_index": 1}, {"prompt_index": 1}]
    out = r(prompts=["a", "a", "b", "b"], completions=[R, W, R, R], completion_ids=[ids(10), ids(5), ids(10), ids(30)],
            answer=["4"] * 4, meta=meta)
    # group 0: one correct -> z = 0 -> 1; group 1: lengths 10, 30 -> z = -1, +1 (std 10)
    assert out == pytest.approx([1.0, 0.0, math.exp(0.5), math.exp(-0.5)], rel=1e-6)


def test_group_keys_prefer_the_prompt_index():
    keys = group_keys(3, ["a", "a", "b"], {"meta": [{"prompt_index": 5, "group_index": 0}, {"prompt_index": 5,
                                                                                             "group_index": 1}, {}]})
    assert keys[0] == keys[1] != keys[2] and keys[2] == ("prompt", repr("b"))


def test_dler_truncation():
    r = make(DLERTruncationReward, max_len=100, dler_length_cap=50)
    out = r(prompts=["p"] * 5, completions=[R, R, W, R, R],
            completion_ids=[ids(50), ids(51), ids(10), ids(100, ended=False), ids(100)], answer=["4"] * 5)
    assert out == [1.0, 0.0, 0.0, 0.0, 0.0]
    r2 = make(DLERTruncationReward, max_len=100)  # no cap: only truncation counts
    out2 = r2(prompts=["p"] * 2, completions=[R, R], completion_ids=[ids(100), ids(100, ended=False)], answer=["4"] * 2)
    assert out2 == [1.0, 0.0]


def test_rows_without_ground_truth_get_none():
    for cls in (CosineLengthReward, SoftOverlongReward, LinearPassRateReward, GRPOLeadReward, DLERTruncationReward):
        r = make(cls)
        assert r(prompts=["p", "p"], completions=[R, R], completion_ids=[ids(3), ids(4)], answer=["4", None])[1] is None
