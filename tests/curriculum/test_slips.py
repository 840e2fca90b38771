"""Noisy-teacher slips (curriculum/tasks/slips.py) on the overthink generator."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from curriculum.tasks import get_task_dataset
from curriculum.tasks.overthink import (
    OPENING_LINE,
    QUICK_OPENING_LINE,
    SLIP_PRESET,
    count_steps,
    extract_answer,
    generate_examples,
    is_quick,
    make_trace,
    parse_problem,
    solve,
    solve_steps,
)
from curriculum.tasks.slips import slip_policy
from rewards.math import grade_one


def _trace(row) -> str:
    return row["completion"][0]["content"]


def _rate(rows) -> float:
    return sum(r["extra_info"]["slipped"] for r in rows) / len(rows)


@pytest.mark.parametrize("kind", ["quick", "skip", "arith"])
def test_slips_at_rate_and_wrong(kind):
    rows = generate_examples(4000, seed=0, slip_rate=0.3, slip_kind=kind)
    rate = _rate(rows)
    # skipping a last "*1" (or "0*b") would not change the answer, so those rows do not slip (~4%)
    low = 0.26 if kind != "arith" else 0.28
    assert low < rate < 0.32, rate
    for r in rows:
        trace, info = _trace(r), r["extra_info"]
        problem = info["problem"]
        truth = str(solve(problem))
        assert r["reward_model"]["ground_truth"] == truth  # the ground truth is always right
        answer = extract_answer(trace)
        if info["slipped"]:
            assert info["slip_kind"] == kind
            assert answer != truth and grade_one(trace, truth)[2] != "correct"
            # the slip propagates: every answer statement repeats the wrong answer
            assert trace.count(f"answer is {answer}.") == 1 + info["redundant_chunks"]
        else:
            assert info["slip_kind"] == "" and answer == truth
            assert trace.startswith("<think>\n" + OPENING_LINE + "\n")


def test_quick_and_skip_leave_out_the_last_step():
    for kind, opening in (("quick", QUICK_OPENING_LINE), ("skip", OPENING_LINE)):
        for r in generate_examples(500, seed=2, slip_rate=1.0, slip_kind=kind):
            operands, ops = parse_problem(r["extra_info"]["problem"])
            steps = solve_steps(operands, ops)
            trace = _trace(r)
            if not r["extra_info"]["slipped"]:  # only where skipping would not change the answer
                assert ops[-1] == "*" and (operands[-1] == 1 or steps[-2][3] == 0)
                continue
            assert trace.startswith(f"<think>\n{opening}\n")
            assert count_steps(trace) == len(ops) - 1
            assert extract_answer(trace) == str(steps[-2][3])
            assert is_quick(trace) == (kind == "quick")


def test_arith_slip_is_one_wrong_step_propagated():
    for r in generate_examples(300, seed=1, slip_rate=1.0, slip_kind="arith"):
        if not r["extra_info"]["slipped"]:
            continue
        operands, ops = parse_problem(r["extra_info"]["problem"])
        lines = [ln for ln in _trace(r).split("\n")[2:] if re.match(r"-?\d", ln)][: len(ops)]
        wrong = 0
        acc = operands[0]
        for line, op, b in zip(lines, ops, operands[1:]):
            lhs, res = line.split("=")
            assert lhs == f"{acc}{op}{b}"  # each step starts from the written previous result
            true = {"+": acc + b, "-": acc - b, "*": acc * b}[op]
            if int(res) != true:
                wrong += 1
                assert 1 <= abs(int(res) - true) <= 2
            acc = int(res)
        assert wrong == 1


def test_systematic_rates_by_difficulty():
    rows = list(get_task_dataset("overthink_slip", 6000, seed=0))
    by = Counter()
    n = Counter()
    for info in (r["extra_info"] for r in rows):
        n[info["num_ops"]] += 1
        by[info["num_ops"]] += info["slipped"]
    # modal on 3-op problems (greedy slips there), rare on 2-op ones
    assert abs(by[3] / n[3] - SLIP_PRESET[3]) < 0.06 and by[3] / n[3] > 0.5
    assert abs(by[2] / n[2] - SLIP_PRESET[2]) < 0.04
    # a mapping with a missing difficulty means no slips there; string keys (JSON) work
    rows = generate_examples(1000, seed=0, slip_rate={"3": 1.0})
    assert not any(r["extra_info"]["slipped"] for r in rows if r["extra_info"]["num_ops"] == 2)
    assert _rate([r for r in rows if r["extra_info"]["num_ops"] == 3]) > 0.9


def test_slips_do_not_change_the_problems():
    plain = generate_examples(1000, seed=4)
    noisy = generate_examples(1000, seed=4, slip_rate=0.5)
    assert [r["prompt"] for r in plain] == [r["prompt"] for r in noisy]
    assert [r["extra_info"]["redundant_chunks"] for r in plain] == [r["extra_info"]["redundant_chunks"] for r in noisy]
    assert generate_examples(50, seed=4, slip_rate=0.0) == generate_examples(50, seed=4)  # no extra fields
    assert generate_examples(500, seed=4, slip_rate=0.5) == noisy[:500]  # seeded
    test_rows = generate_examples(300, seed=4, split="test", slip_rate=0.5)
    assert {r["extra_info"]["problem"] for r in test_rows}.isdisjoint({r["extra_info"]["problem"] for r in noisy})


def test_bad_options():
    with pytest.raises(ValueError, match="slip_rate"):
        generate_examples(1, slip_rate=1.5)
    with pytest.raises(ValueError, match="slip_rate"):
        generate_examples(1, slip_rate={"long": 0.5})
    with pytest.raises(ValueError, match="slip_kind"):
        generate_examples(1, slip_rate=0.3, slip_kind="guess")
    pol = slip_policy({2: 0.0}, "quick", ("quick",), "s")
    assert not pol.active and not pol.draw(2)


def test_make_trace_default_unchanged():
    t = make_trace([3, 4, 2], ["+", "*"])
    assert t.startswith("<think>\nLet me compute step by step.\n3+4=7\n7*2=14\nSo the answer is 14.")
    assert count_steps(t) == 2 and not is_quick(t)
