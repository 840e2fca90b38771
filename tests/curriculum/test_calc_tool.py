"""task:calc_tool: the generator's shares and splits, and SFT/RL parity: the SFT rendering of a
tool trace is token for token what a tool episode replaying the teacher's turns produces."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from curriculum.tasks import TASK_ROLLOUTS, get_task_dataset, task_row_metrics
from curriculum.tasks.calc_tool import generate_examples
from rl.sft_data import IGNORE, row_tools, tokenize_row
from rollout.episodes import episode_factory, run_episodes
from rollout.types import SamplingConfig, Trajectory


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_shares_answers_and_determinism():
    rows = generate_examples(2000, seed=3)
    assert rows == generate_examples(2000, seed=3) and rows != generate_examples(2000, seed=4)
    kinds = Counter((r["extra_info"]["needs_tool"], r["extra_info"]["teacher_tool_calls"]) for r in rows)
    hard = kinds[(True, 0)] + kinds[(True, 1)]
    assert 0.21 < hard / 2000 < 0.29  # hard_fraction 0.25
    # the teacher calls indiscriminately: ~85% on easy and on hard rows alike
    assert 0.81 < kinds[(False, 1)] / (2000 - hard) < 0.89 and 0.79 < kinds[(True, 1)] / hard < 0.91
    for r in rows:
        e = r["extra_info"]
        value = e["a"] + e["b"] if e["op"] == "+" else e["a"] * e["b"]
        assert r["reward_model"]["ground_truth"] == str(value)
        assert (e["a"] >= 10 and e["b"] >= 10) == e["needs_tool"] and max(e["a"], e["b"]) <= 99
        final = r["messages"][-1]["content"]
        assert final.endswith(f"\\boxed{{{value}}}")
        assert ("<tool_call>" in r["messages"][1]["content"]) == bool(e["teacher_tool_calls"])
        assert len(r["messages"]) == (4 if e["teacher_tool_calls"] else 2)
        # every easy trace states its fact (a tool call on it only checks it); a hard tool trace does not
        first = r["messages"][1]["content"]
        assert (f"{e['problem']}={value}" in first) == (not e["needs_tool"] or not e["teacher_tool_calls"])


def test_hard_test_problems_are_never_trained_on():
    train = {r["extra_info"]["problem"] for r in generate_examples(3000) if r["extra_info"]["needs_tool"]}
    test = [r for r in generate_examples(500, split="test") if r["extra_info"]["needs_tool"]]
    assert test and not train & {r["extra_info"]["problem"] for r in test}
    with pytest.raises(ValueError, match="tool_rate"):
        generate_examples(4, tool_rate=1.5)


class TeacherEngine:
    """Replays each row's teacher trace, turn by turn (the ids the SFT rendering trains on)."""

    def __init__(self, tok, rows):
        self.tok = tok
        self.turns = {r["prompt"][0]["content"]: [m["content"] for m in r["messages"] if m["role"] == "assistant"]
                      for r in rows}
        self.eos_token_ids = {tok.eos_token_id}

    def generate(self, prompt_ids, n, sampling):
        out = []
        for p in prompt_ids:
            text = self.tok.decode(p, skip_special_tokens=False)
            key = next(k for k in self.turns if k + "<|im_end|>" in text)
            turns = self.turns[key]
            k = text.count("<|im_start|>assistant") - 1
            # the model stops at </tool_call> (a stop string) and ends its last turn with eos
            content = turns[k] + ("" if "</tool_call>" in turns[k] else self.tok.eos_token)
            ids = self.tok(content, add_special_tokens=False)["input_ids"]
            out.append([Trajectory(prompt_ids=list(p), completion_ids=ids, text=self.tok.decode(ids, skip_special_tokens=True))])
        return out

    def sync_weights(self, model):
        pass


def test_sft_rendering_equals_the_tool_episode_token_for_token(tok):
    ds = get_task_dataset("calc_tool", 40, seed=1)
    rows = list({r["prompt"][0]["content"]: r for r in ds}.values())  # through Arrow, as the trainers read them
    rows = [r for r in rows if r["extra_info"]["teacher_tool_calls"]][:3] + [
        r for r in rows if not r["extra_info"]["teacher_tool_calls"]][:2]
    rollout = TASK_ROLLOUTS["calc_tool"]
    groups = run_episodes(TeacherEngine(tok, rows), tok, rows, episode_factory(rollout["environment"], rollout["environment_kwargs"]),
                          1, SamplingConfig(max_new_tokens=160), max_turns=rollout["max_turns"], max_episode_tokens=160)
    for row, (traj,) in zip(rows, groups):
        ids, labels = tokenize_row(tok, row, "messages", 512)
        nl = tok("\n", add_special_tokens=False)["input_ids"]
        assert ids[-len(nl):] == nl  # the template's newline after the last turn: never generated
        assert traj.prompt_ids + traj.completion_ids == ids[: -len(nl)]
        # what SFT trains on is what RL trains on, except the eos after </tool_call>: the episode stops
        # at the stop string and that eos comes back as the observation's first token (masked)
        p = len(traj.prompt_ids)
        trained_sft = [i - p for i, lab in enumerate(labels) if lab != IGNORE]
        trained_rl = [i for i, m in enumerate(traj.completion_mask) if m]
        calls = row["extra_info"]["teacher_tool_calls"]
        assert traj.meta["tool_calls"] == calls and traj.meta["tool_errors"] == 0
        assert set(trained_rl) <= set(trained_sft) and len(trained_sft) - len(trained_rl) == calls
        assert traj.text.endswith(f"\\boxed{{{row['reward_model']['ground_truth']}}}")


def test_tools_field_is_read_as_list_or_json_and_validated(tok):
    row = generate_examples(1)[0]
    assert row_tools({"tools": json.dumps(row["tools"])}) == row["tools"] == row_tools(row)
    assert row_tools({}) is None and row_tools({"tools": []}) is None
    with_tools, _ = tokenize_row(tok, row, "messages", 512)
    without, _ = tokenize_row(tok, {**row, "tools": None}, "messages", 512)
    assert len(with_tools) > len(without) + 50  # the tool is listed in a system turn
    from curriculum.data import DatasetError

    with pytest.raises(DatasetError, match="row 7 field 'tools' is not valid JSON"):
        row_tools({"tools": "{oops"}, "row 7")
    with pytest.raises(DatasetError, match="list of JSON schemas"):
        row_tools({"tools": ["calculator"]})


def test_row_metrics_split_calls_by_need():
    m = task_row_metrics("calc_tool")
    hard, easy = {"extra_info": {"needs_tool": True}}, {"extra_info": {"needs_tool": False}}
    assert m["tool_calls_needed"](hard, {"tool_calls": 2}) == 2.0 and m["tool_calls_needed"](easy, {"tool_calls": 1}) is None
    assert m["tool_calls_unneeded"](easy, {"tool_calls": 1}) == 1.0 and task_row_metrics("explore") == {}
    # the headroom check: accuracy on easy rows split by whether the sample called
    direct_ok, called_wrong = {"tool_calls": 0, "correct": True}, {"tool_calls": 1, "correct": False}
    assert m["easy_direct_accuracy"](easy, direct_ok) == 1.0 and m["easy_direct_accuracy"](easy, called_wrong) is None
    assert m["easy_call_accuracy"](easy, called_wrong) == 0.0 and m["easy_call_accuracy"](easy, direct_ok) is None
    assert m["easy_direct_accuracy"](hard, direct_ok) is None and m["easy_call_accuracy"](hard, called_wrong) is None
