"""Learning parity with TRL: the same GRPO run in TRL's ``GRPOTrainer`` and in parsimony's.

    start model (an SFT checkpoint, or the tiny model + the quickstart's SFT warm start)
    ->  GRPO in parsimony and in TRL: same data, reward, G, prompts per step, lr schedule,
        temperature, top_k 0, completion length, beta 0, one update per batch, token-mean loss
    ->  both final models on the same held-out problems, greedy and sampled
    ->  a table (accuracy with its standard error, mean tokens, seconds per step),
        DIR/summary.json and DIR/summary.md

    parsimony compare-trl [--model SFT_DIR] [--task overthink] [--steps 60] [--out outputs/compare_trl]

The settings that must agree (TRL 1.16 names -> parsimony's): ``loss_type="dapo"`` (token-mean
over the batch) -> ``loss_agg_mode="token-mean"``; ``scale_rewards="group"``; ``beta=0``;
``num_iterations=1``; ``top_k=0``; ``per_device_train_batch_size`` = prompts x G completions in
both, one optimizer step per generation batch; AdamW betas, epsilon, weight decay and gradient
clipping set to the same values. The reward is parsimony's ``accuracy`` reward in both: TRL
calls it through :func:`trl_reward`, which turns TRL's conversational completions
(``[{"role": "assistant", "content": ...}]``) into text and passes the dataset columns on.
TRL needs the ``dev`` extra (``pip install -e '.[dev]'``); it runs with ``use_vllm=False``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

from rl.cli_flags import CommaList, FlagParser

FRAMEWORKS = ("parsimony", "trl")
# TRL settings read back from the trainer after the run and written to summary.json
TRL_CHECKED = ("loss_type", "scale_rewards", "beta", "num_iterations", "top_k", "top_p", "temperature", "epsilon",
               "epsilon_high", "num_generations", "per_device_train_batch_size", "generation_batch_size",
               "steps_per_generation", "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type",
               "warmup_steps", "max_completion_length", "use_vllm", "bf16", "adam_beta2", "max_grad_norm")
# keyword arguments TRL adds to every reward call that are not dataset columns
_TRL_EXTRA_KWARGS = ("trainer_state", "log_extra", "log_metric", "environments")


def parse_args(argv=None) -> argparse.Namespace:
    p = FlagParser(prog="parsimony compare-trl", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None,
                   help="start model directory (an SFT checkpoint); default: build the tiny model and run the "
                        "quickstart's SFT warm start on the task")
    p.add_argument("--task", default="overthink", help="embedded task (a task: dataset) to train and evaluate on")
    p.add_argument("--dataset-kwargs", "--dataset_kwargs", dest="dataset_kwargs", default="{}",
                   help="JSON options of the task generator, e.g. '{\"redundancy\": \"heavy\"}'")
    p.add_argument("--out", default="outputs/compare_trl", help="output directory")
    p.add_argument("--frameworks", action=CommaList, default=",".join(FRAMEWORKS), help="which to run: parsimony,trl")
    p.add_argument("--sft-steps", type=int, default=1000, help="SFT warm-start steps when --model is not given")
    p.add_argument("--size", default="tiny", choices=["tiny", "small"], help="embedded model size (no --model)")
    p.add_argument("--steps", type=int, default=60, help="GRPO optimizer steps, each framework")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup-steps", type=int, default=15, help="linear warmup, then constant")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="rollout temperature, also the temperature of the 'sampled' evaluation")
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-completion-length", type=int, default=200)
    p.add_argument("--train-examples", type=int, default=4096, help="training problems generated")
    p.add_argument("--eval-problems", type=int, default=500,
                   help="held-out problems (500: a standard error of about 2 points)")
    p.add_argument("--eval-batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--ours-overrides", default="{}",
                   help="JSON GRPOConfig fields for parsimony's run only, e.g. the speed options that keep the "
                        "distribution and the gradient: '{\"hf_decode\": \"compact\", \"split_by_length\": 4, "
                        "\"async_rollouts\": true}' (the shared settings have their own flags and are refused here)")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------
# the shared reward, in TRL's calling convention
# ---------------------------------------------------------------------------------------


def trl_reward(reward: Callable[..., list] | str = "accuracy") -> Callable[..., list]:
    """A TRL reward function over one of parsimony's rewards (a registered name or the
    function). TRL passes conversational completions as message lists (``c[0]["content"]``)
    and the dataset's other columns as keyword arguments, plus its own extras
    (``trainer_state``, ...), which are dropped."""
    if isinstance(reward, str):
        from rewards import get_reward_func

        name = reward
        reward = get_reward_func(reward)
    else:
        name = getattr(reward, "__name__", type(reward).__name__)

    def call(prompts=None, completions=None, completion_ids=None, **kwargs):
        texts = [c[0]["content"] if isinstance(c, (list, tuple)) and c and isinstance(c[0], dict) else c
                 for c in (completions or [])]
        columns = {k: v for k, v in kwargs.items() if k not in _TRL_EXTRA_KWARGS}
        return list(reward(prompts=prompts, completions=texts, completion_ids=completion_ids, **columns))

    call.__name__ = name
    return call


# ---------------------------------------------------------------------------------------
# the two runs
# ---------------------------------------------------------------------------------------


def shared_settings(args) -> dict[str, Any]:
    """The settings both frameworks get (parsimony's names)."""
    return {
        "learning_rate": args.lr,
        "warmup_steps": args.warmup_steps,
        "lr_scheduler_type": "constant_with_warmup" if args.warmup_steps > 0 else "constant",
        "num_generations": args.num_generations,
        "per_device_train_batch_size": args.prompts_per_step * args.num_generations,
        "gradient_accumulation_steps": 1,
        "max_steps": args.steps,
        "max_completion_length": args.max_completion_length,
        "temperature": args.temperature,
        "top_p": 1.0,
        "top_k": 0,
        "beta": 0.0,
        "num_iterations": 1,
        "epsilon": 0.2,
        "scale_rewards": "group",
        "loss_agg_mode": "token-mean",
        "adam_beta1": 0.9,
        "adam_beta2": 0.99,
        "adam_epsilon": 1e-8,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "seed": args.seed,
    }


def json_object(text: str, flag: str) -> dict[str, Any]:
    """A command-line JSON object, or an error that names the flag."""
    from rl.config_loading import parse_json_object
    from rl.errors import ConfigError

    try:
        return parse_json_object(text, flag)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None


def ours_overrides(args) -> dict[str, Any]:
    """``--ours-overrides`` as a dict: a JSON object of GRPOConfig fields, none of them a shared setting."""
    import dataclasses

    from rl.config import GRPOConfig

    over = json_object(args.ours_overrides, "--ours-overrides")
    unknown = sorted(set(over) - {f.name for f in dataclasses.fields(GRPOConfig)})
    if unknown:
        raise SystemExit(f"error: --ours-overrides: {unknown} are not GRPOConfig fields")
    shared = sorted(set(over) & set(shared_settings(args)))
    if shared:
        raise SystemExit(f"error: --ours-overrides: {shared} are shared settings; set them for both frameworks "
                         "with their own flags")
    return over


def train_parsimony(args, start: Path, dataset, out: Path) -> dict[str, Any]:
    from rl.config import GRPOConfig
    from rl.grpo_trainer import GRPOTrainer

    s = shared_settings(args)
    cfg = GRPOConfig(
        overwrite_output_dir=True,  # a harness stage owns its folder: a rerun replaces it
        model=str(start), dataset=f"task:{args.task}", dataset_num_examples=args.train_examples,
        dataset_kwargs=json.loads(args.dataset_kwargs), reward_funcs=["accuracy"], loss_type="clipped",
        advantage_estimator="grpo", output_dir=str(out), report_to=["jsonl"], logging_steps=1,
        save_total_limit=1, run_name="compare-trl-parsimony", disable_progress_bar=True,
        **s, **ours_overrides(args),
    )
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=dataset)
    t0 = time.time()
    summary = trainer.train()
    seconds = time.time() - t0
    steps = int(summary.get("global_step", args.steps))
    # the tracker's clock at the end of every step (logging_steps 1)
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    ends = list({r["step"]: r["time"] for r in logged if "time" in r and "step" in r}.values())
    return {"final": out / "final", "steps": steps, "train_seconds": seconds,
            "seconds_per_step": steady_seconds_per_step(ends, seconds, steps)}


def train_trl(args, start: Path, dataset, out: Path) -> dict[str, Any]:
    try:
        from trl import GRPOConfig as TRLConfig
        from trl import GRPOTrainer as TRLTrainer
    except ImportError as e:
        raise SystemExit(f"error: TRL is not installed ({e}); install the dev extra: pip install -e '.[dev]'") from None

    from transformers import TrainerCallback

    from rl.modeling import load_model, load_tokenizer

    s = shared_settings(args)
    cfg = trl_config(TRLConfig, s, out, logging_steps=max(1, min(5, args.steps)))
    model = load_model(str(start))  # the same fp32 start weights parsimony loads
    tok = load_tokenizer(str(start))
    ends: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, *a, **k):
            ends.append(time.time())

    trainer = TRLTrainer(model=model, reward_funcs=[trl_reward("accuracy")], args=cfg, train_dataset=dataset,
                         processing_class=tok, callbacks=[StepClock()])
    t0 = time.time()
    trainer.train()
    seconds = time.time() - t0
    steps = int(trainer.state.global_step)
    final = out / "final"
    trainer.save_model(str(final))
    tok.save_pretrained(str(final))
    effective = {k: getattr(trainer.args, k, None) for k in TRL_CHECKED}
    return {"final": final, "steps": steps, "train_seconds": seconds,
            "seconds_per_step": steady_seconds_per_step(ends, seconds, steps), "trl_settings": effective}


def trl_config(config_cls, s: dict[str, Any], out: Path, **overrides):
    """TRL's ``GRPOConfig`` (``config_cls``) for the shared settings ``s`` (:func:`shared_settings`),
    with TRL's own names; ``overrides`` (TRL names) win."""
    kw = dict(
        output_dir=str(out), learning_rate=s["learning_rate"], warmup_steps=s["warmup_steps"],
        lr_scheduler_type=s["lr_scheduler_type"], num_generations=s["num_generations"],
        per_device_train_batch_size=s["per_device_train_batch_size"], gradient_accumulation_steps=1,
        steps_per_generation=1, max_steps=s["max_steps"], max_completion_length=s["max_completion_length"],
        temperature=s["temperature"], top_p=s["top_p"], top_k=s["top_k"], beta=s["beta"],
        num_iterations=s["num_iterations"], epsilon=s["epsilon"], scale_rewards=s["scale_rewards"],
        loss_type="dapo",  # token-mean over the batch = parsimony's loss_agg_mode token-mean
        adam_beta1=s["adam_beta1"], adam_beta2=s["adam_beta2"], adam_epsilon=s["adam_epsilon"],
        weight_decay=s["weight_decay"], max_grad_norm=s["max_grad_norm"], seed=s["seed"],
        use_vllm=False, bf16=False, fp16=False, report_to="none", save_strategy="no",
        logging_steps=5, disable_tqdm=True, log_completions=False,
        remove_unused_columns=False, dataloader_num_workers=0, dataloader_pin_memory=False,
    )
    kw.update(overrides)
    return config_cls(**kw)


def steady_seconds_per_step(step_ends: list[float], total_seconds: float, steps: int) -> float:
    """Seconds per step from the clock at the end of each step, leaving out the first step (it
    also pays one-off start-up: grader workers, allocator warm-up); with one step, the total."""
    if len(step_ends) >= 2:
        return (step_ends[-1] - step_ends[0]) / (len(step_ends) - 1)
    return total_seconds / max(1, steps)


# ---------------------------------------------------------------------------------------
# evaluation and report
# ---------------------------------------------------------------------------------------


def standard_error(p: float, n: int) -> float:
    """Binomial standard error of an accuracy ``p`` over ``n`` independent problems."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else 0.0


def table(rows: list[dict]) -> str:
    lines = ["| run | decoding | held-out accuracy | ± s.e. | mean tokens | steps | s / step (after the 1st) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        sps = "-" if r["seconds_per_step"] is None else f"{r['seconds_per_step']:.2f}"
        lines.append(f"| {r['framework']} | {r['decoding']} | {100 * r['accuracy']:.1f}% | {100 * r['stderr']:.1f} | "
                     f"{r['mean_tokens']:.1f} | {r['steps']} | {sps} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import torch

    from curriculum.data import load_dataset_spec
    from curriculum.tasks import get_task_dataset
    from rl.eval.heldout import evaluate_checkpoint, sft_warm_start

    args = parse_args(argv)
    frameworks = [f for f in args.frameworks.split(",") if f]
    bad = [f for f in frameworks if f not in FRAMEWORKS]
    if bad or not frameworks:
        raise SystemExit(f"error: --frameworks takes {', '.join(FRAMEWORKS)}; got {args.frameworks!r}")
    task_kwargs = json_object(args.dataset_kwargs, "--dataset_kwargs")
    overrides = ours_overrides(args)  # checked before any training
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()

    if args.model:
        start = Path(args.model)
        if not start.is_dir():
            raise FileNotFoundError(f"--model {args.model!r} is not a directory")
    else:  # the quickstart's start: the tiny model, then its SFT warm start on the task's traces
        from rl.experiments.tiny_model import make_tiny_model

        base = make_tiny_model(out / "tiny-model", size=args.size, seed=args.seed)
        start = sft_warm_start(base, args.task, args.sft_steps, out / "sft", seed=args.seed, run_name="compare-trl-sft")
    print(f"[compare-trl] start model: {start}")

    # one training set for both (the same rows, built once) and one held-out split
    dataset = load_dataset_spec(f"task:{args.task}", "train", args.train_examples, args.seed, task_kwargs)
    test_set = get_task_dataset(args.task, args.eval_problems, seed=args.seed + 1, split="test", **task_kwargs)

    def evaluate(path: Path) -> dict[str, dict]:
        return evaluate_checkpoint(path, test_set, max_new_tokens=args.max_completion_length,
                                   temperature=args.temperature, seed=args.seed, batch_size=args.eval_batch_size)

    runs: dict[str, dict[str, Any]] = {"start": {"final": start, "steps": 0, "seconds_per_step": None}}
    for fw in frameworks:
        print(f"[compare-trl] training with {fw}: {args.steps} steps")
        train = train_parsimony if fw == "parsimony" else train_trl
        runs[fw] = train(args, start, dataset, out / fw)
        print(f"[compare-trl] {fw}: {runs[fw]['seconds_per_step']:.2f} s per step")

    rows: list[dict] = []
    for name, run in runs.items():
        res = evaluate(Path(run["final"]))
        for decoding in ("greedy", "sampled"):
            r = res[decoding]
            n = int(r.get("num_problems") or len(test_set))
            rows.append({
                "framework": name, "decoding": decoding, "accuracy": r["accuracy"],
                "stderr": standard_error(r["accuracy"], n), "num_problems": n, "mean_tokens": r["mean_tokens"],
                "steps": run["steps"], "seconds_per_step": run["seconds_per_step"],
                "train_seconds": run.get("train_seconds"), "model": str(run["final"]),
            })

    settings = {**shared_settings(args), "task": args.task, "dataset_kwargs": task_kwargs,
                "prompts_per_step": args.prompts_per_step, "eval_problems": args.eval_problems,
                "train_examples": args.train_examples, "start": str(start), "reward": "accuracy",
                "trl_loss_type": "dapo", "trl_use_vllm": False, "parsimony_overrides": overrides}
    if "trl" in runs:
        settings["trl_effective"] = runs["trl"].get("trl_settings")
    summary = {"rows": rows, "settings": settings, "total_seconds": time.time() - t_all}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    text = table(rows)
    md = (f"# GRPO learning parity: parsimony vs TRL\n\ntask `{args.task}`, {args.steps} steps, "
          f"{args.prompts_per_step} prompts x G {args.num_generations}, lr {args.lr} "
          f"({args.warmup_steps} warmup steps, then constant), T {args.temperature}, "
          f"{args.max_completion_length} tokens; {len(test_set)} held-out problems "
          f"(s.e. = binomial standard error)"
          + (f"; parsimony only: `{json.dumps(overrides)}`" if overrides else "") + f"\n\n{text}\n")
    (out / "summary.md").write_text(md)
    print("\n## parsimony vs TRL\n")
    print(text)
    print(f"\nsummary: {out / 'summary.json'}, {out / 'summary.md'} ({summary['total_seconds']:.0f}s)")
    return 0
