"""task:mixed (DeReason's world): the mixture, its difficulty column, the slips, the split."""

from __future__ import annotations

from collections import Counter

import pytest

from curriculum.data import load_dataset_spec
from curriculum.tasks import TASKS, task_text_metrics
from curriculum.tasks.mixed import (
    DEFAULT_COMPONENTS,
    bucket_of,
    check_components,
    component_counts,
    generate_examples,
)
from curriculum.tasks.overthink import extract_answer, is_quick, parse_problem, solve


def test_registered_and_loadable_as_a_spec():
    assert "mixed" in TASKS
    ds = load_dataset_spec("task:mixed", "train", 40, 0)
    assert len(ds) == 40 and set(ds.column_names) >= {"prompt", "completion", "reward_model", "extra_info"}
    assert set(task_text_metrics("mixed")) == {"slip", "steps", "nothink"}


def test_counts_follow_the_weights_and_rows_are_seeded():
    rows = generate_examples(400, seed=3)
    counts = Counter(r["extra_info"]["component"] for r in rows)
    assert counts == {"one_step": 200, "two_step": 100, "multi_step": 100}
    assert generate_examples(400, seed=3) == rows
    assert generate_examples(400, seed=4) != rows
    assert [r["extra_info"]["index"] for r in rows] == list(range(400))
    # shuffled: the components are interleaved, not in blocks
    assert {r["extra_info"]["component"] for r in rows[:40]} == {"one_step", "two_step", "multi_step"}


def test_component_counts_largest_remainder():
    assert component_counts([0.5, 0.25, 0.25], 7) == [3, 2, 2]  # 3.5, 1.75, 1.75
    assert sum(component_counts([1, 1, 1], 100)) == 100
    assert component_counts([1.0, 0.0], 5) == [5, 0]


def test_difficulty_ops_and_answers():
    want = {c["name"]: c for c in DEFAULT_COMPONENTS}
    for r in generate_examples(300, seed=0):
        info = r["extra_info"]
        comp = want[info["component"]]
        operands, ops = parse_problem(info["problem"])
        assert len(ops) == comp["num_ops"] == info["num_ops"]
        assert info["difficulty"] == comp["difficulty"]
        assert r["reward_model"]["ground_truth"] == str(solve(info["problem"]))
        assert bucket_of(r) == ("hard" if comp["difficulty"] >= 4 else "easy")


def test_only_the_multi_step_teacher_slips_and_a_slip_is_wrong():
    rows = generate_examples(2000, seed=0)
    by = Counter((r["extra_info"]["component"], r["extra_info"]["slipped"]) for r in rows)
    assert by[("one_step", True)] == 0 and by[("two_step", True)] == 0
    rate = by[("multi_step", True)] / (by[("multi_step", True)] + by[("multi_step", False)])
    # nominal 0.6; a skipped last step that leaves the answer unchanged (*1) is not applied
    assert 0.45 < rate < 0.62
    for r in rows:
        text = r["completion"][0]["content"]
        right = extract_answer(text) == r["reward_model"]["ground_truth"]
        assert right != r["extra_info"]["slipped"]
        assert is_quick(text) == r["extra_info"]["slipped"]


def test_train_and_test_are_disjoint():
    train = {r["extra_info"]["problem"] for r in generate_examples(1500, seed=0, split="train")}
    test = {r["extra_info"]["problem"] for r in generate_examples(300, seed=1, split="test")}
    assert test and not train & test


def test_custom_components():
    comps = [{"name": "a", "weight": 1, "num_ops": 1, "difficulty": 2},
             {"name": "b", "weight": 3, "num_ops": 2, "difficulty": 5, "slip_rate": 1.0}]
    rows = generate_examples(40, seed=0, components=comps)
    assert Counter(r["extra_info"]["component"] for r in rows) == {"a": 10, "b": 30}
    assert {r["extra_info"]["difficulty"] for r in rows} == {2, 5}


@pytest.mark.parametrize(
    "comps, message",
    [
        ([], "at least one"),
        ([{"name": "a", "weight": 1, "num_ops": 1}], r"components\[0\]: missing field 'difficulty'"),
        ([{"name": "a", "weight": 1, "num_ops": 1, "difficulty": 6}], r"components\[0\] \(a\): difficulty"),
        ([{"name": "a", "weight": 1, "num_ops": 1, "difficulty": 1, "slip_rate": 0.5}], "needs num_ops >= 2"),
        ([{"name": "a", "weight": 1, "num_ops": 9, "difficulty": 1}], "num_ops must be"),
        ([{"name": "a", "weight": 1, "num_ops": 1, "difficulty": 1, "colour": 1}], "unknown field"),
        ([{"name": "a", "weight": 1, "num_ops": 1, "difficulty": 1}] * 2, "duplicate name"),
        ([{"name": "a", "weight": 0, "num_ops": 1, "difficulty": 1}], "sum to 0"),
    ],
)
def test_bad_components_name_the_field(comps, message):
    with pytest.raises(ValueError, match=message):
        check_components(comps)


def test_bucket_of_needs_a_difficulty():
    with pytest.raises(ValueError, match="row 7: extra_info.difficulty"):
        bucket_of({"extra_info": {"index": 7}})
