"""One role of a decoupled M-GRPO run in its own process, for tests/rl/test_decoupled_processes.py.
Not a test module itself.

    python mgrpo_role_worker.py --role planner|executor --model DIR --out DIR --store redis://... --run R
                                --max_steps S [--die_at STEP]

Both roles checkpoint every step and resume from their latest checkpoint. ``--die_at s`` kills the
process with SIGKILL in the middle of step ``s``: the planner right after it committed the step's
groups to the store (before its own update and checkpoint), the executor right after its update on
the step (before its checkpoint). The planner plays both of its episodes' roles with the scripted
engine of tests/rl/test_grpo_mgrpo.py; the executor trains its own copy of the tiny model."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_grpo_mgrpo import PlannerExecutorEngine, dataset  # noqa: E402
from tests_helpers_grpo import make_cfg  # noqa: E402

import rl.methods.mgrpo as mgrpo  # noqa: E402  (its prepare_groups pushes the planner's steps)
import rl.methods.mgrpo_two_process as decoupled  # noqa: E402
from rl.grpo_trainer import GRPOTrainer  # noqa: E402


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--role", choices=["planner", "executor"], required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--max_steps", type=int, required=True)
    p.add_argument("--die_at", type=int, default=-1)
    a = p.parse_args()
    cfg = make_cfg(
        a.model, Path(a.out), method="mgrpo", max_turns=5, max_completion_length=150, max_episode_tokens=700,
        environment_kwargs={"executor_max_episode_tokens": 300}, per_device_train_batch_size=8, num_generations=4,
        max_steps=a.max_steps, save_steps=1, resume_from_checkpoint="latest",
        environment="planner" if a.role == "planner" else None,
        method_kwargs={"mgrpo_store": a.store, "mgrpo_run": a.run, "mgrpo_train_roles": a.role},
    )
    if a.role == "planner":
        from transformers import AutoTokenizer

        push = mgrpo.push_executor_step

        def push_then_maybe_die(store, run, step, groups):
            out = push(store, run, step, groups)
            print(f"[worker] planner pushed step {step}: {out}", flush=True)
            if step == a.die_at:
                die()
            return out

        mgrpo.push_executor_step = push_then_maybe_die
        trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=dataset(),
                              engine=PlannerExecutorEngine(AutoTokenizer.from_pretrained(a.model)))
    else:
        trainer = decoupled.StoreExecutorTrainer(cfg.model, cfg, wait_timeout=120.0)
        update = trainer._update

        def update_then_maybe_die(batch):
            out = update(batch)
            print(f"[worker] executor trained step {trainer.global_step} on {batch.num_rollouts} rows", flush=True)
            if trainer.global_step == a.die_at:
                die()
            return out

        trainer._update = update_then_maybe_die
    summary = trainer.train()
    if a.role == "executor":
        print(f"[worker] executor trained_steps {trainer.trained_steps}", flush=True)
    print(f"[worker] {a.role} done at step {summary['global_step']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
