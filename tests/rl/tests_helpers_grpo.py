"""Builders shared by the GRPO trainer tests."""

from __future__ import annotations

from datasets import Dataset

from rl.config import GRPOConfig


def token_sum_reward(prompts, completions, completion_ids, **kw):
    """Varies between completions of a random model, so advantages are non-zero."""
    return [float(sum(ids) % 7) / 7.0 for ids in completion_ids]


def constant_reward(prompts, completions, completion_ids, **kw):
    return [1.0] * len(completions)


def make_dataset(n=12):
    return Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": f"Compute: {i % 9 + 1} + {i % 5 + 1}"}],
             "reward_model": {"ground_truth": str(i % 9 + i % 5 + 2)}}
            for i in range(n)
        ]
    )


def make_cfg(model_dir, tmp_path, **kw):
    base = dict(
        model=str(model_dir),
        output_dir=str(tmp_path / "run"),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=12,
        max_steps=1,
        learning_rate=1e-3,
        report_to=["jsonl"],
        save_final=False,
        seed=7,
        disable_progress_bar=True,
    )
    base.update(kw)
    return GRPOConfig(**base)


def params(trainer):
    return {k: v.detach().clone() for k, v in trainer.unwrapped_model.named_parameters()}




def make_lengths_uneven(trainer) -> None:
    """Cut the engine's completions to 2..12 tokens (by position in the group), so that rows and
    micro-batches differ in length (with equal lengths a token-mean equals a row mean)."""
    generate = trainer.engine.generate

    def uneven(prompt_ids, n, sampling):
        groups = generate(prompt_ids, n, sampling)
        for g in groups:
            for i, traj in enumerate(g):
                keep = 2 + (5 * i) % 11
                traj.completion_ids = traj.completion_ids[:keep]
                traj.completion_mask = traj.completion_mask[:keep]
        return groups

    trainer.engine.generate = uneven
