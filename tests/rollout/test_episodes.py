"""The multi-turn episode loop with a scripted engine: ids kept as sampled, observations masked
and aligned, tool calls counted (invalid, failed, cut off by max_turns), the token budget."""

from __future__ import annotations

import pytest
import torch

from rollout.episodes import StepResult, episode_factory, get_environment, register_environment, run_episodes
from rollout.tools import ToolEnvironment, parse_tool_call
from rollout.types import SamplingConfig, Trajectory


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


class ScriptedEngine:
    """Answers each prompt with the next turn of the script whose key appears in the prompt;
    log-prob of the j-th token of a turn is -(j + 1) / 10, so alignment is checkable."""

    def __init__(self, tok, script):
        self.tok, self.script = tok, script
        self.calls: list[list[list[int]]] = []
        self.samplings: list[SamplingConfig] = []
        self.eos_token_ids = {tok.eos_token_id}

    def turn_ids(self, text):
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def generate(self, prompt_ids, n, sampling):
        assert n == 1
        self.calls.append([list(p) for p in prompt_ids])
        self.samplings.append(sampling)
        out = []
        for p in prompt_ids:
            text = self.tok.decode(p, skip_special_tokens=False)
            key = next(k for k in self.script if k in text)
            k = text.count("<|im_start|>assistant") - 1
            ids = self.turn_ids(self.script[key][k])
            finish = "stop"
            if len(ids) > sampling.max_new_tokens:
                ids, finish = ids[: sampling.max_new_tokens], "length"
            lp = [-(j + 1) / 10 for j in range(len(ids))]
            out.append([Trajectory(prompt_ids=list(p), completion_ids=ids, logprobs=lp, finish_reason=finish,
                                   text=self.tok.decode(ids, skip_special_tokens=True))])
        return out

    def sync_weights(self, model):
        pass


CALL = '<tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'
ANSWER = "The answer is \\boxed{42}<|im_end|>"


def _run(tok, script, rows, n=1, max_turns=4, budget=400, tools=("calculator",), max_new=120, env=None):
    engine = ScriptedEngine(tok, script)
    make = env or (lambda: ToolEnvironment(tools=tools))
    out = run_episodes(engine, tok, rows, make, n, SamplingConfig(max_new_tokens=max_new),
                       max_turns=max_turns, max_episode_tokens=budget)
    return engine, out


def test_observation_in_the_middle_is_masked_and_ids_are_the_sampled_ones(tok):
    engine, out = _run(tok, {"Q1": [CALL, ANSWER]}, [{"prompt": "Q1: what is 6*7?"}])
    (t,) = out[0]
    call_ids, ans_ids = engine.turn_ids(CALL), engine.turn_ids(ANSWER)
    n_obs = len(t.completion_ids) - len(call_ids) - len(ans_ids)
    assert n_obs > 0
    # completion = the model's own ids of turn 1, observation, the model's own ids of turn 2
    assert t.completion_ids[: len(call_ids)] == call_ids
    assert t.completion_ids[len(call_ids) + n_obs :] == ans_ids
    assert t.completion_mask == [1] * len(call_ids) + [0] * n_obs + [1] * len(ans_ids)
    obs_text = tok.decode(t.completion_ids[len(call_ids) : len(call_ids) + n_obs], skip_special_tokens=False)
    assert obs_text == "<|im_end|>\n<|im_start|>tool\n42<|im_end|>\n<|im_start|>assistant\n"
    # sampling log-probs follow the ids: the engine's on model tokens, 0 on the observation
    lp = [-(j + 1) / 10 for j in range(len(call_ids))] + [0.0] * n_obs + [-(j + 1) / 10 for j in range(len(ans_ids))]
    assert t.logprobs == pytest.approx(lp)
    # the second turn's prompt is exactly prompt + completion so far: nothing was re-tokenised
    assert engine.calls[1][0] == t.prompt_ids + t.completion_ids[: len(call_ids) + n_obs]
    # the prompt lists the tool schema; generation stops at </tool_call>
    assert "- calculator(expression: string): Exact arithmetic." in tok.decode(t.prompt_ids)  # the tools= rendering
    assert "</tool_call>" in engine.samplings[0].stop
    assert t.meta["tool_calls"] == 1 and t.meta["turns"] == 2
    assert t.meta["tool_calls_by_name"] == {"calculator": 1}
    assert t.meta["episode_end"] == "done" and t.meta["observation_tokens"] == n_obs
    assert not t.truncated


def test_batched_episodes_leave_when_finished(tok):
    script = {"QA": [ANSWER], "QB": [CALL, CALL, ANSWER]}
    engine, out = _run(tok, script, [{"prompt": "QA"}, {"prompt": "QB"}], n=2)
    assert [len(c) for c in engine.calls] == [4, 2, 2]  # QA's two episodes leave after turn 1
    assert [t.meta["tool_calls"] for t in out[0]] == [0, 0]
    assert [t.meta["tool_calls"] for t in out[1]] == [2, 2]
    assert [t.group_index for g in out for t in g] == [0, 0, 1, 1]
    assert all(t.meta["turns"] == 3 for t in out[1])


def test_invalid_unknown_and_crashing_calls_are_counted_error_observations(tok):
    def boom(x: int) -> str:
        """Always fails.

        Args:
            x: anything
        """
        raise RuntimeError("tool exploded")

    script = {"Q": ['<tool_call>{"name": "calculator", "arguments": {oops</tool_call>',
                    '<tool_call>{"name": "nope", "arguments": {}}</tool_call>',
                    '<tool_call>{"name": "boom", "arguments": {"x": 1}}</tool_call>',
                    '<tool_call>{"name": "calculator", "arguments": {"expression": "1/0"}}</tool_call>',
                    ANSWER]}
    engine, out = _run(tok, script, [{"prompt": "Q"}], max_turns=6, budget=4000, tools=("calculator", boom))
    (t,) = out[0]
    assert t.meta["tool_calls"] == 4
    assert t.meta["invalid_tool_calls"] == 1 and t.meta["tool_errors"] == 4
    assert t.meta["tool_calls_by_name"] == {"boom": 1, "calculator": 1}
    text = tok.decode(t.completion_ids)
    assert "Error: invalid JSON" in text and "unknown tool 'nope'" in text
    assert "RuntimeError: tool exploded" in text and "ZeroDivisionError" in text
    assert t.meta["episode_end"] == "done"


def test_call_cut_off_by_max_turns_is_neither_executed_nor_counted(tok):
    executed = []

    def counter(expression: str) -> str:
        """Counts its calls.

        Args:
            expression: ignored
        """
        executed.append(expression)
        return "1"

    call = '<tool_call>{"name": "counter", "arguments": {"expression": "x"}}</tool_call>'
    engine, out = _run(tok, {"Q": [call, call, call]}, [{"prompt": "Q"}], max_turns=2, tools=(counter,))
    (t,) = out[0]
    assert len(executed) == 1 and t.meta["tool_calls"] == 1
    assert t.meta["turns"] == 2 and t.meta["episode_end"] == "max_turns"
    # the last turn's ids are in the completion (trained on), but no observation follows them
    assert t.completion_mask[-1] == 1


def test_token_budget_counts_observations(tok):
    def big(n: int) -> str:
        """A long result.

        Args:
            n: characters
        """
        return "7" * n

    call = '<tool_call>{"name": "big", "arguments": {"n": 300}}</tool_call>'
    engine, out = _run(tok, {"Q": [call, ANSWER]}, [{"prompt": "Q"}], budget=120, tools=(big,))
    (t,) = out[0]
    assert len(t.completion_ids) == 120  # the observation was cut to the budget
    assert t.meta["episode_end"] == "length" and t.truncated
    assert t.meta["tool_calls"] == 1 and t.completion_mask[-1] == 0
    assert len(engine.calls) == 1  # no turn after the budget ran out
    # each turn's cap is the budget left: a second turn would get fewer tokens
    _, out = _run(tok, {"Q": [CALL, ANSWER]}, [{"prompt": "Q"}])
    first = out[0][0].completion_mask.index(0) + out[0][0].meta["observation_tokens"]  # call + observation
    engine, out = _run(tok, {"Q": [CALL, ANSWER * 3]}, [{"prompt": "Q"}], budget=first + 5, max_new=200)
    (t,) = out[0]
    assert engine.samplings[0].max_new_tokens == first + 5
    assert engine.samplings[1].max_new_tokens == 5
    assert len(t.completion_ids) == first + 5 and t.meta["episode_end"] == "length" and t.truncated


def test_incomplete_call_is_not_a_round_trip():
    assert parse_tool_call('<tool_call>{"name": "x"') is None
    assert parse_tool_call("no call") is None
    assert isinstance(parse_tool_call("<tool_call>[1]</tool_call>"), str)
    assert parse_tool_call('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>') == ("f", {"a": 1})


def test_registry_and_custom_environment(tok):
    class Echo:
        """Two turns: the model's first turn is echoed back as a user turn."""

        def reset(self, row):
            return [{"role": "user", "content": row["prompt"]}]

        def step(self, turn):
            if turn.index == 0:
                return StepResult(observation=[{"role": "user", "content": "again"}])
            return StepResult(done=True)

        def episode_meta(self):
            return {"echo": True}

    try:
        register_environment("echo_test")(lambda: Echo())
        assert callable(get_environment("tools"))
        with pytest.raises(ValueError, match="unknown environment"):
            get_environment("no_such_env")
        engine, out = _run(tok, {"E": ["hello", "bye"]}, [{"prompt": "E"}], env=episode_factory("echo_test"))
        (t,) = out[0]
        assert t.meta["echo"] is True and t.meta["turns"] == 2
        assert "<|im_start|>user\nagain<|im_end|>" in tok.decode(t.completion_ids, skip_special_tokens=False)
    finally:
        from rollout.episodes import ENVIRONMENTS

        ENVIRONMENTS.pop("echo_test", None)


def test_masked_observation_gets_no_gradient_end_to_end(tiny_model_dir, tok):
    """Collate a trajectory with an observation in the middle, take the policy's log-probs and the
    clipped loss: the gradient w.r.t. every observation position is exactly 0, and the model
    positions get one; the collated ids and mask are the trajectory's."""
    from transformers import AutoModelForCausalLM

    from rl.batch import collate
    from rl.losses import compute_policy_loss, single
    from rl.modeling import completion_logprobs

    engine, out = _run(tok, {"Q1": [CALL, ANSWER], "Q2": [ANSWER]}, [{"prompt": "Q1"}, {"prompt": "Q2"}])
    trajs = [out[0][0], out[1][0]]
    batch = collate(trajs, tok.pad_token_id)
    t0 = trajs[0]
    L = len(t0.completion_ids)
    assert batch.completion_ids[0, :L].tolist() == t0.completion_ids
    assert batch.completion_mask[0, :L].tolist() == [float(m) for m in t0.completion_mask]
    assert batch.sampling_logprobs[0, :L].tolist() == pytest.approx(t0.logprobs)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    logp, _ = completion_logprobs(model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids,
                                  batch.attention_mask_completion)
    logp.retain_grad()
    adv = {"main": torch.ones_like(batch.completion_mask) * batch.completion_mask}
    cfg = type("C", (), {"loss_agg_mode": "token-mean", "epsilon": 0.2, "epsilon_high": 0.2})()
    loss, _ = compute_policy_loss(logp, logp.detach(), adv, batch.completion_mask, single(cfg), cfg)
    loss.backward()
    g = logp.grad
    obs = (batch.completion_mask == 0) & (batch.attention_mask_completion == 1)
    assert obs.sum() > 0
    assert torch.all(g[obs] == 0)
    assert torch.all(g[batch.completion_mask == 1] != 0)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(float(x.abs().sum()) > 0 for x in grads)


def test_hf_engine_cuts_a_row_at_its_stop_string_not_at_padding(vllm_model_dir):
    """A row that stops at a stop string while the batch goes on is filled with pad ids by
    ``generate``; the engine returns only the sampled ids up to the stop string. (The spread-out
    weights of ``vllm_model_dir`` make greedy outputs vary from token to token.)"""
    from transformers import AutoModelForCausalLM

    from rollout.hf import HFEngine

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(vllm_model_dir)
    model = AutoModelForCausalLM.from_pretrained(vllm_model_dir, dtype=torch.float32)
    engine = HFEngine(model, tok)
    prompts = [tok(f"<|im_start|>user\nCompute {a} + {b}<|im_end|>\n<|im_start|>assistant\n",
                   add_special_tokens=False)["input_ids"] for a, b in [(1, 2), (7, 8)]]
    greedy = SamplingConfig(max_new_tokens=20, greedy=True)
    free = [g[0].completion_ids for g in engine.generate(prompts, 1, greedy)]
    # a stop string that ends row 0's third token and does not occur in row 1's output
    cands = [k for k in range(1, 6) if tok.decode(free[0][k:k + 1]).strip()
             and tok.decode(free[0][k:k + 1]) not in tok.decode(free[1]) and tok.decode(free[0][k:k + 1]) not in tok.decode(free[0][:k])]
    if not cands:
        pytest.skip("no distinguishing token in this model's greedy outputs")
    k = cands[0]
    stop = tok.decode(free[0][k:k + 1])
    out = engine.generate(prompts, 1, SamplingConfig(max_new_tokens=20, greedy=True, stop=(stop,)))
    assert out[0][0].completion_ids == free[0][: k + 1] and out[0][0].finish_reason == "stop"
    assert out[1][0].completion_ids == free[1]
