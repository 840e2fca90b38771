"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from rl.eval.metrics import (
    dataset_metrics,
    maj_at_n,
    majority_vote,
    mean_pass_at_1,
    mean_pass_at_k,
    normalize_answer,
    pass_at_k,
    pass_at_k_curve,
    summarize_samples,
    token_stats,
)


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (5, 0, 3, 0.0),
        (5, 5, 1, 1.0),
        (5, 2, 1, 0.4),  # c / n
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (5, 2, 4, 1.0),  # n - c < k: every 4-subset holds a correct one
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (10, 3, 5, 11 / 12),  # 1 - C(7,5)/C(10,5) = 1 - 21/252
        (16, 4, 8, 1 - 495 / 12870),  # 1 - C(12,8)/C(16,8)
        (100, 1, 50, 0.5),  # one correct in 100: half of the 50-subsets contain it
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_chen_product_form():
    # the numerically stable form in Chen et al. (2021): 1 - prod_{i=n-c+1}^{n} (1 - k / i)
    for n in (3, 7, 20, 64):
        for c in range(n + 1):
            for k in range(1, n + 1):
                if n - c < k:
                    ref = 1.0
                else:
                    ref = 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
                assert pass_at_k(n, c, k) == pytest.approx(ref, abs=1e-9)


def test_pass_at_1_is_fraction_correct_and_monotone_in_k():
    for n, c in [(8, 3), (16, 1), (4, 4)]:
        assert pass_at_k(n, c, 1) == pytest.approx(c / n)
        vals = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        assert all(a <= b + 1e-15 for a, b in zip(vals, vals[1:]))


@pytest.mark.parametrize("n,c,k", [(0, 0, 1), (3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4)])
def test_pass_at_k_rejects_bad_inputs(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_pass_at_k_and_curve():
    counts = [(4, 1), (4, 0), (4, 4)]
    assert mean_pass_at_k(counts, 2) == pytest.approx((0.5 + 0 + 1) / 3)
    assert mean_pass_at_1(counts) == pytest.approx((0.25 + 0 + 1) / 3)
    curve = pass_at_k_curve(counts)
    assert list(curve) == [1, 2, 3, 4]
    assert curve[1] == pytest.approx((0.25 + 0 + 1) / 3)
    assert curve[3] == pytest.approx((0.75 + 0 + 1) / 3)  # 1 - C(3,3)/C(4,3) = 3/4
    assert curve[4] == pytest.approx(2 / 3)
    assert mean_pass_at_k([], 1) is None and mean_pass_at_1([]) is None and pass_at_k_curve([]) == {}


# ---------------------------------------------------------------------------------------
# majority vote
# ---------------------------------------------------------------------------------------


def test_majority_vote_plain_majority():
    assert majority_vote(["2", "3", "3"], [True, False, False]) == ("3", False)
    assert majority_vote(["3", "2", "2"], [False, True, True]) == ("2", True)


def test_majority_vote_ties_broken_by_first_appearance():
    assert majority_vote(["2", "3"], [True, False]) == ("2", True)
    assert majority_vote(["3", "2"], [False, True]) == ("3", False)
    # 2-2 tie: "7" has its first vote at sample 0
    assert majority_vote(["7", "8", "8", "7"], [False, True, True, False]) == ("7", False)
    assert majority_vote(["8", "7", "7", "8"], [True, False, False, True]) == ("8", True)
    # three-way tie
    assert majority_vote(["a", "b", "c"], [False, False, False]) == ("a", False)
    # the order of the samples alone decides: a tie is not resolved in favour of the right answer
    assert majority_vote([None, "5", "6"], [False, False, True]) == ("5", False)


def test_majority_vote_pools_correct_spellings_and_normalizes_wrong_ones():
    # "1/2" and "\frac{1}{2}" were both graded correct: one group of 2 beats "3" x 1... and "4" x 1
    assert majority_vote(["1/2", "\\frac{1}{2}", "3", "4"], [True, True, False, False]) == ("1/2", True)
    # wrong answers differing only in spacing / $ / \dfrac vote together
    answers = ["$\\dfrac{3}{4}$", "\\frac{3}{4}", " \\frac{3} {4}.", "1", "1/2"]
    assert majority_vote(answers, [False, False, False, False, True]) == ("$\\dfrac{3}{4}$", False)


def test_majority_vote_abstentions():
    assert majority_vote([None, None, "5"], [False, False, False]) == ("5", False)
    assert majority_vote([None, None, "5"], [False, False, True]) == ("5", True)
    assert majority_vote([None, None], [False, False]) == (None, False)
    assert majority_vote(["", "  "], [False, False]) == (None, False)
    assert majority_vote([], []) == (None, False)


def test_majority_vote_length_mismatch():
    with pytest.raises(ValueError):
        majority_vote(["1"], [True, False])


def test_maj_at_n():
    problems = [
        (["1", "1", "2"], [True, True, False]),  # correct majority
        (["1", "2", "2"], [True, False, False]),  # wrong majority
        (["3", "4"], [False, True]),  # tie -> first ("3") -> wrong
        ([None, "9"], [False, True]),  # only one vote -> correct
    ]
    assert maj_at_n(problems) == pytest.approx(0.5)
    assert maj_at_n([]) is None


def test_normalize_answer():
    assert normalize_answer(None) is None
    assert normalize_answer("  ") is None
    assert normalize_answer("$x = 3$.") == "x=3"
    assert normalize_answer("\\(\\dfrac{1}{2}\\)") == "\\frac{1}{2}"
    assert normalize_answer("\\left( 1, 2 \\right)") == "(1,2)"


# ---------------------------------------------------------------------------------------
# tokens and summaries
# ---------------------------------------------------------------------------------------


def test_token_stats_even_and_odd():
    s = token_stats([10, 20, 30, 40], [True, False, True, False])
    assert s == {
        "mean_tokens": 25.0, "median_tokens": 25.0,
        "mean_tokens_correct": 20.0, "median_tokens_correct": 20.0,
        "mean_tokens_incorrect": 30.0, "median_tokens_incorrect": 30.0,
    }
    s = token_stats([5, 1, 9], [True, True, True])
    assert s["mean_tokens"] == 5.0 and s["median_tokens"] == 5.0
    assert s["mean_tokens_incorrect"] is None and s["median_tokens_incorrect"] is None
    s = token_stats([3, 100, 4, 7], [False, False, False, True])
    assert s["median_tokens_incorrect"] == 4.0 and s["mean_tokens_incorrect"] == pytest.approx(107 / 3)
    assert token_stats([], [])["mean_tokens"] is None


def _rec(problem, sample, correct, extracted, tokens, truncated=False, **kw):
    return dict(problem=problem, sample=sample, correct=correct, extracted=extracted, tokens=tokens,
                truncated=truncated, **kw)


def test_summarize_samples_hand_computed():
    recs = [
        # problem 0: 2 of 3 correct; votes {correct: 2, "5": 1}
        _rec(0, 0, True, "4", 10, gen_seconds=0.5, tool_calls=1),
        _rec(0, 1, False, "5", 30, truncated=True, gen_seconds=0.5, tool_calls=3),
        _rec(0, 2, True, "4.0", 20, gen_seconds=0.5, tool_calls=0),
        # problem 1: 0 of 3 correct, one abstains
        _rec(1, 2, False, "7", 40, gen_seconds=0.5, tool_calls=2),  # out of order on purpose
        _rec(1, 0, False, None, 50, truncated=True, gen_seconds=0.5, tool_calls=0),
        _rec(1, 1, False, "7", 60, gen_seconds=0.5, tool_calls=0),
    ]
    s = summarize_samples(recs)
    assert s["num_problems"] == 2 and s["num_samples"] == 6 and s["n"] == 3
    assert s["pass@1"] == pytest.approx((2 / 3 + 0) / 2)
    assert s["maj@n"] == pytest.approx(0.5)
    assert s["pass@k"] == pytest.approx({"1": 1 / 3, "2": 0.5, "3": 0.5})  # p0: 1 - C(1,2)/C(3,2) = 1
    assert s["mean_tokens"] == pytest.approx(35.0) and s["median_tokens"] == pytest.approx(35.0)
    assert s["mean_tokens_correct"] == pytest.approx(15.0)
    assert s["mean_tokens_incorrect"] == pytest.approx(45.0) and s["median_tokens_incorrect"] == pytest.approx(45.0)
    assert s["truncated_frac"] == pytest.approx(2 / 6)
    assert s["no_answer_frac"] == pytest.approx(1 / 6)
    assert s["mean_tool_calls"] == pytest.approx(1.0)
    assert s["wall_seconds"] == pytest.approx(3.0)
    assert s["generated_tokens"] == 210 and s["tokens_per_second"] == pytest.approx(70.0)


def test_summarize_samples_without_tool_calls_or_time_and_pooled_keys():
    recs = [
        dict(benchmark="a", problem=0, sample=0, correct=True, extracted="1", tokens=4, truncated=False),
        dict(benchmark="b", problem=0, sample=0, correct=False, extracted="2", tokens=6, truncated=False),
    ]
    s = summarize_samples(recs, problem_keys=("benchmark", "problem"))
    assert "mean_tool_calls" not in s
    assert s["num_problems"] == 2 and s["pass@1"] == pytest.approx(0.5)
    assert s["tokens_per_second"] is None and s["wall_seconds"] == 0.0
    # pooling by problem index alone would merge the two problems into one
    assert summarize_samples(recs)["num_problems"] == 1
    empty = summarize_samples([])
    assert empty["num_problems"] == 0 and empty["pass@1"] is None and empty["pass@k"] == {}


def test_a_binary_behaviour_gets_the_accuracy_of_each_mode():
    # AdaptThink's nothink: 3 of 5 answers skip thinking, 2 of them right; of the 2 that think, 1 is right
    texts = ["</think>a", "</think>b", "</think>c", "<think>x</think>d", "<think>y</think>e"]
    correct = [True, True, False, True, False]
    samples = [{"problem": i, "sample": 0, "completion": t, "correct": c, "extracted": "1", "tokens": 3, "truncated": False}
               for i, (t, c) in enumerate(zip(texts, correct))]
    res = dataset_metrics(samples, {"nothink": lambda t: float(t.startswith("</think>")), "chars": len})
    assert res["nothink"] == pytest.approx(0.6) and res["accuracy"] == pytest.approx(0.6)
    assert res["nothink_accuracy"] == pytest.approx(2 / 3) and res["no_nothink_accuracy"] == pytest.approx(0.5)
    assert "chars_accuracy" not in res  # not a 0/1 behaviour
    # one mode absent: its accuracy is None, not 0
    alone = dataset_metrics(samples[:3], {"nothink": lambda t: float(t.startswith("</think>"))})
    assert alone["nothink_accuracy"] == pytest.approx(2 / 3) and alone["no_nothink_accuracy"] is None
