"""GRPO / SFT runs under ``accelerate launch`` with 2 processes, for tests/rl/test_sharded_training.py
(DDP with cpu_2proc.yaml, FSDP2 with fsdp2_cpu_2proc.yaml). Not a test module itself.

Each rank writes ``<out>/rank<r>.json`` (distributed type, whether the parameters and the reference
model's parameters are sharded, per step: skipped, kl, generation rounds, generate() calls), and the
main process writes the consolidated parameters to ``<out>/params.pt`` and the start ones to
``<out>/start.pt``.

Scenarios: ``grpo`` (token-sum reward); ``uneven`` (dynamic sampling where rank 0 makes 3
generation rounds and keeps 1 group, rank 1 makes 1: uneven rounds and empty micro-batches on
rank 0); ``sft``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests_helpers_grpo import make_dataset, token_sum_reward  # noqa: E402

from rewards.hooks import RewardHooks  # noqa: E402
from rl.sharding import full_state_dict, is_sharded  # noqa: E402


class UnevenReward(RewardHooks):
    """Rank 0: constant rewards in the first two rounds of a step (every group dropped), then variance
    in the first group only; rank 1: variance in every group from the first round."""

    __name__ = "uneven"

    def __init__(self) -> None:
        self.calls = 0
        self.step = -1

    def set_step(self, step: int) -> None:
        if step != self.step:
            self.step, self.calls = step, 0

    def __call__(self, prompts, completions, completion_ids, **kw):
        self.calls += 1
        n = len(completions)
        if int(os.environ.get("RANK", "0")) == 1:
            return [float(i % 2) for i in range(n)]
        if self.calls < 3:
            return [0.0] * n
        return [float(i % 2) if i < 2 else 0.0 for i in range(n)]


def _sharded_flag(model) -> bool:
    from torch.distributed.tensor import DTensor

    return all(isinstance(p, DTensor) for p in model.parameters())


def run_grpo(a, out: Path):
    from rl.config import GRPOConfig
    from rl.grpo_trainer import GRPOTrainer

    kw = dict(
        model=a.model, output_dir=str(out / "run"), num_generations=2, per_device_train_batch_size=4,
        max_completion_length=8, max_steps=a.steps, learning_rate=1e-3, report_to=["jsonl"], save_final=a.export,
        seed=3, disable_progress_bar=True, save_steps=a.save_steps, save_total_limit=0, beta=a.beta,
        resume_from_checkpoint=a.resume, bf16=a.bf16, optim=a.optim,
    )
    funcs = [token_sum_reward]
    if a.lora:  # the reference is the policy with its adapters off
        kw.update(use_peft=True, lora_r=4, lora_alpha=8, learning_rate=1e-2)
    if a.scenario == "uneven":
        kw.update(per_device_train_batch_size=1, gradient_accumulation_steps=4, dynamic_sampling=True,
                  max_generation_batches=3)
        funcs = [UnevenReward()]
    if a.eval:  # greedy evaluation during training on the main process, on gathered weights
        kw.update(eval_steps=2, eval_dataset="task:overthink", eval_num_examples=3)
    cfg = GRPOConfig(**kw)
    trainer = GRPOTrainer(cfg.model, reward_funcs=funcs, args=cfg, train_dataset=make_dataset(40))
    if a.eval:
        from rl.eval.training import attach_eval

        attach_eval(trainer, cfg)
        evaluate = trainer._eval_fn

        def recording_eval():
            res = evaluate()
            trainer.eval_results.append(res)
            return res

        trainer.eval_results = []
        trainer.set_eval_fn(recording_eval)
    calls = {"generate": 0}
    generate = trainer.engine.generate

    def counting(*args, **kwargs):
        calls["generate"] += 1
        return generate(*args, **kwargs)

    trainer.engine.generate = counting
    build = trainer.build_batch

    def recording_build(groups):
        batch = build(groups)
        calls["rows"] = batch.num_rollouts
        return batch

    trainer.build_batch = recording_build
    return trainer, calls


def run_sft(a, out: Path):
    from datasets import Dataset

    from rl.config import SFTConfig
    from rl.sft_trainer import SFTTrainer

    rows = [{"prompt": [{"role": "user", "content": f"Compute: {i % 9 + 1} + {i % 5 + 1}"}],
             "completion": [{"role": "assistant", "content": f"The answer is {i % 9 + i % 5 + 2}."}]} for i in range(24)]
    cfg = SFTConfig(model=a.model, output_dir=str(out / "run"), per_device_train_batch_size=3, gradient_accumulation_steps=2,
                    max_steps=a.steps, learning_rate=1e-3, report_to=["jsonl"], save_final=a.export, seed=3,
                    disable_progress_bar=True, save_steps=a.save_steps, save_total_limit=0, resume_from_checkpoint=a.resume,
                    eval_holdout_fraction=0.2, eval_steps=1, bf16=a.bf16)
    return SFTTrainer(cfg.model, args=cfg, train_dataset=Dataset.from_list(rows)), {"generate": 0}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--scenario", default="grpo", choices=["grpo", "uneven", "sft"])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--save_steps", type=int, default=0)
    p.add_argument("--beta", type=float, default=0.0)
    p.add_argument("--resume", default=None)
    p.add_argument("--export", action="store_true")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--eval", action="store_true")
    p.add_argument("--lora", action="store_true")
    p.add_argument("--optim", default="adamw_torch")
    a = p.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer, calls = (run_sft if a.scenario == "sft" else run_grpo)(a, out)
    acc = trainer.accelerator
    assert acc.num_processes == 2, acc.num_processes
    rank = acc.process_index
    start = full_state_dict(trainer.model, acc)
    ref = getattr(trainer, "ref_model", None)
    log: dict = {
        "rank": rank, "distributed_type": str(acc.distributed_type), "sharded": is_sharded(acc),
        "params_sharded": _sharded_flag(trainer.model), "steps": [],
        "ref_sharded": _sharded_flag(ref) if ref is not None else None,
        "ref_is_policy": ref is trainer.model,
        "param_dtype": str(getattr(getattr(getattr(acc.state, "fsdp_plugin", None), "mixed_precision_policy", None),
                                   "param_dtype", None)),
    }
    step = trainer.training_step

    def recording_step():
        before = calls["generate"]
        metrics = step()
        log["steps"].append({
            "skipped": bool(metrics.get("skipped")), "kl": metrics.get("kl"), "loss": metrics.get("loss"),
            "rounds": metrics.get("sampling/generation_rounds"), "generate_calls": calls["generate"] - before,
            "eval_loss": getattr(trainer, "last_eval_loss", None), "rows": calls.get("rows"),
        })
        (out / f"rank{rank}.json").write_text(json.dumps(log))
        return metrics

    trainer.training_step = recording_step
    trainer.train()
    final = full_state_dict(trainer.model, acc)
    log["global_step"] = trainer.global_step
    if a.scenario == "grpo":  # the vLLM weight push's source: rank 0 reads full tensors, rank 1 only joins the gathers
        from rollout.weights import drain_weights, policy_weights

        if rank == 0:
            with policy_weights(trainer.model) as weights:
                pushed = {n: t.clone() for n, t in weights}
            if a.lora:  # checkpoint names, the adapters added: compared with the merged export by the test
                torch.save(pushed, out / "pushed.pt")
            else:
                log["pushed_equal"] = pushed.keys() == final.keys() and all(torch.equal(pushed[k], final[k]) for k in final)
        else:
            drain_weights(trainer.model)
    log["eval"] = getattr(trainer, "eval_results", None)
    (out / f"rank{rank}.json").write_text(json.dumps(log))
    if rank == 0:
        torch.save(final, out / "params.pt")
        torch.save(start, out / "start.pt")


if __name__ == "__main__":
    main()
