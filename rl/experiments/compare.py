"""Reasoning-efficiency comparison on the embedded overthinking task:

    SFT warm start (heavy redundancy)  ->  GRPO with the same seed, steps and prompts per step for
    accuracy only | sequence-level length penalty | ThinkPrune cap | DECS | DECS without kappa
    ->  held-out evaluation, greedy and sampled  ->  summary.json, summary.md, plot.png

    parsimony compare --task overthink [--out outputs/compare] [--grpo-steps 60] [--methods ...]

Stages are cached: a method whose ``<out>/<method>/final`` exists is not retrained, and its
evaluation is reused from ``<out>/<method>/eval.json``. Delete a directory to redo it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rl.cli_flags import CommaList, FlagParser
from rl.eval.report import fmt_num
from rl.experiments.compare_starts import DATASET_NUM_EXAMPLES, NOTHINK_START, stage_plan

# the methods and their settings, importable from here too
from rl.experiments.compare_methods import (
    EFFICIENCY_METHODS,
    METHOD_GROUPS,
    METHODS,
    OPTIONAL_METHODS,
    decs_defaults,
    decs_options,
    expand_methods,
    method_settings,
    parse_variants,
)

__all__ = ["EFFICIENCY_METHODS", "METHOD_GROUPS", "METHODS", "OPTIONAL_METHODS", "approx_rounds", "decs_defaults",
           "decs_options", "evaluate", "expand_methods", "main", "method_settings", "method_stage", "parse_args",
           "parse_variants", "plot", "plot_tool_calls", "run_stages", "train_method", "train_sft"]


def parse_args(argv=None) -> argparse.Namespace:
    DECS_DEFAULTS = decs_defaults()
    p = FlagParser(prog="parsimony compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="overthink",
                   help="embedded task: overthink (its heavy-redundancy variant is used), explore (necessary tries of "
                        "variable length, then redundant re-checks), explore_guess (explore whose teacher guesses x "
                        "at once on 15%% of traces: the shortcut a sequence-level length penalty can pay for), calc_tool "
                        "(a calculator the teacher calls on ~85%% of problems, needed on the two-digit quarter; run it "
                        "with --methods grpo,coupled_small,coupled_large,hdpo)")
    p.add_argument("--redundancy", default="heavy", choices=["heavy", "standard"])
    p.add_argument("--out", default="outputs/compare")
    p.add_argument("--model-dir", default=None, help="start model (default: build the tiny model)")
    p.add_argument("--sft-checkpoint", default=None, help="reuse an SFT checkpoint instead of training one")
    p.add_argument("--sft-steps", type=int, default=1000,
                   help="1000 steps: 97%% greedy / 84%% sampled accuracy on overthink_heavy (the earlier 800-step "
                        "start measured 71%% / 45%%)")
    p.add_argument("--grpo-steps", type=int, default=60,
                   help="DECS and the length penalty reach the shortest traces in ~50 steps; later steps cost accuracy")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup-steps", type=int, default=15,
                   help="linear lr warmup, then constant (Adam's first updates are sign-like; without warmup, "
                        "lr 2e-4 lost accuracy from the 2nd step)")
    p.add_argument("--kl-beta", type=float, default=0.0, help="k3 KL penalty to the SFT start (0 = none)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="rollout temperature, also the temperature of the 'sampled' evaluation (the paper: 0.6)")
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-completion-length", type=int, default=None,
                   help="default 256 (heavy-redundancy traces reach ~200 tokens; a shorter cap truncates the SFT "
                        "start); a task can set its own (calc_tool: 160; its traces are ~90 tokens)")
    p.add_argument("--methods", action=CommaList, default=",".join(METHODS),
                   help="comma-separated methods or presets; 'efficiency' = " + ",".join(EFFICIENCY_METHODS))
    p.add_argument("--variant", action="append", default=[], metavar="NAME=METHOD:JSON",
                   help="an ablation run under its own name, e.g. --variant 'hdpo_w05=hdpo:{\"hdpo_w_tool\": 0.5}' "
                        "--methods grpo,hdpo,hdpo_w05 (repeatable); JSON keys that are GRPOConfig fields set the "
                        "trainer (e.g. {\"async_rollouts\": true}), the others are method_kwargs")
    p.add_argument("--seeds", type=int, default=1,
                   help="N > 1: the whole comparison for seeds seed..seed+N-1 (DIR/seed<k>/), then mean ± std per cell")
    p.add_argument("--decs-beta", type=float, default=DECS_DEFAULTS["decs_beta"], help="DECS length-reward weight b")
    p.add_argument("--decs-kappa-init", type=float, default=DECS_DEFAULTS["decs_kappa_init"],
                   help="initial share of easy (all-correct) prompts admitted by the kappa curriculum")
    p.add_argument("--decs-kappa-lr", type=float, default=DECS_DEFAULTS["decs_kappa_lr"], help="kappa step size")
    p.add_argument("--decs-sampler", default=DECS_DEFAULTS["decs_sampler"], choices=["decs_kappa", "plain"],
                   help="batch assembler of the 'decs' method (plain: every easy group kept, no curriculum)")
    p.add_argument("--eval-problems", type=int, default=500,
                   help="held-out problems (500: ~1 point standard error on greedy accuracy; a few seconds each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-to", action=CommaList, default="jsonl")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is fastest for the tiny model and safe on a shared machine)")
    p.add_argument("--jobs", type=int, default=1,
                   help="train and evaluate this many methods at once, each in its own process with --threads "
                        "threads (2 on 2 cores: ~half the wall time); the results equal a --jobs 1 run's. The SFT "
                        "stage before them runs alone on --threads x --jobs threads")
    from rl.eval.heldout import add_grpo_speed_args

    add_grpo_speed_args(p)
    args = p.parse_args(argv)
    for name in ("jobs", "update_split", "seeds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def train_sft(args, model_dir: Path, task: str, out: Path) -> Path:
    from rl.eval.heldout import sft_warm_start

    final = out / "sft" / "final"
    if final.is_dir():
        print(f"[compare] reusing {final}")
        return final
    return sft_warm_start(model_dir, task, args.sft_steps, out / "sft", report_to=args.report_to.split(","),
                          seed=args.seed, run_name="compare-sft", logging_steps=50)


def approx_rounds(rows: list[dict], num_generations: int) -> float:
    """Generation rounds of G rollouts per prompt over a run, from its training log rows: each row
    (the mean of the steps since the previous one) weighs as many steps as it covers, and a round of
    GFPO's larger sampled group counts its size over G."""
    total, prev = 0.0, 0
    for r in sorted((r for r in rows if "loss" in r and "step" in r), key=lambda r: r["step"]):
        span = r["step"] - prev
        prev = r["step"]
        total += span * r.get("sampling/generation_rounds", 1) * r.get("sampling/rollouts_per_prompt", num_generations)
    return total / num_generations


def train_method(args, name: str, start: Path, task: str, out: Path, extra: dict | None = None) -> tuple[Path, dict]:
    """Train one method's stage from ``start`` (cached); ``extra``: ``method_kwargs`` set on top of its settings (the
    ``R_ref`` file of :mod:`rl.experiments.compare_starts`)."""
    from curriculum.tasks import TASK_ROLLOUTS
    from rl.config import GRPOConfig
    from rl.eval.heldout import grpo_speed_fields
    from rl.grpo_trainer import GRPOTrainer

    run_dir = out / name
    final = run_dir / "final"
    info_path = run_dir / "train_info.json"
    if final.is_dir() and info_path.is_file():
        print(f"[compare] reusing {final}")
        return final, {**json.loads(info_path.read_text()), "reused": True}
    settings = method_settings(name, args.grpo_steps, args.max_completion_length, decs_options(args), parse_variants(args.variant))
    if extra:
        settings = {**settings, "method_kwargs": {**settings.get("method_kwargs", {}), **extra}}
    cfg = GRPOConfig(
        overwrite_output_dir=True,  # a harness stage owns its folder: a rerun replaces it
        model=str(start), dataset=f"task:{task}", dataset_num_examples=DATASET_NUM_EXAMPLES, learning_rate=args.lr,
        num_generations=args.num_generations,
        per_device_train_batch_size=args.prompts_per_step * args.num_generations,
        max_completion_length=args.max_completion_length, temperature=args.temperature, max_steps=args.grpo_steps,
        warmup_steps=args.warmup_steps, lr_scheduler_type="constant_with_warmup" if args.warmup_steps > 0 else "constant",
        beta=args.kl_beta, **grpo_speed_fields(args),
        output_dir=str(run_dir), report_to=args.report_to.split(","), logging_steps=5, save_total_limit=1,
        seed=args.seed, run_name=f"compare-{name}",
        **TASK_ROLLOUTS.get(task, {}),  # multi-turn tasks (calc_tool): the environment, its tools, max_turns
        **settings,
    )
    t0 = time.time()
    trainer = GRPOTrainer(cfg.model, args=cfg)
    try:
        summary = trainer.train()
    finally:
        trainer.close()  # async_rollouts (a variant): its rollout thread and process
    if summary.get("interrupted"):  # a stopped stage is not a result: no train_info, no evaluation
        raise RuntimeError(f"stage {name!r} was interrupted at step {summary['global_step']} (its checkpoint is in "
                           f"{run_dir}; a rerun trains it again)")
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rounds = approx_rounds(rows, args.num_generations)
    info = {
        "seconds": time.time() - t0,
        "steps": summary["global_step"],
        # rollouts generated (dynamic / kappa samplers may draw several rounds per step)
        "approx_rollouts": round(rounds * args.prompts_per_step * args.num_generations),
        # what this stage was trained with (a cached stage is reused whatever the new flags say)
        "settings": {"lr": args.lr, "grpo_steps": args.grpo_steps, "warmup_steps": args.warmup_steps,
                     "kl_beta": args.kl_beta, "temperature": args.temperature, "start": str(start),
                     "hf_decode": args.hf_decode, "update_split": args.update_split,
                     **settings},
    }
    info_path.write_text(json.dumps(info))
    return final, info


def evaluate(path: Path, test_set, args, cache: Path, task: str) -> dict:
    from curriculum.tasks import TASK_ROLLOUTS, task_row_metrics, task_text_metrics
    from rl.eval.heldout import evaluate_checkpoint

    if cache.is_file():
        return json.loads(cache.read_text())
    res = evaluate_checkpoint(path, test_set, max_new_tokens=args.max_completion_length, temperature=args.temperature,
                              seed=args.seed, text_metrics=task_text_metrics(task), rollout=TASK_ROLLOUTS.get(task),
                              row_metrics=task_row_metrics(task))
    cache.write_text(json.dumps(res, indent=1))
    return res


def method_stage(args, name: str, start: Path, test_set, task: str, out: Path, extra: dict | None = None) -> tuple[dict, dict]:
    """Train one method from ``start`` and evaluate it on ``test_set``: ``(train info, evaluation)``.
    Both are cached in ``out/<name>``, so a stage that finished survives a crash of another."""
    final, info = train_method(args, name, start, task, out, extra)
    return info, evaluate(final, test_set, args, out / name / "eval.json", task)


def _method_stage_in_worker(args, name: str, start: Path, test_set, task: str, out: Path,
                            extra: dict | None = None) -> tuple[dict, dict]:
    """:func:`method_stage` in a ``--jobs`` worker process: its own torch threads, its output in
    ``out/<name>/stage.log`` (two trainers' progress lines would interleave on one terminal)."""
    import contextlib

    import torch

    die_with_parent()
    torch.set_num_threads(max(1, args.threads))
    (out / name).mkdir(parents=True, exist_ok=True)
    with open(out / name / "stage.log", "w", buffering=1) as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        return method_stage(args, name, start, test_set, task, out, extra)


def die_with_parent() -> bool:
    """Ask Linux to send this process SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``): a ``--jobs``
    worker then saves a checkpoint and stops when the harness is killed, instead of training on as an
    orphan that writes into the stage's folder. Returns whether it was set (False off Linux)."""
    import ctypes
    import signal

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        ok = libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except OSError:
        return False
    if ok and os.getppid() == 1:  # the parent died before the call: act now
        os.kill(os.getpid(), signal.SIGTERM)
    return ok


def run_stages(args, methods: list[str], start: Path | dict[str, Path], test_set, task: str, out: Path,
               extra: dict[str, dict] | None = None) -> tuple[dict, dict]:
    """Every method's stage: one after another, or with ``--jobs N`` in N spawned worker processes.
    Each stage seeds its own trainer and evaluation, so a worker's results equal an in-process run's.
    A failed stage is reported by name once the others have finished (their stages stay cached).
    ``start``: one for all, or one per method; ``extra``: per method, ``method_kwargs`` set on top of its settings."""
    starts = start if isinstance(start, dict) else {m: start for m in methods}
    extra = extra or {}
    results: dict[str, dict] = {}
    infos: dict[str, dict] = {}
    jobs = min(args.jobs, len(methods))
    if jobs <= 1:
        for m in methods:
            infos[m], results[m] = method_stage(args, m, starts[m], test_set, task, out, extra.get(m))
            _report_stage(m, results[m], infos[m])
        return infos, results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    failed: dict[str, BaseException] = {}
    print(f"[compare] {len(methods)} stages in {jobs} processes x {args.threads} thread(s); logs: {out}/<method>/stage.log")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_method_stage_in_worker, args, m, starts[m], test_set, task, out, extra.get(m)): m
                   for m in methods}
        for fut in as_completed(futures):
            m = futures[fut]
            try:
                infos[m], results[m] = fut.result()
            except Exception as e:  # let the other stages finish and cache their results
                failed[m] = e
                print(f"[compare] {m}: FAILED ({type(e).__name__}: {e}); see {out / m / 'stage.log'}", flush=True)
                continue
            _report_stage(m, results[m], infos[m])
    if failed:
        names = ", ".join(failed)
        raise RuntimeError(f"{len(failed)} stage(s) failed: {names} (logs in {out}/<method>/stage.log; "
                           "the finished stages are cached and a rerun trains only the failed ones)") from next(iter(failed.values()))
    return {m: infos[m] for m in methods}, {m: results[m] for m in methods}


def _report_stage(m: str, res: dict, info: dict) -> None:
    took = f" ({info['seconds']:.0f} s)" if "seconds" in info and not info.get("reused") else ""
    print(f"[compare] {m}{took}: greedy acc {res['greedy']['accuracy']:.3f}, tokens {res['greedy']['mean_tokens']:.1f}",
          flush=True)


def plot(summary: list[dict], path: Path) -> None:
    """Accuracy vs mean tokens per decoding, with the Pareto frontier drawn (rl/experiments/leaderboard.py)."""
    from rl.experiments.leaderboard import plot_frontier

    plot_frontier(summary, path)


def plot_tool_calls(summary: list[dict], path: Path) -> None:
    """Tool tasks: accuracy against mean tool calls per episode (left), and the calls split into those on
    problems that need the tool and those that do not (right), per method and decoding."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.4))
    for decoding, marker in (("greedy", "o"), ("sampled", "s")):
        for r in (r for r in summary if r["decoding"] == decoding):
            ax.scatter(r["mean_tool_calls"], 100 * r["accuracy"], marker=marker, s=40)
            ax.annotate(f"{r['method']} ({decoding[0]})", (r["mean_tool_calls"], 100 * r["accuracy"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("mean tool calls per episode")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("up and to the left is better (o greedy, s sampled)")
    ax.grid(alpha=0.3)
    rows = [r for r in summary if r.get("tool_calls_needed") is not None]
    xs = range(len(rows))
    bx.bar([x - 0.2 for x in xs], [r["tool_calls_needed"] for r in rows], width=0.4, label="problems that need the tool")
    bx.bar([x + 0.2 for x in xs], [r["tool_calls_unneeded"] or 0.0 for r in rows], width=0.4, label="problems that do not")
    bx.set_xticks(list(xs), [f"{r['method']}\n{r['decoding']}" for r in rows], fontsize=7, rotation=45, ha="right")
    bx.set_ylabel("mean tool calls")
    bx.legend(fontsize=8)
    bx.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    from curriculum.tasks import get_task_dataset
    from rl.experiments.tiny_model import make_tiny_model

    import torch

    args = parse_args(argv)
    if args.seeds > 1:
        from rl.experiments.leaderboard import run_seeds

        return run_seeds(main, list(sys.argv[1:] if argv is None else argv), args)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from curriculum.tasks import TASKS

    heavy = f"{args.task}_heavy"
    task = heavy if args.redundancy == "heavy" and heavy in TASKS else args.task
    if args.max_completion_length is None:
        from curriculum.tasks import TASK_COMPLETION_LENGTH

        args.max_completion_length = TASK_COMPLETION_LENGTH.get(task, 256)
    methods = expand_methods(args.methods)
    variants = parse_variants(args.variant)
    settings = {}
    for m in methods:  # fail on a typo before any training: a variant's settings are checked by its config
        settings[m] = method_settings(m, 1, 1, decs_options(args), variants)
        if m in variants:
            from rl.config import GRPOConfig

            GRPOConfig(model=str(out), dataset=f"task:{task}", **settings[m])
    t_all = time.time()
    model_dir = Path(args.model_dir) if args.model_dir else make_tiny_model(out / "tiny-model", seed=args.seed)
    if args.jobs > 1 and args.threads > 0:  # the SFT stage runs alone: it takes the stages' cores
        import os

        torch.set_num_threads(min(os.cpu_count() or 1, args.threads * args.jobs))
    start = Path(args.sft_checkpoint) if args.sft_checkpoint else train_sft(args, model_dir, task, out)
    test_set = get_task_dataset(task, args.eval_problems, seed=args.seed + 1, split="test")

    results: dict[str, dict] = {"sft": evaluate(start, test_set, args, out / "sft_eval.json", task)}
    # AdaptThink's both-modes start and R_ref (rl/experiments/compare_starts.py); every other method: the shared start
    starts, extra, start_results = stage_plan(args, methods, settings, start, model_dir, task, out,
                                              lambda path: evaluate(path, test_set, args, out / f"{path.parent.name}_eval.json", task))
    results.update(start_results)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    infos, stage_results = run_stages(args, methods, starts, test_set, task, out, extra)
    results.update(stage_results)

    summary = []
    for m, res in results.items():
        for decoding in ("greedy", "sampled"):
            r = res[decoding]
            summary.append({
                "method": f"{m}_start" if m in ("sft", NOTHINK_START) else m, "decoding": decoding, "accuracy": r["accuracy"],
                "mean_tokens": r["mean_tokens"], "redundant_fraction": r["redundant_fraction"],
                "redundant_chunks": r["redundant_chunks"],
                "mean_tokens_correct": r.get("mean_tokens_correct"), "accuracy_se": r.get("accuracy_se"),
                # explore: candidates tried before the answer (a guess tries none); overthink: the slip opening
                "mean_tries": r.get("tries"), "guess_fraction": r.get("guess"), "slip_fraction": r.get("slip"),
                "nothink_fraction": r.get("nothink"),  # AdaptThink's mode: answers that skip thinking
                "nothink_accuracy": r.get("nothink_accuracy"), "think_accuracy": r.get("no_nothink_accuracy"),
                # tool tasks: round-trips per episode, on problems that need the tool and on those that do not
                "mean_tool_calls": r.get("mean_tool_calls"), "tool_calls_needed": r.get("tool_calls_needed"),
                "tool_calls_unneeded": r.get("tool_calls_unneeded"), "zero_tool_calls_frac": r.get("zero_tool_calls_frac"),
                "easy_direct_accuracy": r.get("easy_direct_accuracy"), "easy_call_accuracy": r.get("easy_call_accuracy"),
                "train_seconds": infos.get(m, {}).get("seconds"),
                "approx_rollouts": infos.get(m, {}).get("approx_rollouts"),
            })
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    behaviours = [k for k in ("mean_tries", "guess_fraction", "slip_fraction", "mean_tool_calls", "tool_calls_needed",
                              "tool_calls_unneeded") if summary[0].get(k) is not None]
    if any(r.get("nothink_fraction") for r in summary):  # AdaptThink's mode, where some answer skips thinking
        behaviours += ["nothink_fraction", "nothink_accuracy", "think_accuracy"]
    lines = ["| method | decoding | accuracy | mean tokens | Δ tokens vs SFT | redundant fraction | redundant chunks |"
             + "".join(f" {k} |" for k in behaviours),
             "|---|---|---|---|---|---|---|" + "---|" * len(behaviours)]
    base = {r["decoding"]: r for r in summary if r["method"] == "sft_start"}
    for r in summary:
        b = base[r["decoding"]]
        delta = (r["mean_tokens"] - b["mean_tokens"]) / b["mean_tokens"] if b["mean_tokens"] else 0.0
        se = f" ± {100 * r['accuracy_se']:.1f}" if r.get("accuracy_se") is not None else ""
        lines.append(f"| {r['method']} | {r['decoding']} | {100 * r['accuracy']:.1f}%{se} | {r['mean_tokens']:.1f} | "
                     f"{100 * delta:+.0f}% | {fmt_num(r['redundant_fraction'], '{:.3f}')} | {fmt_num(r['redundant_chunks'], '{:.2f}')} |"
                     + "".join(f" {r[k]:.3f} |" if r.get(k) is not None else " - |" for k in behaviours))
    table = "\n".join(lines)
    meta = {"task": task, "eval_problems": args.eval_problems, "grpo_steps": args.grpo_steps, "lr": args.lr,
            "warmup_steps": args.warmup_steps, "kl_beta": args.kl_beta, "temperature": args.temperature,
            "prompts_per_step": args.prompts_per_step, "num_generations": args.num_generations,
            "seed": args.seed, "sft_steps": args.sft_steps, "decs": decs_options(args), "train": infos, "total_seconds": time.time() - t_all,
            "jobs": args.jobs, "threads": args.threads, "hf_decode": args.hf_decode, "update_split": args.update_split,
            # stages trained by an earlier invocation (a run split over processes): total_seconds is not the run's
            "reused_stages": [m for m, info in infos.items() if info.get("reused")]}
    (out / "summary.md").write_text(table + "\n\n```json\n" + json.dumps(meta, indent=1) + "\n```\n")
    from rl.experiments.leaderboard import write_run_outputs

    write_run_outputs(summary, out, meta)  # leaderboard.md (frontier marked), plot.png with the frontier, summary_meta.json
    if any(r.get("mean_tool_calls") is not None for r in summary):
        plot_tool_calls(summary, out / "tool_calls.png")
    print("\n" + table)
    print(f"\n[compare] wrote {out / 'summary.json'}, {out / 'summary.md'}, {out / 'plot.png'}")
    return 0
