"""The synthetic task registry and the overthinking-arithmetic generator."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from curriculum.tasks import TASKS, get_task_dataset
from curriculum.tasks.overthink import (
    DATA_SOURCE,
    OPENING_LINE,
    REDUNDANT_PHRASES,
    SPLIT_WORDS,
    count_redundant_chunks,
    extract_answer,
    generate_examples,
    make_overthink_dataset,
    make_trace,
    parse_problem,
    problem_from_prompt,
    problem_split,
    solve,
    solve_steps,
)

STEP = re.compile(r"^(\d+)([+\-*])(\d+)=(\d+)$")


def _trace(row) -> str:
    return row["completion"][0]["content"]


def _problem(row) -> str:
    return problem_from_prompt(row["prompt"][0]["content"])


def _split_chunks(trace: str) -> list[list[str]]:
    """Reasoning lines split at split-word lines (what the later chunker does)."""
    body = trace.split("<think>\n", 1)[1].split("\n</think>", 1)[0].split("\n")
    chunks: list[list[str]] = []
    for line in body:
        if not chunks or line.split(",")[0].split(" ")[0] in SPLIT_WORDS:
            chunks.append([line])
        else:
            chunks[-1].append(line)
    return chunks


@pytest.fixture(scope="module")
def train_rows():
    return generate_examples(2000, seed=0, split="train")


def test_columns_and_layout():
    ds = make_overthink_dataset(20, seed=0)
    assert {"prompt", "completion", "reward_model", "data_source", "extra_info"} <= set(ds.column_names)
    row = ds[0]
    assert row["prompt"] == [{"role": "user", "content": row["prompt"][0]["content"]}]
    assert row["completion"][0]["role"] == "assistant"
    assert row["reward_model"]["style"] == "rule"
    assert row["data_source"] == DATA_SOURCE
    info = row["extra_info"]
    for key in ("difficulty", "num_ops", "split", "index", "redundant_chunks"):
        assert key in info
    assert info["split"] == "train" and info["index"] == 0
    assert [r["extra_info"]["index"] for r in ds] == list(range(20))


def test_deterministic_by_seed():
    a = generate_examples(200, seed=7)
    b = generate_examples(200, seed=7)
    c = generate_examples(200, seed=8)
    assert a == b
    assert a != c


def test_train_test_disjoint():
    train = {_problem(r) for r in generate_examples(3000, seed=0, split="train")}
    test = {_problem(r) for r in generate_examples(300, seed=0, split="test")}
    assert train and test and not (train & test)
    assert all(problem_split(p) == "test" for p in test)
    assert all(problem_split(p) == "train" for p in train)
    # a different seed draws other problems but never crosses the split
    assert not ({_problem(r) for r in generate_examples(300, seed=5, split="test")} & train)


def test_answers_correct_and_intermediates_in_range(train_rows):
    for r in train_rows:
        problem = _problem(r)
        operands, ops = parse_problem(problem)
        assert 2 <= len(ops) <= 3 and all(1 <= x <= 9 for x in operands)
        acc = operands[0]
        for op, b in zip(ops, operands[1:]):
            acc = {"+": acc + b, "-": acc - b, "*": acc * b}[op]
            assert 0 <= acc <= 99
        assert r["reward_model"]["ground_truth"] == str(acc) == str(solve(problem))
        assert extract_answer(_trace(r)) == str(acc)
        assert r["extra_info"]["num_ops"] == r["extra_info"]["difficulty"] == len(ops)


def test_ops_and_operand_bounds_are_controllable():
    rows = generate_examples(300, seed=1, min_ops=1, max_ops=4, max_operand=5)
    n_ops = Counter(r["extra_info"]["num_ops"] for r in rows)
    assert set(n_ops) == {1, 2, 3, 4}
    for r in rows:
        operands, _ = parse_problem(_problem(r))
        assert max(operands) <= 5
    with pytest.raises(ValueError):
        generate_examples(1, min_ops=3, max_ops=2)


def test_trace_structure(train_rows):
    for r in train_rows[:500]:
        trace = _trace(r)
        operands, ops = parse_problem(_problem(r))
        steps = [f"{a}{op}{b}={c}" for a, op, b, c in solve_steps(operands, ops)]
        answer = r["reward_model"]["ground_truth"]
        assert trace.startswith("<think>\n" + OPENING_LINE + "\n")
        assert trace.endswith(f"\n</think>\n\\boxed{{{answer}}}")
        chunks = _split_chunks(trace)
        k = r["extra_info"]["redundant_chunks"]
        assert len(chunks) == 1 + k
        # chunk 0: the necessary reasoning, ending with the answer statement
        assert chunks[0] == [OPENING_LINE, *steps, f"So the answer is {answer}."]
        for chunk in chunks[1:]:
            # multi-line, opened by a redundant phrase, same steps, same answer
            assert chunk[0] in REDUNDANT_PHRASES
            assert chunk[1:] == [*steps, f"Yes, the answer is {answer}."]
        assert count_redundant_chunks(trace) == k
        for line in trace.split("\n"):
            if line[:1].isdigit():
                assert STEP.match(line)


def test_redundant_phrase_order(train_rows):
    # default: fixed order Wait, Hmm, But, Alternatively
    for r in train_rows:
        heads = [c[0] for c in _split_chunks(_trace(r))[1:]]
        assert heads == list(REDUNDANT_PHRASES[: len(heads)])
    # shuffled: distinct within a trace, varying across traces
    orders = set()
    for r in generate_examples(300, seed=0, redundancy={3: 1.0}, shuffle_phrases=True):
        heads = [c[0] for c in _split_chunks(_trace(r))[1:]]
        assert len(heads) == 3 == len(set(heads)) and set(heads) <= set(REDUNDANT_PHRASES)
        orders.add(tuple(heads))
    assert len(orders) > 10


def test_redundancy_distributions():
    std = Counter(r["extra_info"]["redundant_chunks"] for r in generate_examples(2000, seed=0))
    assert set(std) == {0, 1, 2, 3}
    assert all(400 <= std[k] <= 600 for k in range(4))
    heavy_rows = get_task_dataset("overthink_heavy", 2000, seed=0)
    heavy = Counter(r["redundant_chunks"] for r in heavy_rows["extra_info"])
    assert set(heavy) == {0, 1, 2, 3, 4}
    assert 0 < heavy[0] < 0.2 * 2000  # zero-chunk traces exist (the model must learn to stop)
    assert sum(heavy[k] for k in (1, 2, 3, 4)) >= 0.8 * 2000
    assert heavy[4] > heavy[1]
    custom = Counter(r["extra_info"]["redundant_chunks"] for r in generate_examples(50, redundancy={2: 1.0}))
    assert custom == {2: 50}
    with pytest.raises(ValueError, match="redundancy"):
        generate_examples(1, redundancy="nope")


def test_formats():
    row = generate_examples(1, seed=0, redundancy={1: 1.0})[0]
    spaced = generate_examples(1, seed=0, redundancy={1: 1.0}, spaced=True)[0]
    problem, problem_spaced = _problem(row), _problem(spaced)
    assert " " not in problem and " " in problem_spaced
    assert parse_problem(problem) == parse_problem(problem_spaced)
    assert row["prompt"][0]["content"] == f"Compute left to right: {problem}"
    operands, ops = parse_problem(problem)
    a, op, b, c = solve_steps(operands, ops)[0]
    assert f"\n{a}{op}{b}={c}\n" in _trace(row)
    assert f"\n{a} {op} {b} = {c}\n" in _trace(spaced)
    assert count_redundant_chunks(_trace(spaced)) == 1
    assert extract_answer(_trace(spaced)) == spaced["reward_model"]["ground_truth"]
    with pytest.raises(ValueError):
        parse_problem("3 + + 4")


def test_count_redundant_chunks():
    t0 = make_trace([3, 4, 2], ["+", "*"])
    assert count_redundant_chunks(t0) == 0
    t3 = make_trace([3, 4, 2], ["+", "*"], REDUNDANT_PHRASES[:3])
    assert count_redundant_chunks(t3) == 3
    assert count_redundant_chunks(t3 + "<|im_end|>") == 3
    # before the first answer statement nothing counts; after </think> nothing counts
    assert count_redundant_chunks("Wait, what?\n3+4=7\nSo the answer is 7.\nHmm, let me verify once more.") == 1
    assert count_redundant_chunks("<think>\nSo the answer is 7.\n</think>\nWait, 7") == 0
    assert count_redundant_chunks("no answer here\nWait, let me double-check.") == 0
    assert count_redundant_chunks("") == 0


def test_registry():
    assert {"overthink", "overthink_heavy"} <= set(TASKS)
    ds = get_task_dataset("overthink", 5, seed=0, split="test", max_ops=2)
    assert len(ds) == 5 and all(r["split"] == "test" and r["num_ops"] == 2 for r in ds["extra_info"])
    with pytest.raises(ValueError, match="overthink_heavy"):
        get_task_dataset("nope", 5)
