"""A GRPO run under ``accelerate launch --num_processes 2`` for the multi-process tests
(tests/rl/test_grpo_multiprocess.py). Not a test module itself.

Each rank writes ``<out>/rank<r>.json``: per ``training_step`` call the step it was for, whether it
was skipped, the sampler's (epoch, cursor) afterwards, the prompt indices drawn, and the assembler's
state, and the prompts of the batch it trained on (in order). Rank 0 also writes the final parameters to ``<out>/params.pt``.

Scenarios (``--scenario``):
- ``nan``: on rank 1 only, at step ``--bad_step``, the reward returns NaN once
  (``nonfinite_reward_policy: skip_batch``);
- ``raise_skip``: the reward raises there once (``reward_error_policy: skip_batch``);
- ``raise``: the reward raises there once (``reward_error_policy: raise``): every rank must fail;
- ``decs``: ``sampler: decs_kappa`` with a 0/1 reward that makes mixed, easy and all-wrong groups
  (``--async_rollouts``: with one-step off-policy rollouts, a rollout process per rank).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests_helpers_grpo import make_dataset  # noqa: E402

from rewards.hooks import RewardHooks  # noqa: E402
from rl.config import GRPOConfig  # noqa: E402
from rl.grpo_trainer import GRPOTrainer  # noqa: E402


class FlakyReward(RewardHooks):
    """Token-sum reward; on rank ``bad_rank`` at step ``bad_step`` its first call fails (NaN or raise)."""

    __name__ = "flaky"

    def __init__(self, mode: str, bad_rank: int, bad_step: int) -> None:
        self.mode, self.bad_rank, self.bad_step = mode, bad_rank, bad_step
        self.step = -1
        self.fired = False

    def set_step(self, step: int) -> None:
        self.step = step

    def __call__(self, prompts, completions, completion_ids, **kw):
        vals = [float(sum(ids) % 7) / 7.0 for ids in completion_ids]
        if int(os.environ.get("RANK", "0")) == self.bad_rank and self.step == self.bad_step and not self.fired:
            self.fired = True
            if self.mode == "nan":
                vals[0] = float("nan")
            else:
                raise ValueError("flaky reward failed on purpose")
        return vals


def parity(prompts, completions, completion_ids, reward_model, **kw):
    """0/1 by the parity of the token sum; on rank 1 also 1 for the prompts whose answer is a multiple
    of 3, so that rank 1 sees all-correct (easy) groups that rank 0 does not: the ranks' curriculum
    states (running counts, RNG calls) then differ."""
    rank1 = int(os.environ.get("RANK", "0")) == 1
    return [1.0 if sum(ids) % 2 == 0 or (rank1 and int(rm["ground_truth"]) % 3 == 0) else 0.0
            for ids, rm in zip(completion_ids, reward_model)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--scenario", required=True, choices=["nan", "raise_skip", "raise", "decs"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--bad_step", type=int, default=1)
    p.add_argument("--save_steps", type=int, default=0)
    p.add_argument("--resume", default=None)
    p.add_argument("--async_rollouts", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    kw = dict(
        model=a.model, output_dir=str(out / "run"), num_generations=2, per_device_train_batch_size=4,
        max_completion_length=8, max_steps=a.steps, learning_rate=1e-3, report_to=["jsonl"], save_final=False,
        seed=3, disable_progress_bar=True, save_steps=a.save_steps, save_total_limit=0,
        resume_from_checkpoint=a.resume, async_rollouts=a.async_rollouts, vllm_is_cap=2.0 if a.async_rollouts else 0.0,
    )
    if a.scenario == "decs":
        kw.update(sampler="decs_kappa", max_generation_batches=3,
                  method_kwargs={"decs_kappa_init": 0.5, "decs_accuracy_reward": "parity"})
        funcs = [parity]
    else:
        funcs = [FlakyReward("nan" if a.scenario == "nan" else "raise", 1, a.bad_step)]
        if a.scenario == "nan":
            kw["nonfinite_reward_policy"] = "skip_batch"
        elif a.scenario == "raise_skip":
            kw["reward_error_policy"] = "skip_batch"
    cfg = GRPOConfig(**kw)
    trainer = GRPOTrainer(cfg.model, reward_funcs=funcs, args=cfg, train_dataset=make_dataset(40))
    assert trainer.accelerator.num_processes == 2, trainer.accelerator.num_processes
    rank = trainer.accelerator.process_index
    log: dict = {"rank": rank, "calls": []}
    draws: list = []
    rollout = trainer.rollout_and_score

    def recording_rollout(indices):
        draws.append(list(indices))
        return rollout(indices)

    trainer.rollout_and_score = recording_rollout
    batches: list = []
    build = trainer.build_batch

    def recording_build(groups):
        batches.append([g.prompt_index for g in groups])
        return build(groups)

    trainer.build_batch = recording_build
    step = trainer.training_step

    def recording_step():
        draws.clear()
        batches.clear()
        at = trainer.global_step
        metrics = step()
        log["calls"].append({
            "step": at, "skipped": bool(metrics.get("skipped")), "draws": list(draws), "batch": list(batches),
            "sampler": [trainer.sampler.epoch, trainer.sampler.cursor],
            "assembler": trainer.assembler.state_dict(), "loss": metrics.get("loss"),
        })
        (out / f"rank{rank}.json").write_text(json.dumps(log))  # also when a later step fails
        return metrics

    trainer.training_step = recording_step
    try:
        trainer.train()
        trainer.close()
    except Exception as e:  # recorded, then re-raised: the exit code says it failed
        log["error"] = f"{type(e).__name__}: {e}"
        (out / f"rank{rank}.json").write_text(json.dumps(log))
        raise
    log["skipped_batches"] = trainer.skipped_batches
    (out / f"rank{rank}.json").write_text(json.dumps(log))
    if rank == 0:
        torch.save({k: v.detach().cpu() for k, v in trainer.unwrapped_model.state_dict().items()}, out / "params.pt")


if __name__ == "__main__":
    main()
