"""One LoRA adapter per role on one base: each role's rows train its own adapter (its own optimizer
group and clipping), sub-episodes generate with their role's adapter, resume is exact and the
export is one merged model per role."""

from __future__ import annotations

import pytest
from types import SimpleNamespace

import torch
from transformers import AutoModelForCausalLM

from rollout.hf import HFEngine
from rl.errors import ConfigError
from rl.grpo_trainer import GRPOTrainer
from rl.role_adapters import active_adapter, clip_role_groups, role_parts
from rollout.mgrpo.agents import ExecutorRunner
from rollout.episodes import StepResult, row_messages
from tests_helpers_grpo import make_cfg, make_dataset, token_sum_reward

ROLES = ["planner", "executor"]


class TwoRoleEnv:
    """An episode that runs one executor sub-episode (role 1) through ExecutorRunner when it starts (the
    random model's own turns end by length, so a step would never run)."""

    def __init__(self):
        self.runner = ExecutorRunner(max_turns=1, tool_schemas=False)
        self.children = []

    def bind_rollout(self, engine, tokenizer, sampling):
        self.runner.bind(engine, tokenizer, sampling)

    def reset(self, row):
        self.children = self.runner.run(["2+2"])
        return row_messages(row, "prompt")

    def step(self, turn):
        return StepResult(done=True)

    def child_trajectories(self):
        return list(self.children)


def _cfg(model_dir, tmp_path, **kw):
    return make_cfg(model_dir, tmp_path, use_peft=True, lora_r=4, lora_alpha=8, role_adapters=ROLES,
                    learning_rate=1e-2, max_grad_norm=1.0, **kw)


def _trainer(cfg):
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
    trainer.make_episode_env = TwoRoleEnv
    return trainer


def _adapter_params(trainer, name):
    return {k: v.detach().clone() for k, v in trainer.unwrapped_model.named_parameters() if f".{name}." in k}


def test_each_role_trains_its_own_adapter_and_generates_with_it(tiny_model_dir, tmp_path):
    trainer = _trainer(_cfg(tiny_model_dir, tmp_path, max_steps=2))
    model = trainer.unwrapped_model
    assert [g["role_adapter"] for g in trainer.optimizer.param_groups] == ROLES
    base = {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" not in k}
    before = {r: _adapter_params(trainer, r) for r in ROLES}
    seen, generated = [], []
    micro_loss = trainer._micro_loss

    def recording(mb, *a):
        seen.append((sorted(set(mb.role.tolist())), model.active_adapter))
        return micro_loss(mb, *a)

    trainer._micro_loss = recording
    hf = trainer.engine.engine  # the HF engine under the role routing: which adapter is active when it runs
    gen = hf.generate

    def gen_recording(*a):
        generated.append(model.active_adapter)
        return gen(*a)

    hf.generate = gen_recording
    trainer.train()
    # every part of the update held one role, under that role's adapter; both roles were trained
    assert {tuple(r) for r, _ in seen} == {(0,), (1,)}
    assert all(active == ROLES[r[0]] for r, active in seen)
    assert generated and all(a in ROLES for a in generated) and set(generated) == set(ROLES)
    for r in ROLES:
        after = _adapter_params(trainer, r)
        assert any(not torch.equal(before[r][k], after[k]) for k in after), f"adapter {r} did not move"
    assert all(torch.equal(base[k], v) for k, v in model.named_parameters() if k in base)


def test_role_parts_and_per_role_clipping():
    roles = torch.tensor([0, 1, 0, 1, 1])
    from contextlib import nullcontext

    parts = role_parts(None, None, roles, torch.arange(5))
    assert len(parts) == 1 and isinstance(parts[0][0], nullcontext)
    with pytest.raises(ValueError, match="role 1 has"):
        from rl.role_adapters import RoleEngines

        RoleEngines(HFEngine(None, SimpleNamespace(pad_token_id=0, eos_token_id=1)), None, ["planner"]).for_role(1)
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [a], "role_adapter": "planner"}, {"params": [b], "role_adapter": "executor"}])
    a.grad, b.grad = torch.tensor([6.0, 8.0]), torch.tensor([0.5])
    norms = clip_role_groups(opt, 1.0)
    assert norms == pytest.approx({"planner": 10.0, "executor": 0.5})
    assert a.grad.tolist() == pytest.approx([0.6, 0.8], rel=1e-5) and b.grad.tolist() == [0.5]  # clipped alone


def test_resume_is_exact_and_the_export_is_one_merged_model_per_role(tiny_model_dir, tmp_path):
    def run(out, steps, resume=None):
        cfg = _cfg(tiny_model_dir, out, max_steps=steps, save_steps=2, save_total_limit=0,
                   resume_from_checkpoint=resume, save_final=True)
        trainer = _trainer(cfg)
        trainer.train()
        return trainer

    straight = run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)
    resumed = run(tmp_path / "b", 4, resume="latest")
    for name in ROLES:
        a, b = _adapter_params(straight, name), _adapter_params(resumed, name)
        assert all(torch.equal(a[k], b[k]) for k in a), f"adapter {name} differs after resume"
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    model = straight.unwrapped_model
    logits = {}
    for name in ROLES:
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "run" / "final" / name)
        with torch.no_grad(), active_adapter(model, name):
            assert torch.allclose(merged(ids).logits, model(ids).logits, atol=1e-5)
            logits[name] = model(ids).logits
    assert not torch.allclose(logits["planner"], logits["executor"], atol=1e-4)  # two trained adapters


def test_config_needs_peft_two_names_and_the_hf_engine(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="use_peft"):
        make_cfg(tiny_model_dir, tmp_path, role_adapters=ROLES)
    with pytest.raises(ConfigError, match="distinct"):
        make_cfg(tiny_model_dir, tmp_path, use_peft=True, role_adapters=["planner", "planner"])
    with pytest.raises(ConfigError, match="engine: hf"):
        make_cfg(tiny_model_dir, tmp_path, use_peft=True, role_adapters=ROLES, async_rollouts=True)



def test_the_lora_recipe_parses():
    from pathlib import Path

    from rl.config_loading import load_config
    from rl.config import GRPOConfig

    cfg = load_config(GRPOConfig, ["--config", str(Path(__file__).resolve().parents[2] / "recipes/mgrpo/qwen3-lora.yaml")])
    assert cfg.role_adapters == ROLES and cfg.use_peft and cfg.method == "mgrpo" and cfg.engine == "hf"


def test_old_logprobs_take_each_rows_own_adapter(tiny_model_dir, tmp_path):
    # num_iterations > 1: the old-policy log-probs of a row come from its role's adapter
    trainer = _trainer(_cfg(tiny_model_dir, tmp_path, num_iterations=2))
    model = trainer.unwrapped_model
    with torch.no_grad():  # two different, non-identity adapters
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5 if ".planner." in n else 0.3)
    trainer._next_group = 0
    trainer._timing, trainer._reward_metrics = {"rollout": 0.0, "reward": 0.0}, {}
    batch = trainer.build_batch(trainer.rollout_and_score([0, 1]))
    assert set(batch.role.tolist()) == {0, 1}
    trainer._add_reference_logprobs(batch)
    for role, name in enumerate(ROLES):
        rows = torch.nonzero(batch.role == role).squeeze(1)
        with torch.no_grad(), active_adapter(model, name):
            want = trainer._logp(trainer.model, batch.select(rows))[0]
        got = batch.old_logprobs[rows][:, : want.shape[1]]
        mask = batch.completion_mask[rows][:, : want.shape[1]] > 0
        assert torch.allclose(got[mask], want[mask], atol=1e-5), name
    with torch.no_grad(), active_adapter(model, "planner"):  # and the other adapter would differ
        other = trainer._logp(trainer.model, batch.select(torch.nonzero(batch.role == 1).squeeze(1)))[0]
    rows = torch.nonzero(batch.role == 1).squeeze(1)
    mask = batch.completion_mask[rows][:, : other.shape[1]] > 0
    assert not torch.allclose(batch.old_logprobs[rows][:, : other.shape[1]][mask], other[mask], atol=1e-4)
