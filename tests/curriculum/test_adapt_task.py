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
    # the metric is every <think> task's (AdaptThink runs on the board's tasks too); the rows stay untouched
    assert "nothink" in task_text_metrics("overthink") and "nothink" in task_text_metrics("overthink_heavy")
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


def test_any_think_task_takes_a_nothink_mix_with_its_prompts_unchanged():
    """``nothink_rate`` on another task (the start `parsimony compare` trains for AdaptThink): the same prompts and
    ground truths, a seeded share of the traces replaced by the NoThinking trace, the mode in extra_info; a task
    whose traces do not think is refused by name; overthink_adapt's rows are unchanged by the shared helper."""
    from curriculum.tasks import get_task_dataset

    plain = get_task_dataset("explore", 200, seed=1)
    mixed = get_task_dataset("explore", 200, seed=1, nothink_rate=0.25)
    assert mixed["prompt"] == plain["prompt"] and mixed["reward_model"] == plain["reward_model"]
    modes = [r["extra_info"]["nothink"] for r in mixed]
    assert 30 <= sum(modes) <= 70  # ~25% of 200
    for row, before, nothink in zip(mixed, plain, modes):
        expected = [{"role": "assistant", "content": nothink_trace(before["reward_model"]["ground_truth"])}]
        assert row["completion"] == (expected if nothink else before["completion"])
    assert [r["extra_info"]["nothink"] for r in get_task_dataset("explore", 200, seed=1, nothink_rate=0.25)] == modes
    assert not any(r["extra_info"]["nothink"] for r in get_task_dataset("explore", 50, seed=1, nothink_rate=0.0))
    with pytest.raises(ValueError, match="word_problems's traces must open with <think>"):
        get_task_dataset("word_problems", 5, nothink_rate=0.25)
    with pytest.raises(ValueError, match="nothink_rate must be in"):
        get_task_dataset("explore", 5, nothink_rate=1.5)
    with pytest.raises(ValueError, match="a rate per number of operations is overthink_adapt's option"):
        get_task_dataset("explore", 5, nothink_rate={1: 0.5})
    # overthink_adapt through the shared helper: the NoThinking rows seed 0 gave before the helper (recorded)
    rows = get_task_dataset("overthink_adapt", 40, seed=0)
    assert [i for i, r in enumerate(rows) if r["extra_info"]["nothink"]] == [8, 16, 19, 22, 24, 26, 27, 36]
