"""``task:long_context``: the ledgers, the teacher's traces in both systems, and real episodes (the planner
environment with its executors, the single agent's tool episode) replayed by a teacher engine under the
512-token context every arm shares: the planner and its executors fit, a single agent reading three
ledgers does not."""

from __future__ import annotations

import re

import pytest
from transformers import AutoTokenizer

from curriculum.tasks import TASK_ROLLOUTS, get_task_dataset
from curriculum.tasks.long_context import (CONTEXT_TOKENS, ENVIRONMENT, SINGLE_ENVIRONMENT, generate_examples, ledger_rows,
                                           local_truth, read_ledger, trace_tokens)
from rollout.episodes import episode_factory, run_episodes
from rollout.mgrpo.agents import EXECUTOR_SYSTEM_PROMPT, PLANNER_SYSTEM_PROMPT
from rollout.types import SamplingConfig, Trajectory


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_ledgers_are_pure_functions_of_their_names():
    rows = ledger_rows("L481")
    assert rows == ledger_rows("L481") and rows != ledger_rows("L482")
    assert 12 <= len(rows) <= 24 and len({k for k, _ in rows}) == len(rows)
    assert all(re.fullmatch(r"[a-z]{2}", k) and 10 <= v <= 99 for k, v in rows)
    assert read_ledger(" L481 ").splitlines() == [f"{k} {v}" for k, v in rows]
    for bad in ("L48", "L4811", "x481", ""):
        with pytest.raises(ValueError, match="no ledger"):
            ledger_rows(bad)


def test_local_truth_of_lookups_and_sums():
    key, value = ledger_rows("L007")[3]
    assert local_truth(f"{key} in L007") == str(value)
    missing = next(a + b for a in "abcdefghijklmnopqrstuvwxyz" for b in "abcdefghijklmnopqrstuvwxyz"
                   if a + b not in dict(ledger_rows("L007")))
    assert local_truth(f"{missing} in L007") is None
    assert local_truth("47+35+82") == "164"
    assert local_truth("read the ledger") is None and local_truth("qx in L9999") is None


def test_the_same_problems_and_draws_in_every_role():
    planner = generate_examples(60, seed=3, role="planner")
    single = generate_examples(60, seed=3, role="single")
    executor = generate_examples(60, seed=3, role="executor")
    sft = generate_examples(60, seed=3, role="sft")
    assert [r["extra_info"] for r in planner] == [r["extra_info"] for r in single]
    assert [r["prompt"] for r in planner] == [r["prompt"] for r in single]
    assert len(sft) == len(planner) + len(executor)
    assert {r["extra_info"]["terms"] for r in planner} == {2, 3}
    test = generate_examples(60, seed=3, split="test")
    assert not {r["extra_info"]["problem"] for r in test} & {r["extra_info"]["problem"] for r in planner}
    for r in planner:
        info = r["extra_info"]
        assert r["reward_model"]["ground_truth"] == str(sum(int(v) for v in info["values"]))
        assert info["values"] == [local_truth(t) for t in info["sub_tasks"][:-1]]
        clean = not info["teacher_skipped_term"] and info["teacher_misreads"] == 0
        assert (info["teacher_answer"] == r["reward_model"]["ground_truth"]) == clean
        assert r["messages"][0] == {"role": "system", "content": PLANNER_SYSTEM_PROMPT}
        # the planner never sees a ledger: its observations are the executors' short results
        assert all(re.fullmatch(r"\d+", m["content"]) for m in r["messages"] if m["role"] == "tool")
    for r in executor:  # a lookup reads its ledger; the result is the row's value unless the teacher misread
        task, result = r["prompt"][0]["content"], r["messages"][-1]["content"]
        assert r["messages"][0]["content"] == EXECUTOR_SYSTEM_PROMPT
        assert (result == f"<result>{local_truth(task)}</result>") != r["extra_info"]["executor_slip"]
    accuracy = sum(r["extra_info"]["teacher_answer"] == r["reward_model"]["ground_truth"] for r in planner) / len(planner)
    assert 0.4 < accuracy < 0.85  # the teacher's slips leave RL room in both systems


def test_only_the_hierarchy_fits_the_context(tok):
    """Every planner and executor trace fits the 512 positions; a single agent's trace of three ledgers
    does not (mostly), of two it often does: the limit that gives the hierarchy something to win."""
    rows = {role: generate_examples(200, seed=0, role=role) for role in ("planner", "executor", "single")}
    assert max(trace_tokens(tok, r) for r in rows["planner"]) <= CONTEXT_TOKENS
    assert max(trace_tokens(tok, r) for r in rows["executor"]) <= CONTEXT_TOKENS
    fits = {k: [trace_tokens(tok, r) <= CONTEXT_TOKENS for r in rows["single"] if r["extra_info"]["terms"] == k] for k in (2, 3)}
    assert sum(fits[2]) / len(fits[2]) > 0.5 and sum(fits[3]) / len(fits[3]) < 0.3


class TeacherEngine:
    """Replays the clean teacher (no slips) from the rendered context: the planner delegates each lookup
    and the sum, the executor reads the ledger / calls the calculator, the single agent does it all."""

    def __init__(self, tok):
        self.tok = tok
        self.pad_token_id = tok.pad_token_id
        self.eos_token_ids = {tok.eos_token_id}

    @staticmethod
    def call(name, **args):
        import json

        return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"

    def reply(self, text):
        user = text.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
        tools = [t.split("<|im_end|>")[0] for t in text.split("<|im_start|>tool\n")[1:]]
        if EXECUTOR_SYSTEM_PROMPT in text:
            m = re.fullmatch(r"([a-z]{2}) in (L\d{3})", user)
            if not tools:
                return self.call("read_ledger", ledger=m.group(2)) if m else self.call("calculator", expression=user)
            value = dict(line.split() for line in tools[0].splitlines())[m.group(1)] if m else tools[0]
            return f"<result>{value}</result><|im_end|>"
        items = re.findall(r"([a-z]{2}) in (L\d{3})", user)
        if PLANNER_SYSTEM_PROMPT in text:
            if len(tools) < len(items):
                return self.call("executor", task="%s in %s" % items[len(tools)])
            if len(tools) == len(items):
                return self.call("executor", task="+".join(tools))
            return f"\\boxed{{{tools[-1]}}}<|im_end|>"
        values = [dict(line.split() for line in obs.splitlines())[k] for obs, (k, _) in zip(tools, items)]
        note = f"{items[len(tools) - 1][0]}={values[-1]}\n" if 0 < len(tools) <= len(items) else ""
        if len(tools) < len(items):
            return note + self.call("read_ledger", ledger=items[len(tools)][1])
        if len(tools) == len(items):
            return note + self.call("calculator", expression="+".join(values))
        return f"\\boxed{{{tools[-1]}}}<|im_end|>"

    def generate(self, prompt_ids, n, sampling):
        out = []
        for p in prompt_ids:
            ids = self.tok(self.reply(self.tok.decode(p, skip_special_tokens=False)), add_special_tokens=False)["input_ids"]
            ids = ids[: sampling.max_new_tokens]
            out.append([Trajectory(prompt_ids=list(p), completion_ids=ids, text=self.tok.decode(ids, skip_special_tokens=True))
                        for _ in range(n)])
        return out

    def sync_weights(self, model):
        pass


def test_episodes_under_the_shared_context(tok):
    """Real episodes, the teacher replayed: the planner's system answers every problem inside its budget
    with the executors' local scores exact; the single agent, under the same 512 positions, is cut on
    the three-ledger problems and right on the two-ledger ones that fit."""
    from rl.experiments.compare_agents import context_budgets, parse_args

    assert TASK_ROLLOUTS["long_context"] is ENVIRONMENT
    args = parse_args(["--task", "long_context"])
    rows = {role: list(get_task_dataset("long_context", 24, seed=5, split="test", role=role))
            for role in ("planner", "single", "executor")}
    budgets = context_budgets(args, tok, rows)
    assert set(budgets) == {"planner", "single", "executor"} and all(64 < b < CONTEXT_TOKENS for b in budgets.values())
    engine, sampling = TeacherEngine(tok), SamplingConfig(max_new_tokens=96, temperature=1.0)
    kw = {**ENVIRONMENT["environment_kwargs"], "executor_max_episode_tokens": budgets["executor"]}
    groups = run_episodes(engine, tok, rows["planner"], episode_factory("planner", kw), 1, sampling,
                          max_turns=ENVIRONMENT["max_turns"], max_episode_tokens=budgets["planner"],
                          system_prompt=PLANNER_SYSTEM_PROMPT)
    for row, (t, *kids) in zip(rows["planner"], groups):
        assert t.meta["episode_end"] == "done" and not t.truncated
        assert t.text.strip().endswith(f"\\boxed{{{row['reward_model']['ground_truth']}}}")
        assert t.meta["executor_calls"] == len(kids) == row["extra_info"]["terms"] + 1
        assert len(t.prompt_ids) + len(t.completion_ids) <= CONTEXT_TOKENS
        assert all(c.meta["executor_r_local"] == 1.0 for c in kids)
    single = run_episodes(engine, tok, rows["single"], episode_factory("tools", SINGLE_ENVIRONMENT["environment_kwargs"]), 1,
                          sampling, max_turns=SINGLE_ENVIRONMENT["max_turns"], max_episode_tokens=budgets["single"])
    cut = {2: [], 3: []}
    for row, (t,) in zip(rows["single"], single):
        assert len(t.prompt_ids) + len(t.completion_ids) <= CONTEXT_TOKENS
        cut[row["extra_info"]["terms"]].append(t.truncated)
        if not t.truncated:
            assert t.text.strip().endswith(f"\\boxed{{{row['reward_model']['ground_truth']}}}")
    assert sum(cut[3]) > len(cut[3]) / 2 and sum(cut[2]) < len(cut[2])
