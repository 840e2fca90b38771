"""M-GRPO's proof harness on the embedded planner/executor tasks (docs/mgrpo.md, "The proof"):

    SFT starts (both roles' traces | one model with the calculator)  ->  the same GRPO budget
    (seed, steps, prompts per step, K, lr) for each arm  ->  held-out evaluation, greedy and sampled
    ->  summary.json, summary.md, plot.png

    parsimony compare-agents --task planner --out DIR [--grpo-steps 40] [--arms ...]
    parsimony compare-agents --task long_context --out DIR [--seeds 3]  # work that does not fit one context

Tasks: ``planner`` (sums of products; the whole work fits one context) and ``long_context`` (sums of values
that sit in long ledgers only a tool shows; every context of every arm, its prompt included, is capped at
``--context-tokens``, the model's 512 positions, so a single agent that reads every ledger itself runs out
of context where the planner, which sees only its executors' results, does not).

Arms:
  single_agent     GRPO (accuracy reward), one model doing everything with the calculator
  frozen_executor  multi-agent, two models from the same SFT start; only the planner trains (M-GRPO's
                   planner rows), the executor model only serves its calls
  mgrpo_shared     M-GRPO, one model playing both roles, one optimizer
  mgrpo_separate   M-GRPO, two models and two optimizers, the executor trained from the in-process store
  mgrpo_lora       M-GRPO, one base with a LoRA adapter per role (its own optimizer group and clipping),
                   at --lora-lr; evaluated as two models (each role's adapter merged)

Stages are cached: an SFT start whose ``DIR/sft_multi/final`` (``DIR/sft_single/final``) exists is reused, an arm whose
``DIR/<arm>/final`` (and, for the two-model arms, ``DIR/<arm>/executor/final``) and ``train_info.json``
exist is not retrained, and an evaluation is reused from ``DIR/<arm>/eval.json``. Delete a directory
to redo it. ``summary.json`` rows: ``method, decoding, accuracy, executor_accuracy, mean_calls`` and more.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rl.cli_flags import CommaList, FlagParser
from rl.experiments.agents_report import DECODINGS, beats_baselines, run_seeds, write_report

TASKS = {"planner": "curriculum.tasks.planner", "long_context": "curriculum.tasks.long_context"}
ARMS = ("single_agent", "frozen_executor", "mgrpo_shared", "mgrpo_separate", "mgrpo_lora")
TWO_MODEL_ARMS = ("frozen_executor", "mgrpo_separate")


def parse_args(argv=None) -> argparse.Namespace:
    p = FlagParser(prog="parsimony compare-agents", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="planner", choices=list(TASKS), help="the embedded planner/executor task")
    p.add_argument("--out", default="outputs/compare-agents")
    p.add_argument("--arms", action=CommaList, default=",".join(ARMS), help="comma-separated arms of " + ", ".join(ARMS))
    p.add_argument("--model-dir", default=None, help="start model (default: build the tiny model)")
    p.add_argument("--sft-checkpoint", default=None, help="reuse this multi-agent SFT start (both roles' traces)")
    p.add_argument("--single-sft-checkpoint", default=None, help="reuse this single-agent SFT start")
    p.add_argument("--sft-steps", type=int, default=1000,
                   help="the single agent's SFT start, batch 32 (150 steps: it does not yet copy the problem's operands)")
    p.add_argument("--multi-sft-steps", type=int, default=None,
                   help="the multi-agent SFT start (both roles' traces), batch 32; default 2 x --sft-steps. A problem gives "
                        "~4.5 rows there (its planner row and its executor rows), so the planner sees ~1/4.5 of what the "
                        "single agent sees per step: after 1000 steps it miscopied every sum call's numbers (0.5%% accuracy)")
    p.add_argument("--single-guesses", action="store_true",
                   help="the single agent's teacher guesses too, on the executor's draws (task option single_guesses: a "
                        "product written inline off by 1-2 instead of a calculator call), so both systems' SFT starts "
                        "hold the same behaviours (its start: DIR/sft_single_guesses); default: it calls the calculator every time")
    p.add_argument("--sft-lr", type=float, default=3e-3)
    p.add_argument("--sft-max-length", type=int, default=512,
                   help="SFT truncation (prompt + trace): the task's planner traces are <= 437 tokens, executor ones <= 206")
    p.add_argument("--grpo-steps", type=int, default=40)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--lora-lr", type=float, default=None,
                   help="mgrpo_lora's lr (default 10 x --lr: LoRA adapters are usually trained ~10x faster)")
    p.add_argument("--lora-r", type=int, default=16, help="mgrpo_lora's adapter rank (alpha = 2 r)")
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--generated-tokens", type=int, default=0,
                   help="a budget of generated tokens per arm (max_generated_tokens: every role's tokens, executor "
                        "calls included, observations excluded); each arm ends after the step that reaches it, and "
                        "--grpo-steps is the upper bound. 0 = the same number of steps per arm instead")
    p.add_argument("--temperature", type=float, default=1.0, help="rollout temperature and the sampled evaluation's")
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--num-generations", type=int, default=8, help="K planner rollouts per prompt")
    p.add_argument("--max-completion-length", type=int, default=96, help="tokens per model turn (a call is ~60)")
    p.add_argument("--max-episode-tokens", type=int, default=None,
                   help="a planner's (and the single agent's) episode: turns + observations. planner task: 384 (the "
                        "teacher's 4 calls and the box: <= 316; with its prompt (<= 126) within the tiny model's 512 "
                        "positions); long_context: from --context-tokens")
    p.add_argument("--executor-max-episode-tokens", type=int, default=None,
                   help="an executor episode's turns + observations. planner task: 192 (a calculator call and the "
                        "result: ~100); long_context: from --context-tokens")
    p.add_argument("--context-tokens", type=int, default=None,
                   help="one context's limit, the same for every agent of every arm: each role's episode budget is "
                        "this minus its longest prompt (long_context default: 512, the model's positions; planner: "
                        "unset, the two budgets above)")
    p.add_argument("--seeds", type=int, default=1,
                   help="N > 1: the whole comparison for seeds seed..seed+N-1 (DIR/seed<k>/), then mean ± std per cell")
    p.add_argument("--d-max", default="auto", help="M-GRPO's D_max: an int or auto (the batch median, capped)")
    p.add_argument("--w-local", type=float, default=0.0,
                   help="executor reward weight of r_local (R_S = R_M(parent) + w_local r_local; default 0: the paper's)")
    p.add_argument("--eval-problems", type=int, default=200)
    p.add_argument("--decodings", action=CommaList, default=",".join(DECODINGS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-to", action=CommaList, default="jsonl")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for the tiny model)")
    args = p.parse_args(argv)
    args.arm_list = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arm_list if a not in ARMS]
    if bad or not args.arm_list:
        p.error(f"--arms: unknown {bad}; choose from {list(ARMS)}")
    if args.multi_sft_steps is None:
        args.multi_sft_steps = 2 * args.sft_steps
    if args.lora_lr is None:
        args.lora_lr = 10 * args.lr
    args.decoding_list = [d.strip() for d in args.decodings.split(",") if d.strip()]
    if not args.decoding_list or any(d not in DECODINGS for d in args.decoding_list):
        p.error(f"--decodings: choose from {list(DECODINGS)}")
    if args.generated_tokens < 0:
        p.error(f"--generated-tokens: must be >= 0 (0 = no budget), got {args.generated_tokens}")
    if args.context_tokens is None and args.task == "long_context":
        from curriculum.tasks.long_context import CONTEXT_TOKENS

        args.context_tokens = CONTEXT_TOKENS
    if args.context_tokens is not None and (args.max_episode_tokens or args.executor_max_episode_tokens):
        p.error("--context-tokens sets every episode budget: drop --max-episode-tokens / --executor-max-episode-tokens")
    if args.context_tokens is None:
        args.max_episode_tokens = args.max_episode_tokens or 384
        args.executor_max_episode_tokens = args.executor_max_episode_tokens or 192
    args.single_max_episode_tokens = args.max_episode_tokens
    if args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.d_max != "auto":
        try:
            args.d_max = int(args.d_max)
        except ValueError:
            p.error(f"--d-max: an int or auto, got {args.d_max!r}")
    return args


# --- the stages --------------------------------------------------------------------------------------


def sft_start(args, model_dir: Path, role: str, out: Path) -> Path:
    """SFT of the start model on the task's ``role`` rows (``sft``: both roles' traces; ``single``)."""
    from rl.config import SFTConfig
    from rl.sft_trainer import SFTTrainer

    name = "sft_multi" if role == "sft" else f"sft_{role}" + ("_guesses" if args.single_guesses else "")
    final = out / name / "final"
    if final.is_dir():
        print(f"[compare-agents] reusing {final}")
        return final
    steps = args.multi_sft_steps if role == "sft" else args.sft_steps
    teacher = {"single_guesses": True} if role == "single" and args.single_guesses else {}
    cfg = SFTConfig(
        overwrite_output_dir=True,  # a harness stage owns its folder: a rerun replaces it
        model=str(model_dir), dataset=f"task:{args.task}", dataset_kwargs={"role": role, **teacher},
        # rows seen once: a problem gives ~4.5 rows in `sft` (its planner row and its executor rows), 1 in `single`
        dataset_num_examples=max(2048, steps * (8 if role == "sft" else 32)), learning_rate=args.sft_lr, lr_scheduler_type="cosine",
        warmup_steps=min(50, steps // 10), per_device_train_batch_size=32, split_by_length=4,
        max_steps=steps, max_length=args.sft_max_length, output_dir=str(final.parent),
        report_to=args.report_to.split(","), logging_steps=max(1, min(50, steps)), save_total_limit=1,
        seed=args.seed, run_name=f"compare-agents-sft-{role}",
    )
    SFTTrainer(cfg.model, args=cfg).train()
    return final


def _grpo_config(args, start: Path, run_dir: Path, name: str, **fields: Any):
    from rl.config import GRPOConfig

    base = dict(
        overwrite_output_dir=True,  # a harness stage owns its folder: a rerun replaces it
        model=str(start), dataset=f"task:{args.task}", dataset_num_examples=4096, learning_rate=args.lr,
        num_generations=args.num_generations, per_device_train_batch_size=args.prompts_per_step * args.num_generations,
        max_completion_length=args.max_completion_length, max_episode_tokens=args.max_episode_tokens,
        temperature=args.temperature, max_steps=args.grpo_steps, warmup_steps=args.warmup_steps,
        lr_scheduler_type="constant_with_warmup" if args.warmup_steps > 0 else "constant", beta=0.0,
        output_dir=str(run_dir), report_to=args.report_to.split(","), logging_steps=max(1, min(5, args.grpo_steps)),
        save_total_limit=1, seed=args.seed, run_name=f"compare-agents-{name}",
    )
    base.update(fields)
    return GRPOConfig(**base)


def task_module(args):
    """The task's module: its ``ENVIRONMENT`` (multi-agent) and ``SINGLE_ENVIRONMENT`` episode fields."""
    import importlib

    return importlib.import_module(TASKS[args.task])


def planner_environment(args) -> dict[str, Any]:
    """The multi-agent arms' episode fields (the task's ``ENVIRONMENT`` with the comparison's limits)."""
    env = task_module(args).ENVIRONMENT
    kw = {**env["environment_kwargs"], "executor_max_episode_tokens": args.executor_max_episode_tokens}
    return {"environment": env["environment"], "environment_kwargs": kw, "max_turns": env["max_turns"]}


def prompt_tokens(tokenizer, messages: list[dict[str, Any]], system: str | None) -> int:
    """Tokens of a prompt as its episode renders it (the system prompt first, the generation prompt last)."""
    msgs = ([{"role": "system", "content": system}] if system else []) + list(messages)
    text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def context_budgets(args, tokenizer, rows: dict[str, list]) -> dict[str, int]:
    """Each role's episode budget under ``--context-tokens``: the context minus the role's longest prompt
    (training and held-out rows), so that no context of any arm holds more than ``--context-tokens``."""
    from rollout.mgrpo.agents import EXECUTOR_SYSTEM_PROMPT, PLANNER_SYSTEM_PROMPT

    longest = {
        "planner": max(prompt_tokens(tokenizer, r["prompt"], PLANNER_SYSTEM_PROMPT) for r in rows["planner"]),
        "single": max(prompt_tokens(tokenizer, r["prompt"], None) for r in rows["single"]),
        "executor": max(prompt_tokens(tokenizer, r["prompt"], EXECUTOR_SYSTEM_PROMPT) for r in rows["executor"]),
    }
    budgets = {role: args.context_tokens - n for role, n in longest.items()}
    bad = {role: n for role, n in budgets.items() if n < 64}
    if bad:
        raise ValueError(f"--context-tokens {args.context_tokens} leaves {bad} tokens for episodes after the prompts")
    return budgets


def apply_context(args, tokenizer) -> dict[str, int] | None:
    """Under ``--context-tokens``: set every role's episode budget (``args``) and return them."""
    from curriculum.tasks import get_task_dataset

    if args.context_tokens is None:
        return None
    rows = {role: [r for split, n in (("train", 4096), ("test", args.eval_problems))
                   for r in get_task_dataset(args.task, n, seed=args.seed + (split == "test"), split=split, role=role)]
            for role in ("planner", "single", "executor")}
    budgets = context_budgets(args, tokenizer, rows)
    args.max_episode_tokens = budgets["planner"]
    args.executor_max_episode_tokens = budgets["executor"]
    args.single_max_episode_tokens = budgets["single"]
    print(f"[compare-agents] context {args.context_tokens} tokens: episode budgets {budgets}")
    return budgets


def arm_configs(args, arm: str, starts: dict[str, Path], run_dir: Path) -> tuple[Any, Any]:
    """(the planner's or only model's config, the executor's config or None) of ``arm``."""
    budget = {"max_generated_tokens": args.generated_tokens}  # the planner's (or only model's) trainer counts every role
    if arm == "single_agent":
        return _grpo_config(args, starts["single"], run_dir, arm, method="grpo", dataset_kwargs={"role": "single"}, **budget,
                            max_episode_tokens=args.single_max_episode_tokens, **task_module(args).SINGLE_ENVIRONMENT), None
    mk = {"mgrpo_d_max": args.d_max, "mgrpo_w_local": args.w_local}
    multi = dict(method="mgrpo", dataset_kwargs={"role": "planner"}, **planner_environment(args), **budget)
    if arm == "mgrpo_shared":
        return _grpo_config(args, starts["sft"], run_dir, arm, method_kwargs=mk, **multi), None
    if arm == "mgrpo_lora":  # rows of role r train adapter r (rl/role_adapters.py); the base stays frozen
        return _grpo_config(args, starts["sft"], run_dir, arm, method_kwargs=mk, use_peft=True, lora_r=args.lora_r,
                            lora_alpha=2 * args.lora_r, role_adapters=["planner", "executor"],
                            learning_rate=args.lora_lr, **multi), None
    store = {"mgrpo_store": "memory", "mgrpo_run": f"compare-agents-{arm}-{args.seed}"}
    executor = _grpo_config(args, starts["sft"], run_dir / "executor", f"{arm}-executor", method="mgrpo",
                            method_kwargs={**mk, **store, "mgrpo_train_roles": "executor"})
    if arm == "frozen_executor":  # no store: the planner drops the executor rows, the executor never trains
        planner = _grpo_config(args, starts["sft"], run_dir, arm, method_kwargs={**mk, "mgrpo_train_roles": "planner"},
                               **multi)
    else:
        planner = _grpo_config(args, starts["sft"], run_dir, arm,
                               method_kwargs={**mk, **store, "mgrpo_train_roles": "planner"}, **multi)
    return planner, executor


def arm_paths(arm: str, out: Path, starts: dict[str, Path]) -> tuple[Path, Path | None]:
    """(the planner's or only model's final checkpoint, the executor's) once ``arm`` has trained."""
    run_dir = out / arm
    if arm == "frozen_executor":
        return run_dir / "final", starts["sft"]
    if arm == "mgrpo_separate":
        return run_dir / "final", run_dir / "executor" / "final"
    if arm == "mgrpo_lora":  # one merged model per role
        return run_dir / "final" / "planner", run_dir / "final" / "executor"
    return run_dir / "final", None


def train_arm(args, arm: str, starts: dict[str, Path], out: Path) -> dict[str, Any]:
    """Train ``arm`` (or reuse it); returns its train info (seconds, steps, settings)."""
    from rl.methods.mgrpo_two_process import run_separate
    from rl.grpo_trainer import GRPOTrainer

    run_dir = out / arm
    info_path = run_dir / "train_info.json"
    planner_final, executor_final = arm_paths(arm, out, starts)
    if info_path.is_file() and planner_final.is_dir() and (executor_final is None or executor_final.is_dir()):
        info = json.loads(info_path.read_text())
        start = str(starts["single" if arm == "single_agent" else "sft"])
        if info["settings"]["start"] != start:  # e.g. the other single-agent teacher (--single-guesses)
            raise ValueError(f"{run_dir} was trained from {info['settings']['start']}, this run starts {arm} from "
                             f"{start}: delete {run_dir} or give another --out")
        print(f"[compare-agents] reusing {run_dir}")
        return info
    pcfg, ecfg = arm_configs(args, arm, starts, run_dir)
    t0 = time.time()
    if ecfg is None:
        planner = GRPOTrainer(pcfg.model, args=pcfg).train()
        steps = {"planner": planner["global_step"]}
    else:
        res = run_separate(pcfg, ecfg, train_executor=arm == "mgrpo_separate", timeout=3600.0)
        planner = res["planner"]
        steps = {"planner": planner["global_step"],
                 "executor": None if res["executor"] is None else res["executor"]["global_step"]}
    info = {"seconds": time.time() - t0, "steps": steps,
            # every role's tokens the arm generated in training (the planner's trainer counts its executor calls)
            "generated_tokens": int(planner["last_metrics"].get("tokens/generated", 0)),
            "budget_spent": bool(planner.get("budget_spent")),
            "settings": {"start": str(pcfg.model), "lr": pcfg.learning_rate, "grpo_steps": args.grpo_steps,
                         "prompts_per_step": args.prompts_per_step, "num_generations": args.num_generations,
                         "temperature": args.temperature, "method": pcfg.method,
                         "max_generated_tokens": args.generated_tokens,
                         "method_kwargs": dict(pcfg.method_kwargs or {})}}
    info_path.write_text(json.dumps(info, indent=1))
    return info


def evaluate_arm(args, arm: str, planner_path: Path, executor_path: Path | None, rows: dict[str, list],
                 cache: Path) -> dict[str, dict[str, Any]]:
    """decoding -> held-out metrics of one arm: the planner's accuracy (its boxed answer), the
    executor calls' valid-format rate and accuracy (``r_local``), the calls per episode. A two-model
    arm's executor serves the planner's calls from its own model (``rollout/mgrpo/agent_server.py``)."""
    from rl.eval.heldout import binomial_se
    from rl.eval.episodes import evaluate_episodes
    from rl.modeling import load_model, load_tokenizer
    from rollout.mgrpo.agents import PLANNER_SYSTEM_PROMPT

    if cache.is_file():
        return json.loads(cache.read_text())
    tok = load_tokenizer(str(planner_path))
    model = load_model(str(planner_path)).eval()
    single = arm in ("single_agent", "sft_single")
    env = task_module(args).SINGLE_ENVIRONMENT if single else planner_environment(args)
    kwargs = dict(env.get("environment_kwargs") or {})
    server = None
    if executor_path is not None:
        from rollout.mgrpo.agent_server import CompletionServer
        from rollout.hf import HFEngine

        server = CompletionServer(HFEngine(load_model(str(executor_path)).eval(), tok)).start()
        kwargs["executor_engine_url"] = server.url
    out: dict[str, dict[str, Any]] = {}
    try:
        for decoding in args.decoding_list:
            res = evaluate_episodes(
                model, tok, rows["single" if single else "planner"], environment=env["environment"],
                environment_kwargs=kwargs, max_turns=int(env["max_turns"]),
                max_episode_tokens=args.single_max_episode_tokens if single else args.max_episode_tokens,
                greedy=decoding == "greedy", temperature=args.temperature, max_new_tokens=args.max_completion_length,
                seed=args.seed, system_prompt=None if single else PLANNER_SYSTEM_PROMPT,
            )
            n = len(res["samples"])
            out[decoding] = {
                "accuracy": res["accuracy"], "accuracy_se": binomial_se(res["accuracy"], n),
                "executor_accuracy": res["executor_accuracy"], "executor_format_ok": res["executor_format_ok"],
                # calls per episode: to the executor (multi-agent), to the calculator (single agent)
                "mean_calls": res["mean_tool_calls"] if single else res["mean_executor_calls"],
                "mean_tokens": res["mean_tokens"], "truncated_frac": res["truncated_frac"], "problems": n,
            }
    finally:
        if server is not None:
            server.stop()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out, indent=1))
    return out


def main(argv=None) -> int:
    import torch

    from curriculum.tasks import get_task_dataset
    from rl.experiments.tiny_model import make_tiny_model
    from rl.modeling import load_tokenizer

    args = parse_args(argv)
    if args.seeds > 1:
        import sys

        return run_seeds(main, list(sys.argv[1:] if argv is None else argv), args)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    model_dir = Path(args.model_dir) if args.model_dir else make_tiny_model(out / "tiny-model", seed=args.seed)
    apply_context(args, load_tokenizer(str(model_dir)))
    arms = args.arm_list
    starts: dict[str, Path] = {}
    if any(a != "single_agent" for a in arms):
        starts["sft"] = Path(args.sft_checkpoint) if args.sft_checkpoint else sft_start(args, model_dir, "sft", out)
    if "single_agent" in arms:
        starts["single"] = (Path(args.single_sft_checkpoint) if args.single_sft_checkpoint
                            else sft_start(args, model_dir, "single", out))
    # the same held-out problems for every arm (the single agent's rows render them for one model)
    rows = {role: list(get_task_dataset(args.task, args.eval_problems, seed=args.seed + 1, split="test", role=role))
            for role in ("planner", "single")}
    results: dict[str, dict] = {}
    infos: dict[str, dict] = {}
    if "sft" in starts:  # the multi-agent start: the SFT model in both roles (frozen_executor's step 0)
        results["sft_start"] = evaluate_arm(args, "sft_start", starts["sft"], None, rows, out / "sft_start_eval.json")
    if "single" in starts:
        cache = out / ("sft_single_guesses_eval.json" if args.single_guesses else "sft_single_eval.json")
        results["sft_single"] = evaluate_arm(args, "sft_single", starts["single"], None, rows, cache)
    for arm in arms:
        infos[arm] = train_arm(args, arm, starts, out)
        planner_path, executor_path = arm_paths(arm, out, starts)
        results[arm] = evaluate_arm(args, arm, planner_path, executor_path, rows, out / arm / "eval.json")
        first = results[arm][args.decoding_list[0]]
        print(f"[compare-agents] {arm}: {args.decoding_list[0]} accuracy {first['accuracy']:.3f}, "
              f"executor accuracy {first['executor_accuracy']}, calls {first['mean_calls']:.2f}")
    summary = [
        {"method": m, "decoding": d, **r, "train_seconds": infos.get(m, {}).get("seconds"),
         "train_tokens": infos.get(m, {}).get("generated_tokens")}
        for m, res in results.items() for d, r in res.items()
    ]
    meta = {"task": args.task, "arms": arms, "eval_problems": args.eval_problems, "grpo_steps": args.grpo_steps,
            "sft_steps": args.sft_steps, "multi_sft_steps": args.multi_sft_steps, "single_guesses": args.single_guesses,
            "sft_checkpoints": {k: str(v) for k, v in starts.items()}, "lr": args.lr, "prompts_per_step": args.prompts_per_step,
            "num_generations": args.num_generations, "temperature": args.temperature, "d_max": args.d_max,
            "w_local": args.w_local, "seed": args.seed, "context_tokens": args.context_tokens,
            "episode_budgets": {"planner": args.max_episode_tokens, "executor": args.executor_max_episode_tokens,
                                "single": args.single_max_episode_tokens},
            "train": infos, "total_seconds": time.time() - t_all}
    text = write_report(out, summary, meta)
    print("\n" + text + f"\n\nM-GRPO above both baselines: {json.dumps(beats_baselines(summary))}")
    print(f"\n[compare-agents] wrote {out / 'summary.json'}, {out / 'summary.md'}, {out / 'plot.png'}")
    return 0
