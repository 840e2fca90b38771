"""The ``overthink_adapt`` task (AdaptThink's start): overthink's rows with a share of NoThinking traces, every other
task's rows untouched."""

from __future__ import annotations

import pytest

from curriculum.tasks import TASKS, get_task_dataset, task_text_metrics
from curriculum.tasks.adapt import generate_adapt_examples, nothink_trace
from curriculum.tasks.overthink import generate_examples


def test_rows_are_overthinks_with_a_share_of_nothinking_traces():
    assert "overthink_adapt" in TASKS
    rows = generate_adapt_examples(400, seed=3)
    base = generate_examples(400, 3, "train", min_ops=1, max_ops=3)
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in base]  # the same problems, drawn alike
    nothink = [r["extra_info"]["nothink"] for r in rows]
    for row, plain, skip in zip(rows, base, nothink):
        text = row["completion"][0]["content"]
        if skip:
            assert text == f"</think>\n\\boxed{{{row['reward_model']['ground_truth']}}}" == nothink_trace(row["reward_model"]["ground_truth"])
        else:
            assert text == plain["completion"][0]["content"] and text.startswith("<think>\n")
    assert 70 <= sum(nothink) <= 130  # 25% of 400, binomial sd ~8.7
    assert {r["extra_info"]["num_ops"] for r in rows} == {1, 2, 3}
    by_ops = {k: [s for r, s in zip(rows, nothink) if r["extra_info"]["num_ops"] == k] for k in (1, 2, 3)}
    assert all(0.1 < sum(v) / len(v) < 0.4 for v in by_ops.values())  # whatever the difficulty: RL learns when
    assert generate_adapt_examples(400, seed=3) == rows  # seeded
    assert [r["prompt"] for r in get_task_dataset("overthink_adapt", 20, seed=3)] == [r["prompt"] for r in rows[:20]]


def test_rate_per_number_of_operations_and_bad_rates():
    rows = generate_adapt_examples(60, seed=0, nothink_rate={1: 1.0, 2: 0.0})
    assert all(r["extra_info"]["nothink"] == (r["extra_info"]["num_ops"] == 1) for r in rows)
    assert not any(r["extra_info"]["nothink"] for r in generate_adapt_examples(30, nothink_rate=0.0))
    for bad in (1.5, -0.1, "x", {1: 2.0}):
        with pytest.raises(ValueError, match="nothink_rate must be in"):
            generate_adapt_examples(5, nothink_rate=bad)


def test_other_tasks_are_untouched_and_the_metric():
    assert "nothink" not in get_task_dataset("overthink", 5)[0]["extra_info"]
    assert "nothink" not in task_text_metrics("overthink") and "nothink" not in task_text_metrics("overthink_heavy")
    metric = task_text_metrics("overthink_adapt")["nothink"]
    assert metric(" </think>\n\\boxed{3}") == 1.0 and metric("<think>\n1+2=3\n</think>\n\\boxed{3}") == 0.0


def test_the_tiny_tokenizer_starts_a_nothinking_trace_with_the_end_of_thinking_token(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    end, start = tok.convert_tokens_to_ids("</think>"), tok.convert_tokens_to_ids("<think>")
    assert tok(nothink_trace(9), add_special_tokens=False)["input_ids"][0] == end
    assert tok("</think>", add_special_tokens=False)["input_ids"] == [end]  # the forced prefix is the same token
    assert tok("<think>", add_special_tokens=False)["input_ids"] == [start]
    assert tok.decode([end], skip_special_tokens=True) == "</think>"
