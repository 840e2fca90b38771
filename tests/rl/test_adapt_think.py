"""AdaptThink (arXiv 2505.13417): its reward and advantage on small groups computed by hand, the forced-prefix
split of each group (half NoThinking, half Thinking, the prefix inside the trained completion), the importance
weight of the policy against that proposal in the loss, bad settings, R_ref files, and a 2-step smoke run of the
preset on the tiny model."""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch

from rewards.adapt_think import AdaptThinkReward, prompt_key, read_reference_accuracies
from rewards.math import GradeResult
from rl.advantages import get_advantage
from rl.batch import RolloutBatch, collate
from rl.config import ConfigError, GRPOConfig
from rl.grpo_trainer import GRPOTrainer
from rl.losses import LossTerm
from rl.methods.adapt_think import AdaptThinkAssembler
from rl.methods.adapt_think_ref import reference_accuracies
from rl.policy_update import PolicyUpdate
from rl.presets import get_method
from rollout.hf import HFEngine
from rollout.prefixes import CompletionPrefix, generate_with_prefixes
from rollout.types import SamplingConfig, Trajectory

LOG_HALF = math.log(0.5)
THINK_START_ID, THINK_END_ID = 3, 4  # the tiny tokenizer's <think> and </think>


class FakeGrader:  # correct iff the text holds \boxed{<ground truth>}
    def grade(self, completions, ground_truths):
        return [GradeResult(1.0, gt, "correct") if f"\\boxed{{{gt}}}" in c else GradeResult(0.0, None, "wrong")
                for c, gt in zip(completions, ground_truths)]


def make_reward(**settings):
    r = AdaptThinkReward(grader=FakeGrader())
    r.setup(args=SimpleNamespace(max_completion_length=64, method_kwargs=settings))
    return r


# one group of prompt "p0" (answer 4): NoThinking right, NoThinking wrong, Thinking right, Thinking without </think>
GROUP = ["</think>\n\\boxed{4}", "  </think>\\boxed{5}", "<think>\n2+2=4\n</think>\n\\boxed{4}", "<think>\n2+2=4 \\boxed{4}"]


def score(r, completions, prompt="p0", answer="4"):
    n = len(completions)
    return r(prompts=[prompt] * n, completions=completions, completion_ids=[[1]] * n, answer=[answer] * n)


# --- the reward ----------------------------------------------------------------------------------------------


def test_reward_with_a_reference_file_by_hand(tmp_path):
    ref = tmp_path / "ref.jsonl"
    ref.write_text(json.dumps({"prompt": "p0", "ref_accuracy": 0.75}) + "\n" + json.dumps({"prompt": "p1", "ref_accuracy": 0.25}) + "\n")
    r = make_reward(adapt_think_ref_accuracy=str(ref))
    # r = correct - R_ref + delta * NoThinking, delta 0.05; the last completion has no </think>: wrong
    assert score(r, GROUP) == pytest.approx([1 - 0.75 + 0.05, 0 - 0.75 + 0.05, 1 - 0.75, 0 - 0.75])
    m = r.pop_metrics()
    assert m["adapt_think/nothink_frac"] == 0.5 and m["adapt_think/format_errors"] == 1.0
    assert m["adapt_think/nothink_accuracy"] == 0.5 and m["adapt_think/think_accuracy"] == 0.5
    assert m["adapt_think/ref_accuracy"] == 0.75
    r = make_reward(adapt_think_ref_accuracy=str(ref), adapt_think_delta=0.2, adapt_think_require_think_end=False)
    assert score(r, GROUP, "p1") == pytest.approx([1 - 0.25 + 0.2, -0.25 + 0.2, 1 - 0.25, 1 - 0.25])
    assert r.checkpoint_state() == {}  # a file: nothing to save


def test_reward_first_seen_is_the_first_groups_thinking_accuracy_then_frozen():
    r = make_reward(adapt_think_ref_accuracy="first_seen")
    # R_ref(p0) = accuracy of the Thinking completions (rows 3, 4: right, format error) = 0.5
    assert score(r, GROUP) == pytest.approx([0.55, -0.45, 0.5, -0.5])
    assert r.checkpoint_state() == {"version": 1, "first_seen": {"p0": 0.5}}
    # the next group of p0 (all right) is scored against the frozen 0.5; a group without Thinking takes its own
    assert score(r, [GROUP[2]] * 2) == pytest.approx([0.5, 0.5])
    assert score(r, [GROUP[0], GROUP[1]], prompt="p1") == pytest.approx([1 - 0.5 + 0.05, -0.5 + 0.05])
    resumed = make_reward(adapt_think_ref_accuracy="first_seen")
    resumed.load_checkpoint_state(json.loads(json.dumps(r.checkpoint_state())))
    assert score(resumed, [GROUP[1]]) == score(r, [GROUP[1]]) == pytest.approx([-0.45])
    with pytest.raises(ValueError, match="adapt_think state version"):
        resumed.load_checkpoint_state({"version": 2, "first_seen": {}})


def test_rows_without_ground_truth_get_none_and_chat_prompts_are_keyed_by_their_text():
    r = make_reward(adapt_think_ref_accuracy="first_seen")
    out = r(prompts=["p0", "p0"], completions=GROUP[:2], completion_ids=[[1], [1]], answer=["4", None])
    assert out[1] is None and out[0] == pytest.approx(1 - 1 + 0.05)  # the lone graded row is its own R_ref
    assert prompt_key([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]) == "s\n\nq"
    assert prompt_key("q") == "q"


def test_reference_file_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="adapt_think_ref_accuracy: not set"):
        make_reward()
    with pytest.raises(ValueError, match="does not exist"):
        make_reward(adapt_think_ref_accuracy=str(tmp_path / "none.jsonl"))
    bad = tmp_path / "bad.jsonl"
    for text, message in [('{"prompt": "p0"}\n', "line 1: not a"), ('{"prompt": "p0", "ref_accuracy": 1.5}\n', "in \\[0, 1\\]"),
                          ('{"prompt": "p0", "ref_accuracy": 0.5}\n{"prompt": "p0", "ref_accuracy": 0.2}\n', "second"),
                          ("\n", "no record")]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_reference_accuracies(bad)
    bad.write_text('{"prompt": "p0", "ref_accuracy": 0.5}\n')
    r = make_reward(adapt_think_ref_accuracy=str(bad))
    with pytest.raises(ValueError, match="no reference accuracy for 1 prompt"):
        score(r, GROUP, prompt="p9")


# --- the advantage and the config ---------------------------------------------------------------------------


def test_advantage_is_the_reward_on_every_completion_token():
    trajs = [Trajectory([1], [5, 6, 7]), Trajectory([1], [5]), Trajectory([1], [5, 6])]
    batch = collate(trajs, pad_token_id=0)
    batch.total_reward = torch.tensor([0.3, -0.7, 0.25])
    adv = get_advantage("adapt_think")(batch, SimpleNamespace())["main"]
    assert torch.allclose(adv, torch.tensor([[0.3, 0.3, 0.3], [-0.7, 0.0, 0.0], [0.25, 0.25, 0.0]]))


def test_preset_fields_and_bad_settings():
    cfg = GRPOConfig(model="x", method="adapt_think", max_completion_length=64)
    assert (cfg.reward_funcs, cfg.advantage_estimator, cfg.sampler) == (["adapt_think"], "adapt_think", "adapt_think")
    assert (cfg.loss_type, cfg.loss_agg_mode, cfg.epsilon, cfg.epsilon_high) == ("gspo", "seq-mean-token-mean", 0.2, 0.2)
    assert get_method("adapt_think").method_kwargs == {"adapt_think_delta": 0.05, "adapt_think_ref_accuracy": None,
                                                        "adapt_think_nothink_ratio": 0.5}
    for kw, message in [({"adapt_think_delta": -0.1}, "method_kwargs.adapt_think_delta: must be a finite number >= 0.0"),
                        ({"adapt_think_nothink_ratio": 1.0}, "method_kwargs.adapt_think_nothink_ratio: must be a finite number in (0.0, 1.0)"),
                        ({"adapt_think_nothink_budget": 0}, "method_kwargs.adapt_think_nothink_budget"),
                        ({"adapt_think_ref_accuracy": ""}, "method_kwargs.adapt_think_ref_accuracy: must be a JSONL path"),
                        ({"adapt_think_think_start": ""}, "method_kwargs.adapt_think_think_start")]:
        with pytest.raises(ConfigError) as e:
            GRPOConfig(model="x", method="adapt_think", method_kwargs=kw)
        assert str(e.value).startswith(message), str(e.value)


def test_sampler_splits_each_group_and_refuses_what_it_cannot_force():
    cfg = SimpleNamespace(num_generations=4, max_completion_length=64, method_kwargs={})
    nothink, think = AdaptThinkAssembler(cfg).prefixes
    assert (nothink.text, nothink.count, nothink.max_new_tokens, nothink.name) == ("</think>", 2, 16, "nothink")
    assert (think.text, think.count, think.max_new_tokens, think.name) == ("<think>", 2, None, "think")
    assert nothink.logprob == think.logprob == pytest.approx(LOG_HALF)
    cfg.method_kwargs = {"adapt_think_nothink_ratio": 0.25, "adapt_think_think_start": "Alright"}
    nothink, think = AdaptThinkAssembler(cfg).prefixes
    assert (nothink.count, think.count, think.text) == (1, 3, "Alright")
    assert (nothink.logprob, think.logprob) == pytest.approx((math.log(0.25), math.log(0.75)))
    cfg.method_kwargs = {"adapt_think_nothink_ratio": 0.1}  # round(4 x 0.1) = 0: no NoThinking completion
    with pytest.raises(ConfigError, match="round\\(num_generations 4 x 0.1\\) = 0"):
        AdaptThinkAssembler(cfg)
    with pytest.raises(ConfigError, match="without async_rollouts"):
        AdaptThinkAssembler(SimpleNamespace(num_generations=4, max_completion_length=64, method_kwargs={}, async_rollouts=True))


# --- the forced prefixes ------------------------------------------------------------------------------------


def test_forced_prefixes_split_each_group_and_are_trained_on(tiny_model_dir):
    from rl.modeling import load_model, load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    engine = HFEngine(load_model(str(tiny_model_dir)).eval(), tok)
    torch.manual_seed(0)
    prompts = [tok("Compute left to right: 1+2")["input_ids"], tok("Compute left to right: 3*3-1")["input_ids"]]
    prefixes = [CompletionPrefix("</think>", 2, LOG_HALF, 5, "nothink"), CompletionPrefix("<think>", 2, LOG_HALF, None, "think")]
    groups = generate_with_prefixes(engine.generate, tok, prompts, 4, SamplingConfig(max_new_tokens=9), prefixes)
    assert [len(g) for g in groups] == [4, 4]
    for prompt, g in zip(prompts, groups):
        assert [t.completion_ids[0] for t in g] == [THINK_END_ID] * 2 + [THINK_START_ID] * 2
        assert [t.meta["completion_prefix"] for t in g] == ["nothink"] * 2 + ["think"] * 2
        assert all(t.prompt_ids == prompt and t.text.startswith(("</think>", "<think>")) for t in g)
        assert all(len(t.completion_ids) <= 5 for t in g[:2]) and all(len(t.completion_ids) <= 9 for t in g[2:])
        for t in g:
            assert t.forced_logprobs[0] == LOG_HALF and all(math.isnan(x) for x in t.forced_logprobs[1:])
    batch = collate([t for g in groups for t in g], pad_token_id=0)
    assert batch.completion_mask[:, 0].tolist() == [1.0] * 8  # the forced token is trained on
    assert torch.allclose(batch.forced_logprobs[:, 0], torch.full((8,), LOG_HALF))  # float32
    assert torch.isnan(batch.forced_logprobs[:, 1:]).all()
    assert torch.allclose(batch.select(torch.tensor([2])).forced_logprobs, batch.forced_logprobs[2:3], equal_nan=True)
    with pytest.raises(ValueError, match="must add up to the group size 4"):
        generate_with_prefixes(engine.generate, tok, prompts, 4, SamplingConfig(max_new_tokens=9), prefixes[:1])
    with pytest.raises(ValueError, match="logprob"):
        CompletionPrefix("</think>", 1, 0.5)


# --- the importance weight in the loss ----------------------------------------------------------------------


def _micro_loss(logp_rows, adv, forced):
    """The update's loss on rows with given per-token log-probs (the policy's, and old = their detached copy)."""
    T = max(len(r) for r in logp_rows)
    logp = torch.zeros(len(logp_rows), T)
    mask = torch.zeros(len(logp_rows), T)
    for i, row in enumerate(logp_rows):
        logp[i, : len(row)] = torch.log(torch.tensor(row))
        mask[i, : len(row)] = 1.0
    logp.requires_grad_(True)
    n = len(logp_rows)
    mb = RolloutBatch(prompt_ids=torch.zeros(n, 1, dtype=torch.long), prompt_mask=torch.ones(n, 1, dtype=torch.long),
                      completion_ids=torch.ones(n, T, dtype=torch.long), completion_mask=mask,
                      attention_mask_completion=mask.long(), group_index=torch.zeros(n, dtype=torch.long),
                      role=torch.zeros(n, dtype=torch.long), truncated=torch.zeros(n, dtype=torch.bool),
                      forced_logprobs=forced, advantages={"main": torch.tensor(adv)[:, None] * mask})
    args = GRPOConfig(model="x", method="adapt_think", max_completion_length=8)
    host = SimpleNamespace(accelerator=SimpleNamespace(device=torch.device("cpu"), autocast=nullcontext), args=args,
                           loss_terms=[LossTerm("main", loss=args.loss_type)],
                           _logp=lambda model, mb, with_entropy: (logp, torch.zeros_like(logp)), model=None)
    loss, metrics = PolicyUpdate._micro_loss(host, mb, [float(n)], float(n))
    loss.backward()
    return float(loss.detach()), logp.grad, metrics


def test_importance_weight_against_the_proposal_by_hand():
    """The sequence ratio with the forced token's old log-prob set to the proposal's log 0.5:
    s_i = exp(mean_t(logp_t - old_t)) = (pi(y_1) / 0.5) ** (1 / |y_i|), the other tokens' terms being 0.
    r0 NoThinking, pi(</think>) 0.25, 2 tokens, A +1: s = 0.5 ** (1/2) = 0.707107 < 0.8, unclipped (A > 0):
       loss -0.707107, gradient -A s / (|y| N) = -0.117851 on each of its tokens;
    r1 Thinking, pi(<think>) 0.6, 3 tokens, A -0.5: s = 1.2 ** (1/3) = 1.062659, inside the clip: loss 0.531329,
       gradient 0.5 s / (3 x 3) = 0.059037;
    r2 NoThinking, pi(</think>) 0.1, 1 token, A -1: s = 0.2 < 0.8 with A < 0: clipped, loss 0.8, no gradient.
    The loss is the mean over rows (seq-mean-token-mean): (-0.707107 + 0.531329 + 0.8) / 3 = 0.208074."""
    rows, adv = [[0.25, 0.8], [0.6, 0.5, 0.9], [0.1]], [1.0, -0.5, -1.0]
    forced = torch.full((3, 3), float("nan"))
    forced[:, 0] = LOG_HALF
    loss, grad, metrics = _micro_loss(rows, adv, forced)
    assert loss == pytest.approx((-math.sqrt(0.5) + 0.5 * 1.2 ** (1 / 3) + 0.8) / 3, abs=1e-6)
    assert loss == pytest.approx(0.208074, abs=1e-6)
    expected = torch.tensor([[-0.117851, -0.117851, 0.0], [0.059037, 0.059037, 0.059037], [0.0, 0.0, 0.0]])
    assert torch.allclose(grad, expected, atol=1e-6)
    assert metrics["ratio_mean"] == pytest.approx((2 * math.sqrt(0.5) + 3 * 1.2 ** (1 / 3) + 0.2) / 6, abs=1e-6)
    # without the proposal's log-prob the first step is on-policy: every ratio 1, the loss -mean(A)
    loss, _, _ = _micro_loss(rows, adv, None)
    assert loss == pytest.approx(-(1.0 - 0.5 - 1.0) / 3, abs=1e-6)


# --- R_ref and the preset on the tiny model -----------------------------------------------------------------


def test_reference_accuracies_and_a_two_step_run(tiny_model_dir, tmp_path):
    from curriculum.tasks import get_task_dataset
    from rl.modeling import load_model, load_tokenizer

    ds = get_task_dataset("overthink_adapt", 4, seed=0)
    tok = load_tokenizer(str(tiny_model_dir))
    torch.manual_seed(0)
    records = reference_accuracies(HFEngine(load_model(str(tiny_model_dir)).eval(), tok), tok, list(ds), k=2,
                                   sampling=SamplingConfig(max_new_tokens=6), grader=FakeGrader())
    assert [r["prompt"] for r in records] == [prompt_key(row["prompt"]) for row in ds]
    assert all(r["samples"] == 2 and r["ref_accuracy"] == r["correct"] / 2 for r in records)
    ref = tmp_path / "ref.jsonl"
    ref.write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = GRPOConfig(model=str(tiny_model_dir), output_dir=str(tmp_path / "run"), method="adapt_think",
                     method_kwargs={"adapt_think_ref_accuracy": str(ref)}, num_generations=4, per_device_train_batch_size=8,
                     max_completion_length=12, max_steps=2, learning_rate=1e-3, report_to=["jsonl"], save_final=False,
                     seed=7, disable_progress_bar=True)
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=ds)
    before = {k: v.detach().clone() for k, v in trainer.unwrapped_model.named_parameters()}
    trainer.train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["adapt_think/nothink_frac"] == 0.5 for r in rows)  # exactly half of each group is forced NoThinking
    assert any(not torch.equal(before[k], v) for k, v in trainer.unwrapped_model.named_parameters())
    with pytest.raises(ValueError, match="adapt_think_ref_accuracy: not set"):
        GRPOTrainer(cfg.model, args=GRPOConfig(**{**cfg.to_dict(), "method_kwargs": {}, "output_dir": str(tmp_path / "b")}),
                    train_dataset=ds)
