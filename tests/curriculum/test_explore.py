"""The explore task: x in 1..9 of a*x+b=c found by trying candidates in order."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from curriculum.tasks import TASKS, get_task_dataset
from curriculum.tasks.explore import (
    DATA_SOURCE,
    GUESS_OPENING_LINE,
    OPENING_LINE,
    REDUNDANT_PHRASES,
    all_problems,
    count_tries,
    generate_examples,
    make_trace,
    mean_tries,
    parse_prompt,
    problem_split,
    solve,
)
from curriculum.tasks.overthink import SPLIT_WORDS, count_redundant_chunks, extract_answer
from rewards.math import grade_one

TRY = re.compile(r"^(\d)\*(\d)([+-])(\d)=(-?\d+), (no|yes)$")


def _trace(row) -> str:
    return row["completion"][0]["content"]


def _body(trace: str) -> list[str]:
    return trace.split("<think>\n", 1)[1].split("\n</think>", 1)[0].split("\n")


@pytest.fixture(scope="module")
def train_rows():
    return generate_examples(2000, seed=0, split="train")


def test_layout_and_registry():
    ds = get_task_dataset("explore", 10, seed=0, split="test")
    assert "explore" in TASKS
    assert {"prompt", "completion", "reward_model", "data_source", "extra_info"} <= set(ds.column_names)
    row = ds[0]
    assert row["data_source"] == DATA_SOURCE and row["reward_model"]["style"] == "rule"
    assert row["prompt"][0]["role"] == "user" and row["prompt"][0]["content"].startswith("Find x: ")
    info = row["extra_info"]
    for key in ("difficulty", "tries", "x", "split", "index", "redundant_chunks", "problem"):
        assert key in info
    assert info["split"] == "test" and [r["index"] for r in ds["extra_info"]] == list(range(10))
    assert "slipped" not in info  # slip fields only when slips are on


def test_seeded():
    assert generate_examples(300, seed=3) == generate_examples(300, seed=3)
    assert generate_examples(300, seed=3) != generate_examples(300, seed=4)


def test_train_test_disjoint():
    train = {r["extra_info"]["problem"] for r in generate_examples(4000, seed=0, split="train")}
    test = {r["extra_info"]["problem"] for r in generate_examples(1000, seed=7, split="test")}
    assert train and test and not (train & test)
    assert all(problem_split(p) == "test" for p in test)
    # the split is a fixed partition of the problem space: ~20% held out
    space = all_problems()
    held = sum(problem_split(f"{a}*x{op}{b}={c}") == "test" for a, op, b, c, _x in space)
    assert 0.15 * len(space) < held < 0.25 * len(space)
    assert len(test) > 200  # enough distinct held-out problems


def test_answers_and_tries(train_rows):
    xs = Counter()
    for r in train_rows:
        a, op, b, c = parse_prompt(r["prompt"][0]["content"])
        x = int(r["reward_model"]["ground_truth"])
        assert 1 <= x <= 9 and solve(a, op, b, c) == x and c >= 1
        assert (a * x + b if op == "+" else a * x - b) == c
        # unique solution in 1..9: trying in order cannot stop at a wrong x
        assert [t for t in range(1, 10) if (a * t + b if op == "+" else a * t - b) == c] == [x]
        trace = _trace(r)
        assert extract_answer(trace) == str(x)
        assert grade_one(trace, str(x))[2] == "correct"
        assert r["extra_info"]["tries"] == r["extra_info"]["x"] == r["extra_info"]["difficulty"] == x
        assert count_tries(trace) == x
        xs[x] += 1
    assert set(xs) == set(range(1, 10))  # every number of tries occurs


def test_trace_structure(train_rows):
    for r in train_rows[:500]:
        trace = _trace(r)
        a, op, b, c = parse_prompt(r["prompt"][0]["content"])
        x = r["extra_info"]["x"]
        lines = _body(trace)
        assert lines[0] == OPENING_LINE
        tries = lines[1 : 1 + x]
        for t, line in enumerate(tries, start=1):
            m = TRY.match(line)
            assert m, line
            assert (int(m[1]), int(m[2]), m[3], int(m[4])) == (a, t, op, b)
            value = a * t + b if op == "+" else a * t - b
            assert int(m[5]) == value and m[6] == ("yes" if t == x else "no")
        assert lines[1 + x] == f"So the answer is {x}."
        # only the opening and the redundant phrases start with a chunk split word
        starts = [i for i, line in enumerate(lines) if line.split(",")[0].split(" ")[0] in SPLIT_WORDS]
        k = r["extra_info"]["redundant_chunks"]
        assert len(starts) == 1 + k and starts[0] == 0
        for j, i in enumerate(starts[1:]):
            assert lines[i] == REDUNDANT_PHRASES[j]
            assert lines[i + 1 : i + 3] == [f"{a}*{x}{op}{b}={c}", f"Yes, the answer is {x}."]
        assert count_redundant_chunks(trace) == k
        assert trace.endswith(f"</think>\n\\boxed{{{x}}}")


def test_redundancy_mix(train_rows):
    ks = Counter(r["extra_info"]["redundant_chunks"] for r in train_rows)
    assert set(ks) == {0, 1, 2, 3, 4}
    assert 0.05 * len(train_rows) < ks[0] < 0.15 * len(train_rows)  # some traces stop at the answer
    assert ks[4] > ks[1]  # weighted toward more chunks
    assert Counter(r["extra_info"]["redundant_chunks"] for r in generate_examples(40, redundancy={2: 1.0})) == {2: 40}


def test_options_validated():
    assert {r["extra_info"]["problem"][3] for r in generate_examples(200, ops=["+"])} == {"+"}
    assert max(int(r["extra_info"]["problem"][0]) for r in generate_examples(200, max_a=3)) <= 3
    with pytest.raises(ValueError):
        generate_examples(1, ops=["*"])
    with pytest.raises(ValueError):
        generate_examples(1, max_a=1)
    with pytest.raises(ValueError):
        generate_examples(1, split="dev")
    with pytest.raises(ValueError, match="slip_kind"):
        generate_examples(1, slip_rate=0.1, slip_kind="quick")


def test_count_tries():
    t = make_trace(3, "+", 5, 23)
    assert count_tries(t) == 6
    # lines after the answer statement (re-checks) and after </think> do not count
    assert count_tries(t + "\n3*7+5=26, no") == 6
    assert count_tries("<think>\nLet me try x from 1.\n3*1+5=8, no\n3*2+5=11, no\n") == 2  # truncated
    assert count_tries(make_trace(3, "+", 5, 23, guess=4)) == 0
    assert count_tries("") == 0
    assert count_tries("3*1+5=8 no") == 0  # not a well-formed try
    assert mean_tries([make_trace(2, "-", 1, 5), make_trace(2, "-", 1, 1)]) == (3 + 1) / 2
    assert mean_tries([]) == 0.0


def test_guess_slip():
    rows = generate_examples(3000, seed=0, slip_rate=0.25)
    slipped = [r for r in rows if r["extra_info"]["slipped"]]
    assert 0.22 < len(slipped) / len(rows) < 0.28
    for r in slipped:
        trace = _trace(r)
        x = r["extra_info"]["x"]
        assert r["extra_info"]["slip_kind"] == "guess" and r["extra_info"]["tries"] == 0
        assert _body(trace)[0] == GUESS_OPENING_LINE
        assert count_tries(trace) == 0
        answer = extract_answer(trace)
        assert answer != str(x) and 1 <= int(answer) <= 9
        assert r["reward_model"]["ground_truth"] == str(x)  # the ground truth stays right
        assert grade_one(trace, str(x))[2] != "correct"
        assert "=" not in trace  # a guess writes no (false) check line
    for r in rows:
        if not r["extra_info"]["slipped"]:
            assert extract_answer(_trace(r)) == str(r["extra_info"]["x"])
    # the problems and redundancy draws do not depend on the slips
    plain = generate_examples(3000, seed=0)
    assert [r["prompt"] for r in plain] == [r["prompt"] for r in rows]
    assert [r["extra_info"]["redundant_chunks"] for r in plain] == [r["extra_info"]["redundant_chunks"] for r in rows]


def test_presets():
    heavy = get_task_dataset("explore_heavy", 50, seed=0)
    assert list(heavy) == list(get_task_dataset("explore", 50, seed=0))  # explore's default is heavy
    guess = get_task_dataset("explore_guess", 2000, seed=0)
    rate = sum(r["slipped"] for r in guess["extra_info"]) / len(guess)
    assert 0.12 < rate < 0.18
    assert all(r["tries"] == 0 for r in guess["extra_info"] if r["slipped"])


def test_task_text_metrics():
    from curriculum.tasks import task_text_metrics

    m = task_text_metrics("explore_guess")
    assert m["tries"](make_trace(3, "+", 5, 23)) == 6.0 and m["guess"](make_trace(3, "+", 5, 23)) == 0.0
    assert m["tries"](make_trace(3, "+", 5, 23, guess=2)) == 0.0 and m["guess"](make_trace(3, "+", 5, 23, guess=2)) == 1.0
    o = task_text_metrics("overthink_slip")
    from curriculum.tasks.overthink import make_trace as ot_trace, solve_steps, QUICK_OPENING_LINE

    steps = solve_steps([3, 4, 2], ["+", "*"])
    assert o["slip"](ot_trace([3, 4, 2], ["+", "*"])) == 0.0 and o["steps"](ot_trace([3, 4, 2], ["+", "*"])) == 2.0
    quick = ot_trace([3, 4, 2], ["+", "*"], steps=steps[:1], opening=QUICK_OPENING_LINE)
    assert o["slip"](quick) == 1.0 and o["steps"](quick) == 1.0
    assert task_text_metrics("nope") == {}
    for name in ("explore", "overthink", "mixed", "word_problems_think"):  # every <think> task: AdaptThink's mode share
        assert task_text_metrics(name)["nothink"]("</think>\n\\boxed{4}") == 1.0
        assert task_text_metrics(name)["nothink"](make_trace(3, "+", 5, 23)) == 0.0
    assert "nothink" not in task_text_metrics("word_problems")
