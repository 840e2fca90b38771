"""task:planner: sums of products, the planner's and the executor's traces, their slips, the splits,
and the SFT rendering of each role's prompt equal to its rollout rendering."""

from __future__ import annotations

import json

import pytest

from curriculum.tasks import TASK_ROLLOUTS, get_task_dataset
from curriculum.tasks.planner import generate_examples
from rollout.mgrpo.agents import EXECUTOR_SYSTEM_PROMPT, PLANNER_SYSTEM_PROMPT, ExecutorEnvironment, make_planner_environment
from rollout.episodes import render_messages
from rollout.tools import calculator


def calls(messages, tool):
    out = []
    for m in messages:
        if m["role"] == "assistant" and "<tool_call>" in m["content"]:
            body = json.loads(m["content"].split("<tool_call>")[1].split("</tool_call>")[0])
            assert body["name"] == tool
            out.append(next(iter(body["arguments"].values())))
    return out


def test_clean_teachers_delegate_every_product_and_the_sum():
    rows = generate_examples(40, seed=1, role="planner", planner_slip=0.0, executor_slip=0.0, tool_schemas=True)
    for r in rows:
        info, msgs = r["extra_info"], r["messages"]
        assert msgs[0] == {"role": "system", "content": PLANNER_SYSTEM_PROMPT} and msgs[1] == r["prompt"][0]
        tasks = calls(msgs, "executor")
        assert tasks == info["sub_tasks"]  # each product, then the sum of the products
        observed = [m["content"] for m in msgs if m["role"] == "tool"]
        assert observed == info["sub_answers"] == [calculator(t) for t in tasks]
        assert msgs[-1]["content"] == f"\\boxed{{{r['reward_model']['ground_truth']}}}"
        assert r["reward_model"]["ground_truth"] == calculator(info["problem"])
        assert info["terms"] in (2, 3) and r["tools"][0]["function"]["name"] == "executor"


def test_slips_make_wrong_answers_at_the_configured_rates():
    rows = generate_examples(600, seed=0, role="planner", planner_slip=0.3, executor_slip=0.0)
    skipped = [r for r in rows if r["extra_info"]["teacher_skipped_term"]]
    assert 0.25 < len(skipped) / len(rows) < 0.35
    assert all(r["extra_info"]["teacher_answer"] != r["reward_model"]["ground_truth"] for r in skipped)
    assert all(len(calls(r["messages"], "executor")) < len(r["extra_info"]["sub_tasks"]) for r in skipped)
    ex = generate_examples(300, seed=0, role="executor", planner_slip=0.0, executor_slip=0.25)
    slipped = [r for r in ex if r["extra_info"]["executor_slip"]]
    assert 0.2 < len(slipped) / len(ex) < 0.3
    for r in ex:  # an executor row's truth is its own task's exact value
        task = r["prompt"][0]["content"]
        assert r["reward_model"]["ground_truth"] == calculator(task)
        result = r["messages"][-1]["content"]
        assert (result == f"<result>{calculator(task)}</result>") != r["extra_info"]["executor_slip"]
        assert calls(r["messages"], "calculator") == ([] if r["extra_info"]["executor_slip"] else [task])


def test_roles_share_problems_splits_are_disjoint_and_rows_are_deterministic():
    plan = generate_examples(30, seed=2, role="planner")
    sft = generate_examples(30, seed=2, role="sft")
    single = generate_examples(30, seed=2, role="single", tool_schemas=True)
    assert [r["extra_info"]["problem"] for r in sft if r["data_source"] == "parsimony/planner"] == \
        [r["extra_info"]["problem"] for r in plan] == [r["extra_info"]["problem"] for r in single]
    assert generate_examples(30, seed=2, role="sft") == sft
    for r in single:  # one model with the calculator: exact results, the box is the sum of the used terms
        assert calls(r["messages"], "calculator") and r["tools"][0]["function"]["name"] == "calculator"
        assert all(m["content"] == calculator(t) for t, m in zip(calls(r["messages"], "calculator"),
                                                                 [m for m in r["messages"] if m["role"] == "tool"]))
    train = {r["extra_info"]["problem"] for r in generate_examples(300, seed=0)}
    test = {r["extra_info"]["problem"] for r in generate_examples(100, seed=0, split="test")}
    assert train and test and not train & test
    assert len(get_task_dataset("planner", 5, role="executor")) >= 10
    assert TASK_ROLLOUTS["planner"]["environment"] == "planner"
    assert all("tools" not in r for r in generate_examples(5, seed=2, role="sft") + generate_examples(5, role="single"))
    with pytest.raises(ValueError, match="role"):
        generate_examples(1, role="judge")


def test_single_guesses_give_the_single_agent_the_executors_slips_on_the_same_draws():
    plain = generate_examples(400, seed=4, role="single")
    guess = generate_examples(400, seed=4, role="single", single_guesses=True)
    multi = generate_examples(400, seed=4, role="planner")
    assert [r["extra_info"]["problem"] for r in guess] == [r["extra_info"]["problem"] for r in plain]
    assert all(r["extra_info"]["teacher_executor_slips"] == 0 for r in plain)
    # the same draws as the multi-agent teacher: the same slips and the same (wrong) answers
    assert [(r["extra_info"]["teacher_executor_slips"], r["extra_info"]["teacher_answer"]) for r in guess] == \
        [(r["extra_info"]["teacher_executor_slips"], r["extra_info"]["teacher_answer"]) for r in multi]
    right = lambda rows: sum(r["extra_info"]["teacher_answer"] == r["reward_model"]["ground_truth"] for r in rows)
    assert right(guess) == right(multi) < right(plain) - 80
    slipped = [r for r in guess if r["extra_info"]["teacher_executor_slips"]]
    assert 0.3 < len(slipped) / len(guess) < 0.7
    for r in slipped:  # a guess is written inline, a call fewer than the clean trace's
        info, msgs = r["extra_info"], r["messages"]
        products = info["terms"] - info["teacher_skipped_term"]
        steps = products + (products >= 2)  # the products used, and their sum when there are two or more
        assert len(calls(msgs, "calculator")) == steps - info["teacher_executor_slips"]
        inline = [line for m in msgs if m["role"] == "assistant" for line in m["content"].split("\n") if "=" in line
                  and "<tool_call>" not in line]
        assert len(inline) == info["teacher_executor_slips"]
        assert all(calculator(line.split("=")[0]) != line.split("=")[1] for line in inline)  # off by 1-2
        assert msgs[-1]["content"].endswith(f"\\boxed{{{info['teacher_answer']}}}")


@pytest.mark.parametrize("schemas", [False, True])
def test_sft_rendering_of_each_role_equals_its_rollout_rendering(tiny_model_dir, schemas):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = generate_examples(3, seed=0, role="sft", tool_schemas=schemas)
    planner, executor_row = rows[0], rows[1]
    kw = dict(TASK_ROLLOUTS["planner"]["environment_kwargs"])  # the task's environment: no tools block
    if schemas:
        kw.update(tool_schemas=True, executor_tool_schemas=True)
    env = make_planner_environment(**kw)
    assert bool(env.tools) == schemas and bool(env.runner.tool_schemas) == schemas
    rollout = [{"role": "system", "content": PLANNER_SYSTEM_PROMPT}] + env.reset(planner)
    assert render_messages(tok, rollout, env.tools, True) == \
        render_messages(tok, planner["messages"][:2], planner.get("tools"), True)
    ex = ExecutorEnvironment(tool_schemas=schemas)
    rollout = [{"role": "system", "content": EXECUTOR_SYSTEM_PROMPT}] + ex.reset({"task": executor_row["prompt"][0]["content"]})
    assert render_messages(tok, rollout, ex.tools, True) == \
        render_messages(tok, executor_row["messages"][:2], executor_row.get("tools"), True)


def test_the_task_fits_the_tiny_model_positions(tiny_model_dir):
    """Without tools blocks (the task's default) every role's teacher trace fits the tiny model's 512
    positions, with room for the planner's episode limit of compare-agents; with schemas it did not."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    limit = json.loads((tiny_model_dir / "config.json").read_text())["max_position_embeddings"]

    def length(r, n=None, gen=False):
        kw = {"tools": r["tools"]} if "tools" in r else {}
        text = tok.apply_chat_template(r["messages"][:n], tokenize=False, add_generation_prompt=gen, **kw)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    rows = generate_examples(300, seed=0, role="sft", planner_slip=0.0) + generate_examples(300, seed=0, role="single")
    assert max(length(r) for r in rows) < limit
    planners = [r for r in rows if r["data_source"] == "parsimony/planner" and r["messages"][0]["role"] == "system"]
    assert max(length(r, 2, True) for r in planners) + 384 <= limit  # the prompt + compare-agents' episode budget
    with_schemas = generate_examples(20, seed=0, role="planner", planner_slip=0.0, tool_schemas=True)
    assert max(length(r) for r in with_schemas) > limit
