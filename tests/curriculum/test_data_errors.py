"""Data that cannot be used ends in one DatasetError line naming the file and line, the hub id, or the rows."""

from __future__ import annotations

import json
import time

import pytest
from datasets import Dataset

from curriculum.data import DatasetError, load_dataset_spec, validate_dataset


def test_a_malformed_jsonl_line_is_named_by_file_and_line(tmp_path):
    f = tmp_path / "train.jsonl"
    rows = [json.dumps({"prompt": "1+1?", "answer": "2"})] * 3
    f.write_text("\n".join(rows[:2] + ['{"prompt": "2+2?", "answer": 4'] + rows[2:]) + "\n")
    with pytest.raises(DatasetError, match=r"train\.jsonl: line 3: not valid JSON") as e:
        load_dataset_spec(str(f))
    assert "\n" not in str(e.value)
    f.write_text(rows[0] + "\n[1, 2]\n")
    with pytest.raises(DatasetError, match=r"line 2: a JSON list, expected an object"):
        load_dataset_spec(str(f))
    f.write_bytes(b'{"prompt": "\xff\xfe", "answer": "1"}\n')
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_dataset_spec(str(f))


def test_a_good_jsonl_still_loads(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"{i}+1?", "answer": str(i + 1)}) for i in range(4)) + "\n\n")
    ds = load_dataset_spec(str(f))
    assert len(ds) == 4 and ds[3]["answer"] == "4"


def test_a_hub_id_without_network_fails_fast_in_one_line(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: the probe fails at once
    t0 = time.time()
    with pytest.raises(DatasetError, match=r"dataset 'someone/no-such-set-xyz': .*no network") as e:
        load_dataset_spec("someone/no-such-set-xyz")
    assert time.time() - t0 < 15 and "\n" not in str(e.value)


def test_an_answer_that_is_a_dict_is_refused_by_row():
    ds = Dataset.from_list([{"prompt": "a", "answer": {"value": 42}}, {"prompt": "b", "answer": {"value": 1}}])
    with pytest.raises(DatasetError, match=r"row 0 field 'answer' is a dict .*expected a string, a number or a list"):
        validate_dataset(ds)
    ok = Dataset.from_list([{"prompt": "a", "reward_model": {"ground_truth": "42"}}])
    validate_dataset(ok)  # a ground truth inside reward_model is fine


def test_validation_names_the_first_ten_bad_rows_and_counts_the_rest():
    rows = [{"prompt": "q" if i % 2 else "", "answer": "1" if i % 3 else ""} for i in range(30)]
    with pytest.raises(DatasetError) as e:
        validate_dataset(Dataset.from_list(rows))
    msg = str(e.value)
    assert msg.count("row ") == 10 and "row 0 field 'prompt' is an empty string" in msg
    assert "row 3 has no answer field" in msg
    bad = sum(1 for i in range(30) if i % 2 == 0 or i % 3 == 0)
    assert f"(and {bad - 10} more bad rows)" in msg
