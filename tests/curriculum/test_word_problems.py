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


def test_think_style_poses_the_same_problems_with_redundant_rechecks():
    plain = get_task_dataset("word_problems", 80, seed=2)
    think = get_task_dataset("word_problems_think", 80, seed=2)
    assert think["prompt"] == plain["prompt"] and think["reward_model"] == plain["reward_model"]
    ks = []
    for p, t in zip(plain, think):
        k = t["extra_info"]["redundant_chunks"]
        ks.append(k)
        eqs = p["completion"].splitlines()[:-1]
        answer = p["reward_model"]["ground_truth"]
        lines = t["completion"].splitlines()
        assert lines[: len(eqs) + 2] == ["<think>", *eqs, f"So the answer is {answer}."]
        assert lines[-2:] == ["</think>", f"The answer is \\boxed{{{answer}}}."]
        body = lines[len(eqs) + 2 : -2]
        assert len(body) == k * (len(eqs) + 2)
        for j in range(k):  # each re-check: an opener, the same equations, the same answer
            chunk = body[j * (len(eqs) + 2) : (j + 1) * (len(eqs) + 2)]
            assert chunk[0].split(",")[0].split()[0] in ("Wait", "Hmm", "But", "Alternatively")
            assert chunk[1:] == [*eqs, f"Yes, the answer is {answer}."]
    assert set(ks) == {0, 1, 2, 3}
    reward = AccuracyReward()
    assert reward([r["prompt"] for r in think], [r["completion"] for r in think], None,
                  reward_model=[r["reward_model"] for r in think]) == [1.0] * len(think)


def test_think_style_redundancy_is_what_decs_finds(smollm2_dir):
    """On the real model's tokenizer, DECS's chunker and rule judge put the end of the necessary
    reasoning at the first answer statement: every re-check is redundant, nothing before it is."""
    from transformers import AutoTokenizer

    from curriculum.tasks.overthink import count_redundant_chunks
    from rewards.decs.nrp import analyze_completions

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    rows = get_task_dataset("word_problems_think", 24, seed=0)
    texts = [r["completion"] for r in rows]
    res = analyze_completions(None, [r["reward_model"]["ground_truth"] for r in rows], tok, completions=texts,
                              problems=[r["extra_info"]["problem"] for r in rows])
    for row, text, r in zip(rows, texts, res):
        k = row["extra_info"]["redundant_chunks"]
        assert r.correct and r.nrp_chunk == 0 and count_redundant_chunks(text) == k
        first = text.index("So the answer is")
        necessary = len(tok(text[: text.index("\n", first) + 1], add_special_tokens=False)["input_ids"])
        if k:
            assert r.redundant_start == necessary
            assert r.redundant_end == len(tok(text[: text.index("</think>")], add_special_tokens=False)["input_ids"])
        else:
            assert r.redundant_end == r.redundant_start
