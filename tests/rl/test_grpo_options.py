"""Trainer options on the tiny model: KL to a reference, LoRA, bf16 + gradient checkpointing,
several policy iterations per batch, dynamic sampling."""

from __future__ import annotations

import json

import torch

from rl.grpo_trainer import GRPOTrainer
from tests_helpers_grpo import make_cfg, make_dataset, params, token_sum_reward


def _last_metrics(tmp_path):
    return [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]


def test_kl_to_reference_copy(tiny_model_dir, tmp_path):
    cfg = make_cfg(tiny_model_dir, tmp_path, beta=0.1, max_steps=2)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
    ref_before = {k: v.clone() for k, v in trainer.ref_model.named_parameters()}
    trainer.train()
    m = _last_metrics(tmp_path)
    assert m["kl"] > 0  # the policy moved away from the frozen reference after step 1
    assert all(torch.equal(v, dict(trainer.ref_model.named_parameters())[k]) for k, v in ref_before.items())


def test_lora_trains_only_adapters_and_uses_base_as_reference(tiny_model_dir, tmp_path):
    cfg = make_cfg(tiny_model_dir, tmp_path, use_peft=True, lora_r=4, lora_alpha=8, beta=0.05, max_steps=2,
                   save_steps=2)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
    assert trainer.ref_model is None  # the base model with adapters off is the reference
    before = params(trainer)
    trainer.train()
    after = params(trainer)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed)
    assert "kl" in _last_metrics(tmp_path)
    assert (tmp_path / "run" / "checkpoint-2" / "adapter_model.safetensors").is_file()


def test_bf16_gradient_checkpointing_and_two_iterations(tiny_model_dir, tmp_path):
    cfg = make_cfg(tiny_model_dir, tmp_path, bf16=True, gradient_checkpointing=True, num_iterations=2,
                   loss_agg_mode="seq-mean-token-sum-norm")
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
    before = params(trainer)
    trainer.train()
    after = params(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    m = _last_metrics(tmp_path)
    # the second iteration sees a ratio != 1 against the stored old log-probs
    assert m["ratio_mean"] != 1.0


def test_dynamic_sampling_keeps_only_groups_with_variance(tiny_model_dir, tmp_path):
    def even_prompts_constant(prompts, completions, completion_ids, reward_model, **kw):
        # prompts whose answer is even give every completion the same reward -> no signal
        return [1.0 if int(rm["ground_truth"]) % 2 == 0 else float(sum(ids) % 5) for rm, ids in
                zip(reward_model, completion_ids)]

    cfg = make_cfg(tiny_model_dir, tmp_path, dynamic_sampling=True, max_generation_batches=6, max_steps=4)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[even_prompts_constant], args=cfg, train_dataset=make_dataset())
    seen, generated = [], []
    original_build, original_rollout = trainer.build_batch, trainer.rollout_and_score

    def spy_build(groups):
        seen.extend(groups)
        return original_build(groups)

    def spy_rollout(indices):
        groups = original_rollout(indices)
        generated.extend(groups)
        return groups

    trainer.build_batch, trainer.rollout_and_score = spy_build, spy_rollout
    trainer.train()
    even = [g for g in generated if int(g.trajectories[0].meta["ground_truth"]) % 2 == 0]
    assert even, "the sampler should have drawn some no-signal prompts over 4 steps"
    assert seen and all(int(g.trajectories[0].meta["ground_truth"]) % 2 == 1 for g in seen)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(r["sampling/zero_std_frac"] for r in rows) > 0


def test_adam_epsilon_reaches_the_optimizer_and_damps_small_gradients(tiny_model_dir, tmp_path):
    # the same one-step update with a huge epsilon moves the weights far less: AdamW's step is
    # lr * m / (sqrt(v) + eps), so eps >> |g| turns the full lr-sized step into lr * g / eps
    def moved(eps):
        cfg = make_cfg(tiny_model_dir, tmp_path / f"eps{eps}", adam_epsilon=eps)
        trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
        assert trainer.optimizer.param_groups[0]["eps"] == eps
        before = {k: v.detach().clone() for k, v in trainer.unwrapped_model.named_parameters()}
        trainer.train()
        after = dict(trainer.unwrapped_model.named_parameters())
        return sum(float((after[k].detach() - before[k]).abs().sum()) for k in before)

    default, damped = moved(1e-8), moved(10.0)
    assert default > 0 and damped < 1e-3 * default


def test_gspo_and_cispo_losses_train(tiny_model_dir, tmp_path):
    # the registered losses run through the trainer with mu = 2 (the second iteration is off-policy)
    for loss_type in ("gspo", "cispo"):
        cfg = make_cfg(tiny_model_dir, tmp_path / loss_type, loss_type=loss_type, num_iterations=2,
                       loss_agg_mode="seq-mean-token-mean")
        trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
        before = params(trainer)
        trainer.train()
        assert any(not torch.equal(before[k], v) for k, v in params(trainer).items())
        m = _last_metrics(tmp_path / loss_type)
        assert "loss" in m and "ratio_mean" in m and (loss_type != "cispo" or "is_weight_mean" in m)


def test_gradient_checkpointing_recomputes_during_the_update(tiny_model_dir, tmp_path):
    """The update runs in train mode, so checkpointing really recomputes (HF checkpoints only when
    ``module.training``); rollouts stay in eval mode."""

    def layer_calls(gc: bool, sub: str) -> tuple[int, int]:
        cfg = make_cfg(tiny_model_dir, tmp_path / sub, gradient_checkpointing=gc, max_steps=1)
        trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
        modes = []
        trainer.unwrapped_model.model.layers[0].register_forward_pre_hook(lambda m, *_: modes.append(m.training))
        trainer.train()
        return sum(modes), len(modes) - sum(modes)

    plain_train, plain_eval = layer_calls(False, "plain")
    gc_train, gc_eval = layer_calls(True, "gc")
    assert plain_train > 0 and plain_eval > 0  # the update in train mode, generation in eval mode
    assert gc_train == 2 * plain_train  # forward + recomputation in backward
    assert gc_eval == plain_eval


def test_sigterm_while_every_batch_is_skipped_stops_and_checkpoints(tiny_model_dir, tmp_path):
    import os
    import signal

    calls = []

    def constant_then_signal(prompts, completions, completion_ids, **kw):
        calls.append(1)
        if len(calls) == 2:  # the second scored batch: a SIGTERM arrives while the sampler keeps skipping
            os.kill(os.getpid(), signal.SIGTERM)
        return [1.0] * len(completions)  # no variance: dynamic sampling skips every batch

    cfg = make_cfg(tiny_model_dir, tmp_path, dynamic_sampling=True, max_generation_batches=1, max_steps=50, save_steps=0)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[constant_then_signal], args=cfg, train_dataset=make_dataset())
    summary = trainer.train()
    # before the fix the loop went on skipping past the signal until the "more than 20 batches skipped" error
    assert summary["interrupted"] and summary["global_step"] == 0 and len(calls) == 2
    assert (tmp_path / "run" / "checkpoint-0").is_dir()  # the data cursor after the skipped draws is kept


def test_bf16_on_a_cpu_without_native_bf16_is_detected_for_the_warning():
    from rl.trainer_base import cpu_lacks_native_bf16

    avx2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 fma avx avx2\n"
    sapphire = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16\n"
    assert cpu_lacks_native_bf16(avx2) is True
    assert cpu_lacks_native_bf16(sapphire) is False
    assert cpu_lacks_native_bf16("no flags here") is False  # unknown: no warning


def test_fused_adamw_takes_the_same_step_as_the_loop(tiny_model_dir, tmp_path):
    runs = {}
    for optim in ("adamw_torch", "adamw_torch_fused"):
        cfg = make_cfg(tiny_model_dir, tmp_path / optim, optim=optim, max_steps=2)
        trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
        assert trainer.optimizer.optimizer.defaults["fused"] is (True if optim.endswith("fused") else None)
        before = params(trainer)
        trainer.train()
        runs[optim] = (before, params(trainer))
    (b0, loop), (b1, fused) = runs["adamw_torch"], runs["adamw_torch_fused"]
    assert all(torch.equal(b0[k], b1[k]) for k in b0)
    moved = max(float((loop[k] - b0[k]).abs().max()) for k in b0)
    assert moved > 1e-4  # lr 1e-3: the two steps really moved the weights
    assert all(torch.allclose(loop[k], fused[k], atol=1e-6, rtol=0) for k in loop)


def test_an_unknown_optimizer_is_refused_by_name(tiny_model_dir, tmp_path):
    import pytest

    from rl.errors import ConfigError

    with pytest.raises(ConfigError, match="optim.*adamw_8bit.*adamw_torch_fused"):
        make_cfg(tiny_model_dir, tmp_path, optim="adamw_8bit")
