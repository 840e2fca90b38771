"""End to end: a run of the stateful length rewards (``laser_d``, ``short_rl``) resumed from a checkpoint ends
with the same weights, bit for bit, as the uninterrupted run: their state (laser_d's targets and the rollouts
counted toward the next estimate, short_rl's best accuracy) travels in the checkpoint through the reward hooks
``checkpoint_state`` / ``load_checkpoint_state``. A fake grader (correct iff the completion text's length is not
a multiple of 3) gives the random tiny model's groups a mix of right and wrong answers, so the rewards and the
advantages depend on that state."""

from __future__ import annotations

import pytest
import torch

from rewards.length.adaptive import LaserDReward, ShortRLReward
from rewards.math import GradeResult
from rl.checkpoint import load_trainer_state
from rl.grpo_trainer import GRPOTrainer
from tests_helpers_grpo import make_cfg, make_dataset, params


class LengthGrader:
    def grade(self, completions, ground_truths):
        return [GradeResult(1.0, gt, "correct") if len(c) % 3 != 0 else GradeResult(0.0, None, "wrong")
                for c, gt in zip(completions, ground_truths)]


# laser_d estimates its targets at step 0 and again at step 3, from the rollouts of steps 1-3: after a resume at
# step 2, the step-0 targets and step 1's rollouts are only in the checkpoint; short_rl's switch compares each
# step's accuracy with the best one seen, which only the checkpoint has after a resume
REWARDS = {
    "laser_d": lambda: LaserDReward(grader=LengthGrader(), update_every=3, thresholds=[3, 6, 9, 12], alpha=0.5),
    "short_rl": lambda: ShortRLReward(grader=LengthGrader(), length_tolerance=1, acc_tolerance=0.0),
}


def _uneven_lengths(trainer) -> None:
    """Cut each completion to 2..12 tokens by its sampled content, so that lengths vary within and across groups
    and steps (the random model's completions all run to the budget): the targets then have lengths to tell apart."""
    generate = trainer.engine.generate

    def uneven(prompt_ids, n, sampling):
        groups = generate(prompt_ids, n, sampling)
        for g in groups:
            for t in g:
                keep = 2 + sum(t.completion_ids) % 11
                t.completion_ids, t.completion_mask = t.completion_ids[:keep], t.completion_mask[:keep]
        return groups

    trainer.engine.generate = uneven


def _run(model_dir, out, name, max_steps, resume=None):
    cfg = make_cfg(model_dir, out, max_steps=max_steps, save_steps=2, save_total_limit=0, resume_from_checkpoint=resume,
                   reward_funcs=[name])
    trainer = GRPOTrainer(cfg.model, reward_funcs=[REWARDS[name]()], args=cfg, train_dataset=make_dataset(10))
    _uneven_lengths(trainer)
    trainer.train()
    return params(trainer), trainer


def _saved_state(ckpt, name):
    _, local = load_trainer_state(ckpt)
    return local["local"].get("rewards", {}).get(name)


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_stateful_reward_resumes_bit_exactly(tiny_model_dir, tmp_path, name):
    straight, straight_trainer = _run(tiny_model_dir, tmp_path / "a", name, 4)
    _, half = _run(tiny_model_dir, tmp_path / "b", name, 2)
    ckpt = tmp_path / "b" / "run" / "checkpoint-2"
    state = _saved_state(ckpt, name)
    assert state == half.reward_funcs[0].checkpoint_state() and state["version"] == 1
    if name == "laser_d":  # targets estimated at step 0, step 1's rollouts waiting for the step-3 estimate
        assert state["estimated_at"] == 0 and set(state["targets"]) == {"easy", "medium", "hard"}
        assert state["window"]["easy"]["total"] + state["window"]["medium"]["total"] + state["window"]["hard"]["total"] == 8
    else:
        assert 0.0 < state["max_accuracy"] <= 1.0
    resumed, resumed_trainer = _run(tiny_model_dir, tmp_path / "b", name, 4, resume="latest")
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), f"{k} differs after resume"
    assert resumed_trainer.reward_funcs[0].checkpoint_state() == straight_trainer.reward_funcs[0].checkpoint_state()


def test_resume_without_the_reward_state_is_not_exact(tiny_model_dir, tmp_path):
    """The control: the same resume from a checkpoint whose laser_d state was removed estimates new targets from
    step 2's rollouts alone, scores them otherwise and ends elsewhere; so the test above does check the state."""
    straight, straight_trainer = _run(tiny_model_dir, tmp_path / "a", "laser_d", 4)
    _run(tiny_model_dir, tmp_path / "b", "laser_d", 2)
    ckpt = tmp_path / "b" / "run" / "checkpoint-2"
    local = torch.load(ckpt / "rng_state_0.pt", weights_only=False)
    del local["local"]["rewards"]
    torch.save(local, ckpt / "rng_state_0.pt")
    resumed, trainer = _run(tiny_model_dir, tmp_path / "b", "laser_d", 4, resume=str(ckpt))
    fresh, kept = trainer.reward_funcs[0], straight_trainer.reward_funcs[0]
    assert (fresh.estimated_at, kept.estimated_at) == (2, 3)  # the fresh reward estimated at its first call, step 2
    assert any(not torch.equal(straight[k], resumed[k]) for k in straight)
