"""Score each problem's reasoning intensity (1-5) and split the set for DeReason: ``parsimony score-difficulty``.

    parsimony score-difficulty --dataset task:overthink --scorer column --out outputs/difficulty
    parsimony score-difficulty --dataset train.parquet --scorer judge --judge_url http://127.0.0.1:8000 \\
        --judge_model Qwen/Qwen3-8B --concurrency 16 --out outputs/difficulty --threshold 4
    parsimony score-difficulty --dataset task:overthink --scorer pass_rate --model outputs/tiny-sft/final \\
        --k 8 --out outputs/difficulty --rl_fraction 0.3

Writes ``OUT/scored.parquet`` (the rows plus ``difficulty``, ``difficulty_raw``,
``difficulty_error``, ``difficulty_scorer``), ``OUT/cache.jsonl`` (append-only; a re-run scores only
new or failed rows) and ``OUT/report.json``; with ``--threshold`` or ``--rl_fraction`` also
``OUT/sft.parquet`` and ``OUT/rl.parquet`` (failed rows go to neither). Failed rows are listed, and
the exit code is 3 when any row failed (``--allow_failures``: 0). See docs/dereason.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rl.cli_flags import FlagParser


def build_parser() -> argparse.ArgumentParser:
    from curriculum.dereason.difficulty import SCORERS

    p = FlagParser(prog="parsimony score-difficulty", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=True, help="task:<name>, a .parquet/.jsonl file, a save_to_disk dir or a hub id")
    g.add_argument("--dataset_split", default="train")
    g.add_argument("--dataset_num_examples", type=int, default=4096, help="rows of a task: dataset")
    g.add_argument("--dataset_kwargs", default="{}", help="JSON: task generator options")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="output directory")
    g.add_argument("--cache", default=None, help="cache file (default OUT/cache.jsonl)")
    g.add_argument("--scorer", required=True, choices=SCORERS)
    g = p.add_argument_group("judge")
    g.add_argument("--judge_url", default="http://127.0.0.1:8000", help="OpenAI-compatible server (or its /v1)")
    g.add_argument("--judge_model", default="judge", help="the model name sent in each request")
    g.add_argument("--rubric_file", default=None, help="a text file replacing the built-in rubric")
    g.add_argument("--api_key_env", default="OPENAI_API_KEY", help="environment variable holding a bearer token, if set")
    g.add_argument("--concurrency", type=int, default=8)
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per request attempt")
    g.add_argument("--retries", type=int, default=2, help="HTTP retries (connection errors, 5xx, 429)")
    g.add_argument("--parse_retries", type=int, default=1, help="re-ask when the answer holds no usable score")
    g.add_argument("--max_tokens", type=int, default=256)
    g.add_argument("--temperature", type=float, default=None, help="judge: 0; pass_rate: 1.0")
    g.add_argument("--breaker_failures", type=int, default=5)
    g.add_argument("--breaker_cooldown", type=float, default=30.0)
    g = p.add_argument_group("pass_rate")
    g.add_argument("--model", default=None, help="the current model (a directory or hub id)")
    g.add_argument("--k", type=int, default=8, help="samples per problem")
    g.add_argument("--max_new_tokens", type=int, default=256)
    g.add_argument("--batch_size", type=int, default=64)
    g.add_argument("--system_prompt", default=None)
    g.add_argument("--threads", type=int, default=0)
    g = p.add_argument_group("column")
    g.add_argument("--column", default="extra_info.difficulty", help="dotted field path")
    g.add_argument("--low", type=float, default=None, help="map [low, high] linearly onto 1-5")
    g.add_argument("--high", type=float, default=None)
    g = p.add_argument_group("split")
    s = g.add_mutually_exclusive_group()
    s.add_argument("--threshold", type=int, default=None, help="difficulty >= threshold -> RL set")
    s.add_argument("--rl_fraction", type=float, default=None, help="the hardest fraction -> RL set")
    g.add_argument("--allow_failures", action="store_true", help="exit 0 even when rows failed")
    return p


def build_scorer(args: argparse.Namespace):
    from curriculum.dereason.difficulty import ColumnScorer, JudgeScorer

    if args.scorer == "judge":
        rubric = Path(args.rubric_file).read_text() if args.rubric_file else None
        kw = {"rubric": rubric} if rubric else {}
        return JudgeScorer(
            args.judge_url, args.judge_model, temperature=0.0 if args.temperature is None else args.temperature,
            max_tokens=args.max_tokens, concurrency=args.concurrency, timeout=args.timeout, retries=args.retries,
            parse_retries=args.parse_retries, breaker_failures=args.breaker_failures,
            breaker_cooldown=args.breaker_cooldown, api_key=os.environ.get(args.api_key_env) or None, **kw,
        )
    if args.scorer == "pass_rate":
        import torch

        from rl.errors import ConfigError
        from rl.eval.pass_rate import PassRateScorer
        from rl.modeling import load_model, load_tokenizer

        if not args.model:
            raise ConfigError("--model: the pass_rate scorer needs the current model")
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        model = load_model(args.model).eval()
        return PassRateScorer(
            model, load_tokenizer(args.model), k=args.k, temperature=1.0 if args.temperature is None else args.temperature,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
            system_prompt=args.system_prompt, model_name=args.model,
        )
    return ColumnScorer(args.column, args.low, args.high)


def main(argv=None) -> int:
    from curriculum.data import load_dataset_spec
    from curriculum.dereason.difficulty import score_dataset, split_by_difficulty

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset_spec(args.dataset, args.dataset_split, args.dataset_num_examples, args.seed,
                                json.loads(args.dataset_kwargs))
    scorer = build_scorer(args)

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 20) == 0:
            print(f"[score-difficulty] {done}/{total} scored", flush=True)

    scored, report = score_dataset(dataset, scorer, args.cache or out / "cache.jsonl", progress)
    scored.to_parquet(str(out / "scored.parquet"))
    summary = {"dataset": args.dataset, **report.to_dict()}
    if args.threshold is not None or args.rl_fraction is not None:
        sft, rl, split = split_by_difficulty(scored["difficulty"], args.threshold, args.rl_fraction, args.seed)
        scored.select(sft).to_parquet(str(out / "sft.parquet"))
        scored.select(rl).to_parquet(str(out / "rl.parquet"))
        summary["split"] = split
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    counts = ", ".join(f"{k}: {v}" for k, v in summary["counts"].items()) or "none"
    print(f"[score-difficulty] {report.rows} rows ({report.cached} cached, {report.scored} sent, {report.failed} failed); "
          f"difficulty counts {counts}")
    if "split" in summary:
        print(f"[score-difficulty] split {summary['split']['rule']}: SFT {summary['split']['sft']}, RL {summary['split']['rl']}")
    for f in report.failures:
        print(f"[score-difficulty] row {f['row']} failed: {f['error']}", file=sys.stderr)
    if report.failed:
        print(f"[score-difficulty] {report.failed} row(s) failed (difficulty is null; re-run to retry them)", file=sys.stderr)
        return 0 if args.allow_failures else 3
    return 0
