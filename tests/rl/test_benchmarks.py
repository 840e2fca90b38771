"""Benchmark registry and loading: the shared data, tasks, local files, the hub path."""

from __future__ import annotations

import json

import pytest

from curriculum.data import DatasetError
from rl.eval.benchmarks import (
    BENCHMARKS,
    canonical_name,
    expand_benchmark_names,
    load_benchmark,
    load_benchmarks,
    load_registered,
    load_table_benchmark,
    rows_to_problems,
)


def _root_conftest():
    # tests/conftest.py by path: `import conftest` may resolve to another directory's conftest
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_parsimony_root_conftest", Path(__file__).resolve().parents[1] / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


require_shared_data = _root_conftest().require_shared_data

# the row counts of the shared copies (DESIGN.md, "Shared data")
EXPECTED_ROWS = {
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "hmmt25": 30,
    "math500": 500,
    "olympiadbench": 581,
    "gpqa": 198,
}


def test_registry_names_and_all():
    assert set(BENCHMARKS) == set(EXPECTED_ROWS)
    assert expand_benchmark_names(["all"]) == list(BENCHMARKS)
    assert expand_benchmark_names(["AIME2024", "gpqa_diamond", "math", "aime24", "task:overthink", "x.jsonl"]) == [
        "aime24", "gpqa", "math500", "task:overthink", "x.jsonl"]
    assert expand_benchmark_names(["math500,amc23"]) == ["math500", "amc23"]
    assert canonical_name("olympiad_bench") == "olympiadbench" and canonical_name("nope") is None
    assert BENCHMARKS["gpqa"].mode == "choice"
    assert all(s.mode == "math" for n, s in BENCHMARKS.items() if n != "gpqa")


@pytest.mark.parametrize("name", list(EXPECTED_ROWS))
def test_shared_benchmarks_load_with_expected_rows(name):
    data = require_shared_data() / "benchmarks"
    from rewards.math import gold_choice_letter

    bench = load_registered(name, data_dir=data)
    assert len(bench) == EXPECTED_ROWS[name] == BENCHMARKS[name].num_problems
    assert bench.name == name and bench.source.endswith("test.parquet")
    assert [p.index for p in bench.problems] == list(range(len(bench)))
    for p in bench.problems:
        assert isinstance(p.prompt, list) and p.prompt and p.prompt[-1]["role"] == "user"
        assert p.prompt[-1]["content"].strip()
        assert p.answer.strip()
    if name == "gpqa":
        assert bench.mode == "choice"
        assert all(gold_choice_letter(p.answer) in "ABCD" for p in bench.problems)
    else:
        assert bench.mode == "math"


def test_shared_benchmarks_all_and_limit():
    data = require_shared_data() / "benchmarks"
    benches = load_benchmarks(["all"], data_dir=data, limit=2)
    assert [b.name for b in benches] == list(EXPECTED_ROWS)
    assert all(len(b) == 2 for b in benches)
    aime = load_benchmark("aime2024", data_dir=data, limit=5)
    assert aime.name == "aime24" and aime.problems[0].answer == "33"


def test_where_keeps_a_subset_before_the_limit_and_names_it():
    data = require_shared_data() / "benchmarks"
    import pandas as pd

    table = pd.read_parquet(data / "math" / "test.parquet")
    level1 = [i for i, v in enumerate(table["level"]) if str(v) == "1"]
    bench = load_benchmark("math500", data_dir=data, where={"level": "1"})
    assert bench.name == "math500[level=1]" and bench.meta["where"] == {"level": "1"}
    assert [p.index for p in bench.problems] == level1 and len(level1) == 43
    assert [p.index for p in load_benchmark("math500", data_dir=data, where={"level": "1"}, limit=3).problems] == level1[:3]
    with pytest.raises(DatasetError, match=r"no problems where level=9 \(no row matches\)"):
        load_benchmark("math500", data_dir=data, where={"level": "9"})
    with pytest.raises(DatasetError, match=r"no row has column\(s\) \['grade'\]"):
        load_benchmark("math500", data_dir=data, where={"grade": "1"})


def test_where_on_a_file_and_its_parsing(tmp_path):
    from rl.eval.benchmarks import parse_where

    path = tmp_path / "b.jsonl"
    rows = [{"prompt": f"q{i}", "answer": str(i), "meta": {"kind": "even" if i % 2 == 0 else "odd"}} for i in range(6)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    bench = load_benchmark(str(path), where=parse_where(["meta.kind=odd"]))
    assert bench.name == "b[meta.kind=odd]" and [p.answer for p in bench.problems] == ["1", "3", "5"]
    assert parse_where(["level=1", " subject = Algebra "]) == {"level": "1", "subject": "Algebra"}
    with pytest.raises(DatasetError, match="--where takes COLUMN=VALUE, got 'level'"):
        parse_where(["level"])


def test_missing_data_dir_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PARSIMONY_BENCHMARK_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match=r"math500.*does not exist"):
        load_benchmark("math500")
    with pytest.raises(DatasetError, match="unknown benchmark 'aime99'"):
        load_benchmark("aime99")


def test_task_benchmark():
    bench = load_benchmark("task:overthink", task_num_examples=12, seed=1)
    assert bench.name == "task:overthink" and len(bench) == 12 and bench.mode == "math"
    assert all(p.answer.lstrip("-").isdigit() for p in bench.problems)
    again = load_benchmark("task:overthink", task_num_examples=12, seed=1, limit=4)
    assert [p.answer for p in again.problems] == [p.answer for p in bench.problems[:4]]
    with pytest.raises(DatasetError, match="unknown task"):
        load_benchmark("task:nope")


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_local_jsonl_with_prompt_and_answer_columns(tmp_path):
    path = _write_jsonl(tmp_path / "mine.jsonl", [
        {"prompt": "What is 2+2?", "answer": 4},
        {"prompt": [{"role": "user", "content": "What is 3+3?"}], "answer": "6"},
        {"prompt": "Half of 3?", "answer": 1.5},
    ])
    bench = load_benchmark(str(path))
    assert bench.name == "mine" and bench.mode == "math" and len(bench) == 3
    assert [p.answer for p in bench.problems] == ["4", "6", "1.5"]
    assert bench.problems[0].prompt == "What is 2+2?"
    assert bench.problems[1].prompt == [{"role": "user", "content": "What is 3+3?"}]
    assert load_benchmark(str(path), limit=1).problems[0].answer == "4"
    choice = load_benchmark(str(path), mode="choice")
    assert choice.mode == "choice"


def test_parquet_and_json_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": [{"role": "user", "content": "1+1?"}], "reward_model": {"ground_truth": "2"}, "data_source": "t"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    bench = load_benchmark(str(tmp_path / "t.parquet"))
    assert bench.problems[0].answer == "2" and bench.problems[0].prompt[0]["content"] == "1+1?"
    (tmp_path / "t.json").write_text(json.dumps({"prompt": ["a?", "b?"], "answer": ["1", "2"]}))
    assert [p.answer for p in load_benchmark(str(tmp_path / "t.json")).problems] == ["1", "2"]


def test_column_mapping_through_the_hub_function_on_a_local_file(tmp_path):
    path = _write_jsonl(tmp_path / "hubby.jsonl", [
        {"problem": "Find x if x+1=3.", "final_answer": ["2"], "id": 7},
        {"problem": "Find y if 2y=5.", "final_answer": ["$\\frac{5}{2}$"], "id": 8},
        {"problem": "Give both roots.", "final_answer": ["1", "2"], "id": 9},
    ])
    tmpl = "{prompt} Put the final answer within \\boxed{}."
    bench = load_table_benchmark(str(path), prompt_column="problem", answer_column="final_answer", prompt_template=tmpl,
                                 name="olympiadbench")
    assert bench.name == "olympiadbench" and bench.mode == "math"
    assert bench.problems[0].prompt == "Find x if x+1=3. Put the final answer within \\boxed{}."
    # a list answer is read as every ground truth is (rewards.answers.normalize_ground_truth): accepted answers
    assert [p.answer for p in bench.problems] == ["2", "$\\frac{5}{2}$", ["1", "2"]]
    # a registered name picks that benchmark's grading mode
    assert load_table_benchmark(str(path), prompt_column="problem", answer_column="id", name="gpqa").mode == "choice"
    with pytest.raises(DatasetError, match="row 0 has no answer"):
        load_table_benchmark(str(path), prompt_column="problem", answer_column="nope")
    with pytest.raises(DatasetError, match="row 0 field 'question' is missing"):
        load_table_benchmark(str(path), prompt_column="question", answer_column="id")


def test_hub_branch_calls_load_dataset_with_id_config_split():
    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return [{"question": "Q1", "answer": 3}, {"question": "Q2", "answer": 5}]

    bench = load_table_benchmark("org/AIME-2025", split="train", config="I", prompt_column="question",
                                 answer_column="answer", loader=fake_load_dataset, limit=1)
    assert calls == [(("org/AIME-2025", "I"), {"split": "train"})]
    assert bench.name == "AIME-2025" and bench.source == "hub:org/AIME-2025:I [train]"
    assert [(p.prompt, p.answer) for p in bench.problems] == [("Q1", "3")]

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the hub\nlong traceback text")

    with pytest.raises(DatasetError, match=r"^could not load hub dataset 'org/x' \(split 'test'\): Couldn't reach the hub$"):
        load_table_benchmark("org/x", loader=offline)


def test_rows_to_problems_validation():
    with pytest.raises(DatasetError, match="row 1 field 'prompt' is an empty string"):
        rows_to_problems([{"prompt": "ok", "answer": "1"}, {"prompt": " ", "answer": "1"}])
    with pytest.raises(DatasetError, match="no problems"):
        rows_to_problems([])
    with pytest.raises(DatasetError, match="must contain"):
        rows_to_problems([{"prompt": "a", "answer": "1"}], prompt_template="no placeholder")
    msgs = rows_to_problems([{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
                              "answer": "1"}], prompt_template="<{prompt}>")
    assert msgs[0].prompt == [{"role": "system", "content": "s"}, {"role": "user", "content": "<q>"}]


def test_missing_file_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_benchmark(str(tmp_path / "nope.jsonl"))
