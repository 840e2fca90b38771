"""Planner/executor episodes with a scripted engine: each executor call is an episode of its own
(own prompt, own tool loop), its result comes back masked, and each executor trajectory is a sample
with role, parent rollout and prompt group, through to the batch tensors."""

from __future__ import annotations

import json

import pytest
import torch

from rl.batch import collate
from rollout.mgrpo.agents import EXECUTOR_SYSTEM_PROMPT, NO_RESULT, make_planner_environment, parse_result, same_number
from rollout.episodes import get_environment, run_episodes
from rollout.types import SamplingConfig, Trajectory


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def call(name, **args):
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


PLANS = {  # planner turns per problem (the key is found in the prompt)
    "P2": [call("executor", task="2*3"), call("executor", task="4*5"), "\\boxed{26}<|im_end|>"],
    "P0": ["\\boxed{7}<|im_end|>"],
    "PX": [call("executor", task="bad"), "\\boxed{1}<|im_end|>"],
}


class AgentEngine:
    """The planner follows PLANS; the executor computes its task with the calculator, then answers
    ``<result>value</result>`` (for the task "bad": no result tag)."""

    def __init__(self, tok):
        self.tok = tok
        self.eos_token_ids = {tok.eos_token_id}
        self.pad_token_id = tok.pad_token_id
        self.executor_prompts: list[str] = []
        self.batches: list[tuple[str, int]] = []  # (role of the call's prompts, prompts per generate call)

    def reply(self, text):
        k = text.count("<|im_start|>assistant") - 1
        if EXECUTOR_SYSTEM_PROMPT in text:
            task = text.split("<|im_start|>user\n")[-1].split("<|im_end|>")[0]
            if k == 0:
                self.executor_prompts.append(text)
                return call("calculator", expression=task) if task != "bad" else "I cannot<|im_end|>"
            value = text.split("<|im_start|>tool\n")[-1].split("<|im_end|>")[0]
            return f"<result>{value}</result><|im_end|>"
        key = next(k_ for k_ in PLANS if k_ in text)
        return PLANS[key][k]

    def generate(self, prompt_ids, n, sampling):
        out = []
        texts = [self.tok.decode(p, skip_special_tokens=False) for p in prompt_ids]
        roles = {"executor" if EXECUTOR_SYSTEM_PROMPT in t else "planner" for t in texts}
        assert len(roles) == 1  # a generate call never mixes the roles' prompts
        self.batches.append((roles.pop(), len(texts)))
        for p in prompt_ids:
            ids = self.tok(self.reply(self.tok.decode(p, skip_special_tokens=False)), add_special_tokens=False)["input_ids"]
            ids = ids[: sampling.max_new_tokens]
            out.append([Trajectory(prompt_ids=list(p), completion_ids=ids, logprobs=[-0.5] * len(ids),
                                   text=self.tok.decode(ids, skip_special_tokens=True))])
        return out

    def sync_weights(self, model):
        pass


def run(tok, rows, n=2):
    engine = AgentEngine(tok)
    make = lambda: get_environment("planner")()  # noqa: E731  (registered by rollout.mgrpo.agents)
    groups = run_episodes(engine, tok, rows, make, n, SamplingConfig(max_new_tokens=150), max_turns=4,
                          max_episode_tokens=600)
    return engine, groups


def test_parse_result_and_same_number():
    assert parse_result("so <result> 42 </result>") == "42"
    assert parse_result("<result></result>") is None and parse_result("42") is None
    assert parse_result("<result>1</result><result>2</result>") is None
    assert same_number("42.0", "42") and same_number("6", "6") and not same_number("6", "7") and not same_number(None, "1")


def test_each_executor_call_is_an_episode_and_a_sample_of_its_own(tok):
    engine, groups = run(tok, [{"prompt": "P2: 2*3+4*5"}, {"prompt": "P0: 3+4"}], n=2)
    g0, g1 = groups
    # prompt 0: 2 planner rollouts, each with 2 executor calls -> 2 + 4 samples; prompt 1: no call
    assert [t.role for t in g0] == [0, 0, 1, 1, 1, 1] and [t.role for t in g1] == [0, 0]
    assert [t.sub_group for t in g0] == [0, 1, 0, 0, 1, 1] and [t.sub_group for t in g1] == [0, 1]
    assert all(t.group_index == 0 for t in g0) and all(t.group_index == 1 for t in g1)
    planner = g0[0]
    assert planner.meta["executor_calls"] == 2 and planner.meta["executor_errors"] == 0 and planner.meta["turns"] == 3
    assert g1[0].meta["executor_calls"] == 0
    kids = g0[2:]
    assert [(c.meta["parent_rollout"], c.meta["call_index"], c.meta["task"]) for c in kids] == [
        (0, 0, "2*3"), (0, 1, "4*5"), (1, 0, "2*3"), (1, 1, "4*5")]
    for c, value in zip(kids, ["6", "20", "6", "20"]):
        assert c.meta["executor_result"] == value and c.meta["executor_format_ok"] is True
        assert c.meta["executor_local_truth"] == value and c.meta["executor_r_local"] == 1.0
        # its own prompt and its own tool loop: the calculator's observation is masked in its trajectory
        prompt = tok.decode(c.prompt_ids, skip_special_tokens=False)
        assert EXECUTOR_SYSTEM_PROMPT in prompt and prompt.rstrip().endswith("assistant")
        assert c.meta["tool_calls"] == 1 and c.meta["turns"] == 2
        assert 0 in c.completion_mask and c.text.endswith(f"<result>{value}</result>")
    # the result goes back to the planner as a masked tool turn
    mask = planner.completion_mask
    obs = [i for i, m in enumerate(mask) if m == 0]
    first = obs[: len(obs) // 2]
    assert tok.decode([planner.completion_ids[i] for i in first], skip_special_tokens=False) == \
        "<|im_end|>\n<|im_start|>tool\n6<|im_end|>\n<|im_start|>assistant\n"
    assert planner.text.endswith("\\boxed{26}")
    assert len(engine.executor_prompts) == 4
    # the turn's executor calls of both P2 rollouts run as one batch (2 executor turns per round of calls);
    # the P0 rollouts answer at once and leave after the first planner turn
    assert engine.batches == [("planner", 4), ("executor", 2), ("executor", 2), ("planner", 2), ("executor", 2),
                              ("executor", 2), ("planner", 2)]


def test_an_executor_without_result_is_an_invalid_format_and_an_error_observation(tok):
    _, (g,) = run(tok, [{"prompt": "PX"}], n=1)
    planner, kid = g
    assert kid.role == 1 and kid.meta["executor_result"] is None and kid.meta["executor_format_ok"] is False
    assert kid.meta["executor_local_truth"] is None and kid.meta["executor_r_local"] is None
    assert planner.meta["executor_errors"] == 1 and planner.meta["executor_calls"] == 1
    assert NO_RESULT in tok.decode(planner.completion_ids, skip_special_tokens=False)


def test_malformed_and_unknown_calls_are_counted_errors(tok):
    env = make_planner_environment()
    env.reset({"prompt": "x"})
    from rollout.episodes import Turn

    r = env.step(Turn(text=call("calculator", expression="1+1"), ids=[], index=0, finish_reason="stop"))
    assert "unknown tool 'calculator'" in r.observation[0]["content"]
    r = env.step(Turn(text=call("executor"), ids=[], index=1, finish_reason="stop"))
    assert "needs" in r.observation[0]["content"]
    assert env.episode_meta() == {"executor_calls": 0, "executor_errors": 2, "tool_calls": 2}
    assert env.step(Turn(text="\\boxed{2}", ids=[], index=2, finish_reason="stop")).done


def test_roles_parents_and_groups_reach_the_batch_tensors(tok):
    _, groups = run(tok, [{"prompt": "P2"}, {"prompt": "P0"}], n=2)
    batch = collate([t for g in groups for t in g], tok.pad_token_id)
    assert batch.role.tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    assert batch.group_index.tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert batch.sub_group.tolist() == [0, 1, 0, 0, 1, 1, 0, 1]
    assert [m.get("parent_rollout") for m in batch.meta] == [None, None, 0, 0, 1, 1, None, None]
    # executor rows: observation tokens (calculator) carry mask 0, real tokens 1
    obs = (batch.completion_mask == 0) & (batch.attention_mask_completion == 1)
    assert bool(obs[2:6].any(dim=1).all()) and torch.equal(batch.completion_mask[6], batch.attention_mask_completion[6].float())


def test_executor_calls_can_go_to_the_executors_own_server(tok):
    """Separate models: the executor episodes generate on another engine behind a real HTTP server
    (rollout/mgrpo/agent_server.py, the OpenAI completions subset), the planner's on its own."""
    from rollout.mgrpo.agent_server import CompletionServer

    planner_engine, executor_engine = AgentEngine(tok), AgentEngine(tok)
    with CompletionServer(executor_engine) as srv:
        make = lambda: get_environment("planner")(executor_engine_url=srv.url)  # noqa: E731
        (g,) = run_episodes(planner_engine, tok, [{"prompt": "P2"}], make, 1, SamplingConfig(max_new_tokens=150),
                            max_turns=4, max_episode_tokens=600)
        assert srv.requests == 4 and srv.prompts == 4  # 2 calls x 2 executor turns, all on the executor's server
    assert planner_engine.executor_prompts == [] and len(executor_engine.executor_prompts) == 2
    planner, *kids = g
    assert [k.meta["executor_result"] for k in kids] == ["6", "20"] and all(k.role == 1 for k in kids)
    # the server's log-probs came back on the executor's own tokens (0 on its calculator observation)
    assert all(k.logprobs == [-0.5 if m else 0.0 for m in k.completion_mask] for k in kids)
    assert planner.text.endswith("\\boxed{26}") and planner.meta["executor_errors"] == 0
