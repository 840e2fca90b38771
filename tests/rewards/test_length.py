"""Length-control baselines against hand-computed values.

A fake grader (correct iff the text contains ``\\boxed{<ground truth>}``) keeps these pure;
one test goes through the real math grader.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rewards import REWARDS, get_reward_func
from rewards.length.penalties import L1TargetLengthReward, LengthPenaltyReward, ThinkPruneReward  # registers them
from rewards.math import GradeResult


class FakeGrader:
    def __init__(self):
        self.calls = 0

    def grade(self, completions, ground_truths):
        self.calls += 1
        return [
            GradeResult(1.0, gt, "correct") if f"\\boxed{{{gt}}}" in c else GradeResult(0.0, None, "wrong")
            for c, gt in zip(completions, ground_truths)
        ]


RIGHT, WRONG = "<think>ok</think> \\boxed{4}", "<think>hmm</think> \\boxed{5}"


def ids(n, last=7):
    return [7] * (n - 1) + [last] if n else []


def args(max_completion_length=100, **method_kwargs):
    return SimpleNamespace(max_completion_length=max_completion_length, method_kwargs=method_kwargs)


def test_registered():
    for name, cls in [("length_penalty", LengthPenaltyReward), ("l1_target_length", L1TargetLengthReward), ("thinkprune", ThinkPruneReward)]:
        fn = get_reward_func(name)
        assert REWARDS[name].factory is cls and isinstance(fn, cls) and fn.__name__ == name
        assert get_reward_func(name) is not fn  # a new object per resolution: no state shared between trainers
        assert REWARDS[name].settings is cls.method_settings  # the settings class: keys, defaults, help, checks


# --- length_penalty -----------------------------------------------------------------------------------


def test_length_penalty_linear():
    r = LengthPenaltyReward(grader=FakeGrader())
    r.setup(tokenizer=None, args=args(100))  # alpha 0.5, L_ref = max_completion_length = 100
    out = r(
        prompts=["p"] * 4,
        completions=[RIGHT, RIGHT, WRONG, RIGHT],
        completion_ids=[ids(40), ids(100), ids(10), ids(5)],
        answer=["4", "4", "4", None],
    )
    # correct: 1 - 0.5 * 40/100 = 0.8; 1 - 0.5 * 100/100 = 0.5; wrong: 0; no ground truth: None
    assert out[:3] == pytest.approx([0.8, 0.5, 0.0]) and out[3] is None


def test_length_penalty_reference_options():
    comps, cids, cols = [RIGHT, RIGHT, WRONG], [ids(40), ids(80), ids(10)], {"answer": ["4"] * 3}
    # no setup: L_ref = the longest completion of the call (80): 1 - 0.5 * 40/80 = 0.75
    assert LengthPenaltyReward(grader=FakeGrader())(completions=comps, completion_ids=cids, **cols) == pytest.approx([0.75, 0.5, 0.0])
    # length_ref: batch even after setup; an int; alpha from method_kwargs
    r = LengthPenaltyReward(grader=FakeGrader())
    r.setup(args=args(100, length_ref="batch"))
    assert r(completions=comps, completion_ids=cids, **cols) == pytest.approx([0.75, 0.5, 0.0])
    r.setup(args=args(100, length_ref=200, length_alpha=0.2))
    assert r(completions=comps, completion_ids=cids, **cols) == pytest.approx([0.96, 0.92, 0.0])  # 1 - 0.2 * 40/200
    # constructor arguments win over method_kwargs
    r = LengthPenaltyReward(grader=FakeGrader(), alpha=1.0, ref=160)
    r.setup(args=args(100, length_alpha=0.2))
    assert r(completions=comps, completion_ids=cids, **cols) == pytest.approx([0.75, 0.5, 0.0])  # 1 - 40/160


def test_length_penalty_kimi_group_relative():
    r = LengthPenaltyReward(grader=FakeGrader(), mode="kimi")
    out = r(
        prompts=["p1", "p1", "p1", "p2", "p2"],
        completions=[RIGHT, RIGHT, WRONG, RIGHT, WRONG],
        completion_ids=[ids(10), ids(20), ids(30), ids(5), ids(5)],
        answer=["4"] * 5,
    )
    # p1: min 10, max 30 -> lam = [0.5, 0, -0.5]; correct: 1 + 0.5 lam; wrong: 0.5 min(0, lam)
    # p2: equal lengths -> lam 0
    assert out == pytest.approx([1.25, 1.0, -0.25, 1.0, 0.0])


def test_length_penalty_needs_completion_ids_and_validates():
    with pytest.raises(ValueError, match="completion_ids"):
        LengthPenaltyReward(grader=FakeGrader())(completions=[RIGHT], answer=["4"])
    r = LengthPenaltyReward(grader=FakeGrader())
    for kw, key in [({"length_penalty_mode": "quadratic"}, "length_penalty_mode"), ({"length_alpha": -1}, "length_alpha"),
                    ({"length_ref": 0}, "length_ref")]:
        with pytest.raises(ValueError, match=f"method_kwargs.{key}"):
            r.setup(args=args(**kw))


# --- l1_target_length --------------------------------------------------------------------------------


def test_l1_target_length():
    r = L1TargetLengthReward(grader=FakeGrader())
    r.setup(args=args(length_target=50))
    out = r(
        completions=[RIGHT, WRONG, RIGHT, RIGHT],
        completion_ids=[ids(80), ids(150), ids(50), ids(3)],
        answer=["4", "4", "4", None],
        target_length=[100, 100, None, 10],
    )
    # alpha 0.5: 1 - 0.5 * 20/100 = 0.9; 0 - 0.5 * 50/100 = -0.25; fixed target 50: 1 - 0 = 1; no ground truth: None
    assert out[:3] == pytest.approx([0.9, -0.25, 1.0]) and out[3] is None
    r = L1TargetLengthReward(grader=FakeGrader(), alpha=0.1, target=200)
    assert r(completions=[RIGHT], completion_ids=[ids(100)], answer=["4"]) == pytest.approx([0.95])  # 1 - 0.1 * 0.5


def test_l1_target_length_without_target_is_an_error():
    with pytest.raises(ValueError, match="length_target"):
        L1TargetLengthReward(grader=FakeGrader())(completions=[RIGHT], completion_ids=[ids(5)], answer=["4"])
    with pytest.raises(ValueError, match="method_kwargs.length_target"):
        L1TargetLengthReward(grader=FakeGrader()).setup(args=args(length_target=0))


# --- thinkprune --------------------------------------------------------------------------------------


def test_thinkprune_cap_truncation_and_think_close():
    r = ThinkPruneReward(grader=FakeGrader())
    r.setup(tokenizer=SimpleNamespace(eos_token_id=2), args=args(100, thinkprune_cap=50))
    out = r(
        completions=[RIGHT, RIGHT, RIGHT, "\\boxed{4}", WRONG, RIGHT],
        completion_ids=[ids(30, last=2), ids(60, last=2), ids(100, last=7), ids(10, last=2), ids(10, last=2), ids(10)],
        answer=["4", "4", "4", "4", "4", None],
    )
    # within cap: 1; over cap 50: 0; hit max_completion_length without eos: 0; no </think>: 0; wrong: 0; no truth: None
    assert out == [1.0, 0.0, 0.0, 0.0, 0.0, None]
    assert r.pop_metrics() == {"thinkprune/over_cap": 1, "thinkprune/truncated": 1, "thinkprune/no_think_close": 1}
    assert r.pop_metrics() == {}

    r = ThinkPruneReward(grader=FakeGrader(), require_think_close=False)
    r.setup(tokenizer=SimpleNamespace(eos_token_id=2), args=args(100))  # no cap
    out = r(completions=[RIGHT, RIGHT, "\\boxed{4}"], completion_ids=[ids(100, last=2), ids(100, last=9), ids(7)], answer=["4"] * 3)
    # 100 tokens ending in eos finished; 100 without eos truncated; </think> not required
    assert out == [1.0, 0.0, 1.0]


def test_thinkprune_schedule_over_steps():
    r = ThinkPruneReward(grader=FakeGrader())
    r.setup(args=args(1000, thinkprune_schedule=[[0, 80], [2, 40]]))
    call = lambda: r(completions=[RIGHT], completion_ids=[ids(60)], answer=["4"])[0]  # noqa: E731
    # steps 0, 1: cap 80 -> 1; step 2 on: cap 40 -> 0
    assert [call() for _ in range(4)] == [1.0, 1.0, 0.0, 0.0]
    assert (r.cap_at(0), r.cap_at(1), r.cap_at(2), r.cap_at(99)) == (80, 80, 40, 40)
    r.set_step(1)
    assert (r.step, call(), r.step, call()) == (1, 1.0, 2, 0.0)

    # two generation rounds per step, resumed at step 1
    r.setup(args=args(1000, thinkprune_schedule=[[0, 80], [2, 40]], thinkprune_calls_per_step=2, thinkprune_start_step=1))
    assert [call() for _ in range(4)] == [1.0, 1.0, 0.0, 0.0]  # steps 1, 1, 2, 2
    # before the first schedule entry the fixed cap applies
    r.setup(args=args(1000, thinkprune_cap=50, thinkprune_schedule=[[3, 70]]))
    assert (r.cap_at(0), r.cap_at(3)) == (50, 70)


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"thinkprune_schedule": [[2, 40], [1, 80]]}, "thinkprune_schedule"),
        ({"thinkprune_schedule": [[0, 0]]}, "thinkprune_schedule"),
        ({"thinkprune_schedule": [40]}, "thinkprune_schedule"),
        ({"thinkprune_cap": -5}, "thinkprune_cap"),
        ({"thinkprune_calls_per_step": 0}, "thinkprune_calls_per_step"),
        ({"thinkprune_require_think_close": "yes"}, "thinkprune_require_think_close"),
    ],
)
def test_thinkprune_validation_names_the_key(kw, key):
    with pytest.raises(ValueError, match=f"method_kwargs.{key}"):
        ThinkPruneReward(grader=FakeGrader()).setup(args=args(**kw))


def test_with_the_real_math_grader(math_grader):
    r = LengthPenaltyReward(grader=math_grader, ref=100)
    out = r(
        completions=["so \\boxed{\\frac{1}{2}}", "so \\boxed{0.5}", "so \\boxed{3}"],
        completion_ids=[ids(20), ids(50), ids(10)],
        reward_model=[{"ground_truth": "1/2"}] * 3,
    )
    assert out == pytest.approx([0.9, 0.75, 0.0])


def test_the_package_exports_every_length_reward_and_settings_class():
    import rewards.length as package
    from rewards.length import adaptive, group_shaped, penalties, published

    modules = (penalties, published, group_shaped, adaptive)
    assert sorted(package.__all__) == sorted(name for m in modules for name in m.__all__)
    assert all(getattr(package, name) is getattr(next(m for m in modules if name in m.__all__), name)
               for name in package.__all__)
