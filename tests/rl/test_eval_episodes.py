"""Evaluation of tool episodes: graded final answers, the model's own tokens, tool calls per
bucket and on problems that need the tool or not, against hand counts."""

from __future__ import annotations

import pytest

from curriculum.tasks import TASK_ROLLOUTS, task_row_metrics
from curriculum.tasks.calc_tool import generate_examples
from rl.eval.episodes import evaluate_episodes, tool_call_buckets
from rollout.types import Trajectory


class CannotMultiplyEngine:
    """Plays the teacher, except that a direct answer to a two-digit problem is off by one (what a
    model that cannot do two-digit arithmetic by heart writes)."""

    def __init__(self, tok, rows):
        self.tok = tok
        self.rows = {r["prompt"][0]["content"]: r for r in rows}
        self.eos_token_ids = {tok.eos_token_id}

    def generate(self, prompt_ids, n, sampling):
        out = []
        for p in prompt_ids:
            text = self.tok.decode(p, skip_special_tokens=False)
            row = next(r for k, r in self.rows.items() if k + "<|im_end|>" in text)
            turns = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
            k = text.count("<|im_start|>assistant") - 1
            content = turns[k]
            if row["extra_info"]["needs_tool"] and not row["extra_info"]["teacher_tool_calls"]:
                value = int(row["reward_model"]["ground_truth"])
                content = content.replace(f"\\boxed{{{value}}}", f"\\boxed{{{value + 1}}}")
            if "</tool_call>" not in content:
                content += self.tok.eos_token
            ids = self.tok(content, add_special_tokens=False)["input_ids"]
            out.append([Trajectory(prompt_ids=list(p), completion_ids=ids, text=self.tok.decode(ids, skip_special_tokens=True))])
        return out

    def sync_weights(self, model):
        pass


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_accuracy_tokens_and_tool_calls_match_hand_counts(tok):
    rows = list({r["prompt"][0]["content"]: r for r in generate_examples(40, seed=5, hard_fraction=0.5, tool_rate=0.6)}.values())
    rollout = TASK_ROLLOUTS["calc_tool"]
    res = evaluate_episodes(
        None, tok, rows, environment=rollout["environment"], environment_kwargs=rollout["environment_kwargs"],
        max_turns=rollout["max_turns"], max_new_tokens=160, batch_size=7, engine=CannotMultiplyEngine(tok, rows),
        row_metrics=task_row_metrics("calc_tool"),
    )
    calls = [r["extra_info"]["teacher_tool_calls"] for r in rows]
    need = [r["extra_info"]["needs_tool"] for r in rows]
    correct = [bool(c) or not h for c, h in zip(calls, need)]  # only direct answers to hard problems are wrong
    assert 0 < sum(correct) < len(rows)
    assert res["accuracy"] == pytest.approx(sum(correct) / len(rows))
    assert [s["correct"] for s in res["samples"]] == correct
    assert res["mean_tool_calls"] == pytest.approx(sum(calls) / len(rows))
    assert res["zero_tool_calls_frac"] == pytest.approx(calls.count(0) / len(rows))
    assert res["tool_calls_needed"] == pytest.approx(sum(c for c, h in zip(calls, need) if h) / sum(need))
    assert res["tool_calls_unneeded"] == pytest.approx(sum(c for c, h in zip(calls, need) if not h) / need.count(False))
    buckets = res["tool_calls_by_bucket"]
    zero = [ok for ok, c in zip(correct, calls) if c == 0]
    assert buckets["0"]["share"] == pytest.approx(len(zero) / len(rows))
    assert buckets["0"]["accuracy"] == pytest.approx(sum(zero) / len(zero)) and buckets["1"]["accuracy"] == 1.0
    # tokens are the model's own: a tool episode's observation is counted apart
    for s, c in zip(res["samples"], calls):
        assert (s["observation_tokens"] > 0) == bool(c) and s["turns"] == 1 + c and s["episode_end"] == "done"
    assert res["mean_turns"] == pytest.approx(1 + sum(calls) / len(rows))


def test_buckets_cap_at_top():
    samples = [{"tool_calls": t, "correct": ok} for t, ok in [(0, True), (1, False), (4, True), (3, False)]]
    assert tool_call_buckets(samples) == {"0": {"share": 0.25, "accuracy": 1.0}, "1": {"share": 0.25, "accuracy": 0.0},
                                          "3+": {"share": 0.5, "accuracy": 0.5}}
