"""The main job on the embedded default, end to end on CPU in a few minutes:

    tiny Qwen2 model + tokenizer  ->  SFT warm start on the overthinking-arithmetic task
    (``overthink_slip``: a noisy teacher that skips the last step, so RL has something to fix)
    ->  evaluate  ->  GRPO (+ DECS by default)  ->  evaluate
    ->  report (accuracy, mean completion tokens, redundant tokens, time)

    parsimony quickstart [--out outputs/quickstart] [--sft-steps N] [--grpo-steps N]

Writes ``<out>/report.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rl.cli_flags import CommaList, FlagParser


def parse_args(argv=None) -> argparse.Namespace:
    p = FlagParser(prog="parsimony quickstart", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs/quickstart", help="output directory")
    p.add_argument("--size", default="tiny", choices=["tiny", "small"], help="embedded model size")
    p.add_argument("--task", default="overthink_slip",
                   help="synthetic task name (overthink_slip: the teacher's traces open 'Let me compute quickly.' "
                        "and skip the last step on 15%% of 2-op and 60%% of 3-op problems, so accuracy-only RL has "
                        "headroom; overthink: the clean teacher of the DECS study)")
    p.add_argument("--sft-checkpoint", default=None,
                   help="reuse this SFT checkpoint (e.g. <out>/sft/final of an earlier run) instead of training one")
    p.add_argument("--method", default="decs", choices=["decs", "grpo"],
                   help="decs: GRPO with the DECS token-level length reward; grpo: accuracy reward only")
    p.add_argument("--sft-steps", type=int, default=1000,
                   help="SFT optimizer steps (batch 32); on the clean overthink task 700 reach ~60%% greedy accuracy, "
                        "1000 ~92%%, 1200 ~99%%")
    p.add_argument("--sft-lr", type=float, default=3e-3)
    p.add_argument("--grpo-steps", type=int, default=60, help="GRPO optimizer steps")
    p.add_argument("--grpo-lr", type=float, default=5e-5,
                   help="2e-4 collapses accuracy within ~25 steps on this model; 1e-4 costs ~4 points")
    p.add_argument("--grpo-warmup-steps", type=int, default=15,
                   help="linear lr warmup, then constant (Adam's first updates are sign-like; without warmup, "
                        "lr 2e-4 lost accuracy from the 2nd step)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="rollout temperature, also the temperature of the 'sampled' evaluation")
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-completion-length", type=int, default=200, help="the task's longest traces are ~170 tokens")
    p.add_argument("--eval-problems", type=int, default=500,
                   help="held-out problems per evaluation (500: a standard error of about 2 points)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0: torch's default, one per core; use 1 when another job shares the cores, "
                        "where more threads spin against it)")
    p.add_argument("--async-rollouts", action=argparse.BooleanOptionalAction, default=False,
                   help="one-step off-policy rollouts in the GRPO stage: the next step's rollouts generate in a child "
                        "process while this step updates, IS-corrected (vllm_is_cap 2); the trainer then keeps one "
                        "core fewer (docs/performance.md)")
    from rl.eval.heldout import add_grpo_speed_args

    add_grpo_speed_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-to", action=CommaList, default="console,jsonl", help="console,jsonl[,wandb]")
    return p.parse_args(argv)


def method_fields(method: str) -> dict:
    """GRPOConfig fields of the quickstart's method: its preset (``rl/presets.py``; ``decs``: accuracy +
    token-level penalty on tokens after the necessary reasoning prefix, with the settings of docs/decs.md,
    Results, registered in ``rl/methods/decs.py``). DECS keeps ``decs_l_max: batch``, the setting its published
    table (docs/quickstart.md) was measured with before the preset's default became the paper's
    ``max_completion_length`` (2026-12-07): the quickstart reproduces that table exactly."""
    if method == "decs":
        return {"method": method, "method_kwargs": {"decs_l_max": "batch"}}
    return {"method": method}


def async_fields(on: bool) -> dict:
    """GRPOConfig fields of ``--async-rollouts``: the rollouts one step behind, and the truncated importance
    weight that corrects for the lag (the setting of the learning check in docs/performance.md)."""
    return {"async_rollouts": True, "vllm_is_cap": 2.0} if on else {}


def main(argv=None) -> int:
    import torch

    from curriculum.tasks import get_task_dataset, task_text_metrics
    from rl.config import GRPOConfig
    from rl.eval.heldout import evaluate_checkpoint, grpo_speed_fields, sft_warm_start
    from rl.experiments.tiny_model import make_tiny_model
    from rl.grpo_trainer import GRPOTrainer

    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report_to = [s for s in args.report_to.split(",") if s]
    timings: dict[str, float] = {}
    t_all = time.time()

    t0 = time.time()
    model_dir = make_tiny_model(out / "tiny-model", size=args.size, seed=args.seed)
    timings["build_model"] = time.time() - t0
    print(f"[quickstart] built the {args.size} model + tokenizer in {model_dir} ({timings['build_model']:.1f}s)")

    test_set = get_task_dataset(args.task, args.eval_problems, seed=args.seed + 1, split="test")

    t0 = time.time()
    if args.sft_checkpoint:
        sft_dir = Path(args.sft_checkpoint)
        if not (sft_dir / "config.json").is_file():
            raise FileNotFoundError(f"--sft-checkpoint: {sft_dir} has no config.json (give a saved model directory)")
        print(f"[quickstart] reusing the SFT checkpoint {sft_dir}")
    else:
        sft_dir = sft_warm_start(model_dir, args.task, args.sft_steps, out / "sft", learning_rate=args.sft_lr,
                                 report_to=report_to, seed=args.seed, run_name="quickstart-sft")
    timings["sft"] = time.time() - t0

    t0 = time.time()
    metrics = task_text_metrics(args.task)
    before = evaluate_checkpoint(sft_dir, test_set, max_new_tokens=args.max_completion_length,
                                temperature=args.temperature, seed=args.seed, text_metrics=metrics)
    timings["eval_before"] = time.time() - t0
    print(f"[quickstart] after SFT: greedy accuracy {before['greedy']['accuracy']:.3f}, "
          f"mean tokens {before['greedy']['mean_tokens']:.1f}")

    t0 = time.time()
    grpo_cfg = GRPOConfig(
        overwrite_output_dir=True,  # a harness stage owns its folder: a rerun replaces it
        model=str(sft_dir),
        dataset=f"task:{args.task}",
        dataset_num_examples=4096,
        learning_rate=args.grpo_lr,
        warmup_steps=args.grpo_warmup_steps,
        lr_scheduler_type="constant_with_warmup" if args.grpo_warmup_steps > 0 else "constant",
        num_generations=args.num_generations,
        per_device_train_batch_size=args.prompts_per_step * args.num_generations,
        max_steps=args.grpo_steps,
        max_completion_length=args.max_completion_length,
        temperature=args.temperature,
        output_dir=str(out / "grpo"),
        report_to=report_to,
        logging_steps=5,
        save_total_limit=1,
        seed=args.seed,
        run_name=f"quickstart-{args.method}",
        **grpo_speed_fields(args),
        **method_fields(args.method),
        **async_fields(args.async_rollouts),
    )
    threads = torch.get_num_threads()
    if args.async_rollouts and args.threads <= 0:  # the rollout child takes a core of its own
        torch.set_num_threads(max(1, threads - 1))
    trainer = GRPOTrainer(grpo_cfg.model, args=grpo_cfg)
    try:
        trainer.train()
    finally:
        trainer.close()  # --async-rollouts: its rollout thread and process
        torch.set_num_threads(threads)
    timings["grpo"] = time.time() - t0
    grpo_dir = out / "grpo" / "final"

    t0 = time.time()
    after = evaluate_checkpoint(grpo_dir, test_set, max_new_tokens=args.max_completion_length,
                               temperature=args.temperature, seed=args.seed, text_metrics=metrics)
    timings["eval_after"] = time.time() - t0
    timings["total"] = time.time() - t_all

    rows = []
    label = "GRPO + DECS" if args.method == "decs" else "GRPO (accuracy)"
    for stage, res in (("SFT start", before), (label, after)):
        for decoding in ("greedy", "sampled"):
            r = res[decoding]
            rows.append({"stage": stage, "decoding": decoding, "accuracy": r["accuracy"],
                         "accuracy_se": r["accuracy_se"], "mean_tokens": r["mean_tokens"],
                         "redundant_fraction": r["redundant_fraction"], "redundant_chunks": r["redundant_chunks"],
                         **{k: r[k] for k in metrics}})
    report = {"rows": rows, "timings_s": timings, "eval_problems": args.eval_problems, "task": args.task,
              "sft_steps": args.sft_steps, "grpo_steps": args.grpo_steps, "async_rollouts": args.async_rollouts,
              "hf_decode": args.hf_decode, "update_split": args.update_split}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print("\n## parsimony quickstart\n")
    extra = list(metrics)  # the task's behaviours (overthink: slip = the skip-a-step opening, steps per answer)
    print("| stage | decoding | accuracy (± SE) | mean tokens | redundant token fraction | redundant chunks |"
          + "".join(f" {k} |" for k in extra))
    print("|---|---|---|---|---|---|" + "---|" * len(extra))
    for r in rows:
        print(f"| {r['stage']} | {r['decoding']} | {100 * r['accuracy']:.1f}% ± {100 * r['accuracy_se']:.1f} | "
              f"{r['mean_tokens']:.1f} | {r['redundant_fraction']:.3f} | {r['redundant_chunks']:.2f} |"
              + "".join(f" {r[k]:.3f} |" for k in extra))
    print(f"\nheld-out problems: {args.eval_problems}; time: " +
          ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    print(f"report: {out / 'report.json'}")
    return 0
