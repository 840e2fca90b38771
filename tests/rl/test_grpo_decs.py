"""Two GRPO + DECS steps on the tiny model: the registered reward, advantage and sampler run
through the method-blind trainer, and kappa state is checkpointed."""

from __future__ import annotations

import json

import torch

from rl.grpo_trainer import GRPOTrainer
from tests_helpers_grpo import make_cfg, make_dataset, params


def parity_accuracy(prompts, completions, completion_ids, **kw):
    """A stand-in 0/1 outcome that varies inside a group (a random model is never right)."""
    return [float(sum(ids) % 2) for ids in completion_ids]


parity_accuracy.__name__ = "accuracy"


def test_two_decs_steps(tiny_model_dir, tmp_path):
    from rewards import get_reward_func

    cfg = make_cfg(
        tiny_model_dir, tmp_path, max_steps=2, save_steps=2, advantage_estimator="decs", sampler="decs_kappa",
        reward_funcs=["accuracy", "decs_redundancy"],  # the pieces whose method_kwargs keys are set below
        method_kwargs={"decs_beta": 0.1, "decs_judge": "rule", "decs_kappa_init": 0.5},
    )
    trainer = GRPOTrainer(cfg.model, reward_funcs=[parity_accuracy, get_reward_func("decs_redundancy")], args=cfg,
                          train_dataset=make_dataset())
    before = params(trainer)
    summary = trainer.train()
    assert summary["global_step"] == 2
    after = params(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "decs/kappa" in rows[-1] and "decs/redundant_token_frac" in rows[-1]
    # the curriculum state is each process's own: it is in rng_state_<rank>.pt, not trainer_state.json
    local = torch.load(tmp_path / "run" / "checkpoint-2" / "rng_state_0.pt", weights_only=False)["local"]
    assert "kappa" in local["assembler"]
