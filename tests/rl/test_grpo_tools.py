"""GRPO with multi-turn tool episodes (``environment: tools``): the trainer's rollout goes
through the episode loop, observations stay masked through to the batch, rewards see the
episode's counts, and 2 real steps run on the tiny model with the HF engine."""

from __future__ import annotations

import json

import pytest
import torch

from rl.errors import ConfigError
from rl.grpo_trainer import GRPOTrainer
from rollout.types import Trajectory
from tests_helpers_grpo import make_cfg, make_dataset, params, token_sum_reward

CALL = '<tool_call>{"name": "calculator", "arguments": {"expression": "2+3"}}</tool_call>'


class ScriptedToolEngine:
    """Episode k of a prompt: even k calls the calculator once then answers, odd k answers directly."""

    def __init__(self, tok):
        self.tok = tok
        self.pad_token_id = tok.pad_token_id
        self.eos_token_ids = {tok.eos_token_id}
        self.seen = 0

    def generate(self, prompt_ids, n, sampling):
        out = []
        for p in prompt_ids:
            text = self.tok.decode(p, skip_special_tokens=False)
            turn = text.count("<|im_start|>assistant") - 1
            if turn == 0:
                self.seen += 1
                calls = self.seen % 2
            else:
                calls = 0
            body = CALL if calls else "\\boxed{5}<|im_end|>"
            ids = self.tok(body, add_special_tokens=False)["input_ids"][: sampling.max_new_tokens]
            out.append([Trajectory(prompt_ids=list(p), completion_ids=ids, text=self.tok.decode(ids, skip_special_tokens=True))])
        return out

    def sync_weights(self, model):
        pass


def _cfg(tiny_model_dir, tmp_path, **kw):
    base = dict(environment="tools", environment_kwargs={"tools": ["calculator"]}, max_turns=3,
                max_completion_length=70, max_episode_tokens=110, per_device_train_batch_size=8)
    base.update(kw)
    return make_cfg(tiny_model_dir, tmp_path, **base)


def test_environment_is_validated_at_config_time(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="environment: unknown environment 'nope'"):
        _cfg(tiny_model_dir, tmp_path, environment="nope")
    with pytest.raises(ConfigError, match="max_turns"):
        _cfg(tiny_model_dir, tmp_path, max_turns=0)


def test_tool_episodes_are_masked_through_the_trainer(tiny_model_dir, tmp_path):
    seen_meta = []

    def tool_reward(prompts, completions, completion_ids, meta, **kw):
        seen_meta.extend(meta)
        return [1.0 / (1 + m["tool_calls"]) for m in meta]

    cfg = _cfg(tiny_model_dir, tmp_path)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[tool_reward], args=cfg, train_dataset=make_dataset(),
                          engine=ScriptedToolEngine(tok))
    batches = []
    orig = trainer._update

    def recording(batch):
        batches.append(batch)
        return orig(batch)

    trainer._update = recording
    before = params(trainer)
    trainer.train()
    (batch,) = batches
    assert [m["tool_calls"] for m in seen_meta] == [1, 0, 1, 0, 1, 0, 1, 0]
    assert all(m["turns"] == 1 + m["tool_calls"] for m in seen_meta)
    for i, m in enumerate(batch.meta):
        real = int(batch.attention_mask_completion[i].sum())
        mask = batch.completion_mask[i, :real]
        if m["tool_calls"]:
            n_obs = int((mask == 0).sum())
            assert n_obs == m["observation_tokens"] > 0
            obs_ids = batch.completion_ids[i, :real][mask == 0].tolist()
            assert tok.decode(obs_ids, skip_special_tokens=False) == \
                "<|im_end|>\n<|im_start|>tool\n5<|im_end|>\n<|im_start|>assistant\n"
        else:
            assert bool((mask == 1).all())
    # the advantages are 0 on observation tokens, and the policy moved
    obs = (batch.completion_mask == 0) & (batch.attention_mask_completion == 1)
    assert obs.any() and torch.all(batch.advantages["main"][obs] == 0)
    after = params(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    m = rows[-1]
    assert m["tools/calls_mean"] == pytest.approx(0.5) and m["tools/zero_calls_frac"] == pytest.approx(0.5)
    assert m["episode/turns_mean"] == pytest.approx(1.5)


def test_two_grpo_steps_with_the_calculator_on_the_hf_engine(tiny_model_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, tmp_path, max_steps=2)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
    before = params(trainer)
    summary = trainer.train()
    assert summary["global_step"] == 2
    after = params(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "tools/calls_mean" in r]
    assert len(steps) == 2
    assert all(r["episode/turns_mean"] >= 1 for r in steps)
