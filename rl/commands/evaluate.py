"""Evaluate checkpoints on math benchmarks: ``parsimony eval``.

    parsimony eval --models outputs/sft/final outputs/grpo/final --benchmarks aime24 math500 \\
        --n 4 --temperature 0.6 --top-p 0.95 --max-new-tokens 8192 --output-dir outputs/eval

Benchmarks: aime24 aime25 amc23 hmmt25 math500 olympiadbench gpqa (or ``all``) from
``--data-dir``, ``$PARSIMONY_BENCHMARK_DIR`` or the cache ``~/.cache/parsimony/benchmarks`` (filled from
the hub on first use where a hub copy is known); ``task:overthink`` (the embedded synthetic task); a .parquet/.jsonl file
with prompt and answer columns; or ``--hub-dataset ID`` with a split and a column mapping.
Writes results.json, samples.jsonl, results.md (also printed) and, with several models,
accuracy_vs_tokens.png. An interrupted run resumes from samples.jsonl. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse

from rl.cli_flags import CommaList, FlagParser


def build_parser() -> argparse.ArgumentParser:
    from rl.eval.benchmarks import BENCHMARKS

    p = FlagParser(
        prog="parsimony eval",
        description=__doc__.split("\n\n")[0],
        epilog="See docs/evaluation.md for metric definitions, resume and determinism.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("models")
    g.add_argument("--models", nargs="+", required=True, metavar="MODEL",
                   help="checkpoint directories or hub ids; NAME=PATH names one in the results")
    g.add_argument("--adapter", nargs="+", default=None, metavar="DIR",
                   help="peft LoRA adapter directory: one for every model, or one per model ('none' skips one)")
    g.add_argument("--engine", default="hf", choices=["hf", "vllm"], help="generation engine")
    g.add_argument("--device", default="auto", help="hf engine: auto | cpu | cuda | cuda:N")
    g.add_argument("--dtype", default="auto", help="hf engine: auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16")
    g.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0 = torch default)")

    g = p.add_argument_group("benchmarks")
    g.add_argument("--benchmarks", nargs="+", default=[], metavar="NAME",
                   help=f"{', '.join(BENCHMARKS)}, all, task:<name>, or a .parquet/.jsonl/.json file")
    g.add_argument("--data-dir", default=None,
                   help="directory with <name>/test.parquet (default: $PARSIMONY_BENCHMARK_DIR, else the cache "
                        "~/.cache/parsimony/benchmarks or ../shared/data/benchmarks; math500, aime24, aime25 and "
                        "hmmt25 are downloaded into the cache when missing; docs/evaluation.md)")
    g.add_argument("--limit", type=int, default=None, help="evaluate only the first K problems of each benchmark")
    g.add_argument("--where", nargs="+", default=None, metavar="COLUMN=VALUE",
                   help="keep only the problems whose column reads VALUE (before --limit), e.g. --where level=1 for "
                        "MATH-500's level-1 problems; the results name the subset (math500[level=1])")
    g.add_argument("--task-examples", type=int, default=200, help="test problems built for a task:<name> benchmark")
    g.add_argument("--hub-dataset", default=None, metavar="ID", help="also evaluate a hub dataset (datasets.load_dataset)")
    g.add_argument("--hub-config", default=None, help="the hub dataset's configuration name")
    g.add_argument("--hub-name", default=None,
                   help="name of the hub benchmark in the results (default: the id's last part); a registered name "
                        "(e.g. gpqa) also picks its grading mode")
    g.add_argument("--split", default="test", help="split of --hub-dataset")
    g.add_argument("--prompt-column", default="prompt", help="column with the prompt (chat messages or text)")
    g.add_argument("--answer-column", default=None,
                   help="column with the ground truth (default: reward_model.ground_truth, ground_truth, answer)")
    g.add_argument("--prompt-template", default=None,
                   help="wrap text prompts of --hub-dataset / files, e.g. '{prompt} Put your final answer within \\boxed{}.'")
    g.add_argument("--grading", default=None, choices=["math", "choice"],
                   help="grading mode for files / hub datasets (default: math, or the registered benchmark's)")

    g = p.add_argument_group("generation")
    g.add_argument("--n", type=int, default=1, help="samples per problem")
    g.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (0 = greedy)")
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--top-k", type=int, default=0, help="0 = off")
    g.add_argument("--max-new-tokens", type=int, default=4096)
    g.add_argument("--batch-size", type=int, default=64, help="sequences (problems x n) per generate call")
    g.add_argument("--system-prompt", default=None)
    g.add_argument("--no-chat-template", action="store_true", help="use the raw prompt text, no chat template")
    g.add_argument("--seed", type=int, default=0)

    g = p.add_argument_group("output")
    g.add_argument("--output-dir", default="outputs/eval")
    g.add_argument("--report-to", action=CommaList, default="console", help="console[,wandb] (W&B offline when no API key)")
    g.add_argument("--run-name", default=None, help="W&B run name")
    g.add_argument("--overwrite", action="store_true", help="discard samples.jsonl of an earlier run instead of resuming")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-plot", action="store_true", help="no accuracy-vs-tokens plot")
    return p


def load_requested_benchmarks(args: argparse.Namespace) -> list:
    from rl.eval.benchmarks import load_benchmarks, load_table_benchmark, parse_where

    where = parse_where(args.where)
    benches = load_benchmarks(
        args.benchmarks, data_dir=args.data_dir, limit=args.limit, task_num_examples=args.task_examples,
        seed=args.seed + 1, prompt_column=args.prompt_column, answer_column=args.answer_column,
        prompt_template=args.prompt_template, mode=args.grading, where=where,
    )
    if args.hub_dataset:
        benches.append(load_table_benchmark(
            args.hub_dataset, name=args.hub_name, split=args.split, config=args.hub_config,
            prompt_column=args.prompt_column, answer_column=args.answer_column,
            prompt_template=args.prompt_template, mode=args.grading, limit=args.limit, where=where,
        ))
    return benches


def main(argv=None, generator_factory=None) -> int:
    from rl.eval.generation import EvalError, EvalSettings
    from rl.eval.run import RunOptions, parse_model_specs, run_eval

    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise EvalError(f"--limit must be >= 1, got {args.limit}")
    if not args.benchmarks and not args.hub_dataset:
        raise EvalError("give --benchmarks NAME ... and/or --hub-dataset ID")
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    report_to = tuple(s.strip() for s in args.report_to.split(",") if s.strip())
    bad = [r for r in report_to if r not in ("console", "wandb", "none")]
    if bad:
        raise EvalError(f"--report-to: unknown target(s) {bad}; choose console and/or wandb")
    settings = EvalSettings(
        n=args.n, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
        system_prompt=args.system_prompt, chat_template=not args.no_chat_template,
    )
    models = parse_model_specs(args.models, args.adapter)
    benchmarks = load_requested_benchmarks(args)
    options = RunOptions(
        output_dir=args.output_dir, engine=args.engine, device=args.device, dtype=args.dtype, report_to=report_to,
        overwrite=args.overwrite, progress=not args.no_progress, run_name=args.run_name, plot=not args.no_plot,
    )
    run_eval(models, benchmarks, settings, options, generator_factory=generator_factory)
    return 0
