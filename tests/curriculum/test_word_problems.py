"""task:word_problems: every trace's equations hold and end at the ground truth, which the accuracy reward
grades correct; splits are disjoint; the same seed gives the same rows."""

from __future__ import annotations

import re

from curriculum.tasks import get_task_dataset
from rewards.math import AccuracyReward


def test_traces_are_right_and_the_reward_agrees():
    ds = get_task_dataset("word_problems", 120, seed=3)
    steps = set()
    for row in ds:
        lines = row["completion"].splitlines()
        eqs = [re.fullmatch(r"(\d+) ([-+*/]) (\d+) = (\d+)", x) for x in lines[:-1]]
        assert all(eqs), row["completion"]
        value = None
        for m in eqs:
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            assert value is None or a == value
            assert {"+": a + b, "-": a - b, "*": a * b, "/": a // b if a % b == 0 else -1}[op] == c
            value = c
        assert lines[-1] == f"The answer is \\boxed{{{value}}}." and row["reward_model"]["ground_truth"] == str(value)
        assert row["prompt"][0]["content"].endswith("Put the final answer in \\boxed{}.")
        assert row["extra_info"]["num_steps"] == len(eqs)
        steps.add(len(eqs))
    assert steps == {1, 2, 3}
    reward = AccuracyReward()
    assert reward([r["prompt"] for r in ds], [r["completion"] for r in ds], None,
                  reward_model=[r["reward_model"] for r in ds]) == [1.0] * len(ds)


def test_splits_are_disjoint_and_seeded():
    train = get_task_dataset("word_problems", 400, seed=0)
    test = get_task_dataset("word_problems", 40, seed=0, split="test")
    assert not {r["extra_info"]["problem"] for r in train} & {r["extra_info"]["problem"] for r in test}
    assert get_task_dataset("word_problems", 5, seed=0)["completion"] == train["completion"][:5]
    assert get_task_dataset("word_problems", 5, seed=1)["completion"] != train["completion"][:5]
