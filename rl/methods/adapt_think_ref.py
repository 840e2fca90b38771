"""AdaptThink's ``R_ref(x)``: the start model's accuracy on each training prompt, measured before training.

    parsimony adapt-think-ref --model outputs/adapt/sft/final --dataset task:overthink_adapt \\
        --dataset_num_examples 512 --k 16 --out outputs/adapt/ref.jsonl

As the authors do, the reference (start) model answers each prompt ``k`` times (16) in its Thinking mode (the
completion forced to open with ``--think_start``; the authors' prompt ends in ``<think>``), at temperature 0.6
and top-p 0.95, up to the training budget; each answer is graded as the ``adapt_think`` reward grades (exactly one
``</think>``, then the math grader); ``R_ref`` is the share correct. The output has one
``{"prompt", "ref_accuracy", "correct", "samples"}`` line per distinct prompt (keyed by
:func:`rewards.adapt_think.prompt_key`): give it to training as ``adapt_think_ref_accuracy``. Use the training
run's dataset options and system prompt, so that the prompts match. Sampling is seeded (``--seed``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from rewards.adapt_think import AdaptThinkReward, prompt_key
from rollout.prefixes import CompletionPrefix, generate_with_prefixes
from rollout.types import SamplingConfig

__all__ = ["main", "reference_accuracies", "write_reference_file"]


def reference_accuracies(engine: Any, tokenizer: Any, rows: Sequence[dict], *, k: int = 16,
                         sampling: SamplingConfig | None = None, think_start: str | None = "<think>",
                         think_end: str = "</think>", system_prompt: str | None = None, prompts_per_call: int = 8,
                         grader: Any = None) -> list[dict[str, Any]]:
    """One record per distinct prompt of ``rows``: ``k`` completions from ``engine`` (``think_start`` forced at
    their start; None: free), graded like the ``adapt_think`` reward."""
    from curriculum.data import get_ground_truth, render_prompt

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    sampling = sampling or SamplingConfig(max_new_tokens=256, temperature=0.6, top_p=0.95, return_logprobs=False)
    judge = AdaptThinkReward(grader=grader, ref_accuracy="first_seen", think_end=think_end)
    unique: dict[str, dict] = {}
    for row in rows:
        unique.setdefault(prompt_key(row["prompt"]), row)
    items = list(unique.items())
    out: list[dict[str, Any]] = []
    for j in range(0, len(items), max(1, prompts_per_call)):
        chunk = items[j : j + max(1, prompts_per_call)]
        texts = [render_prompt(tokenizer, row["prompt"], system_prompt) for _, row in chunk]
        prompt_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        if think_start:
            groups = generate_with_prefixes(engine.generate, tokenizer, prompt_ids, k, sampling,
                                            [CompletionPrefix(think_start, k, 0.0, None, "think")])
        else:
            groups = engine.generate(prompt_ids, k, sampling)
        for (key, row), group in zip(chunk, groups):
            completions = [t.text for t in group]
            correct = judge.correctness(completions, completions, {"ground_truth": [get_ground_truth(row)] * len(group)})
            graded = [bool(c) for c in correct if c is not None]
            if not graded:
                raise ValueError(f"prompt {key[:60]!r} has no ground truth to grade against")
            out.append({"prompt": key, "ref_accuracy": sum(graded) / len(graded), "correct": sum(graded),
                        "samples": len(graded)})
    return out


def build_parser() -> argparse.ArgumentParser:
    from rl.cli_flags import FlagParser

    p = FlagParser(prog="parsimony adapt-think-ref", description=__doc__.split("\n\n")[0],
                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="the reference (start) model: a directory or hub id")
    p.add_argument("--dataset", required=True, help="the training dataset: task:<name>, a file, a save_to_disk dir, a hub id")
    p.add_argument("--dataset_split", default="train")
    p.add_argument("--dataset_num_examples", type=int, default=4096, help="rows of a task: dataset")
    p.add_argument("--dataset_kwargs", default="{}", help="JSON: task generator options")
    p.add_argument("--out", required=True, help="the JSONL file to write")
    p.add_argument("--k", type=int, default=16, help="samples per prompt (the paper's 16)")
    p.add_argument("--max_new_tokens", type=int, default=256, help="the training run's max_completion_length")
    p.add_argument("--temperature", type=float, default=0.6, help="the authors' 0.6")
    p.add_argument("--top_p", type=float, default=0.95, help="the authors' 0.95")
    p.add_argument("--think_start", default="<think>", help="the forced start of each answer ('' for none)")
    p.add_argument("--think_end", default="</think>", help="the end-of-thinking marker the reward checks")
    p.add_argument("--system_prompt", default=None)
    p.add_argument("--prompts_per_call", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    return p


def write_reference_file(model: str | Path, rows: Sequence[dict], out: str | Path, *, k: int, sampling: SamplingConfig,
                         seed: int, **kwargs: Any) -> tuple[int, float]:
    """Load ``model`` on the HF engine, measure :func:`reference_accuracies` of ``rows`` (seeded by ``seed``; ``kwargs``:
    its think markers, system prompt and prompts per call) and write them to ``out`` as JSONL; returns the number of
    distinct prompts and their mean ``R_ref``. ``parsimony adapt-think-ref`` and the comparison's AdaptThink start both write their file here."""
    import torch

    from rl.modeling import load_model, load_tokenizer
    from rollout.hf import HFEngine

    tokenizer = load_tokenizer(str(model))
    engine = HFEngine(load_model(str(model)).eval(), tokenizer)
    torch.manual_seed(seed)
    records = reference_accuracies(engine, tokenizer, rows, k=k, sampling=sampling, **kwargs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    return len(records), sum(r["ref_accuracy"] for r in records) / max(1, len(records))


def main(argv: list[str] | None = None) -> int:
    import torch

    from curriculum.data import load_dataset_spec
    from rl.config_loading import parse_json_object

    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rows = list(load_dataset_spec(args.dataset, args.dataset_split, args.dataset_num_examples, args.seed,
                                  parse_json_object(args.dataset_kwargs, "--dataset_kwargs")))
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                              return_logprobs=False)
    n, mean = write_reference_file(args.model, rows, args.out, k=args.k, sampling=sampling, seed=args.seed,
                                think_start=args.think_start or None, think_end=args.think_end,
                                system_prompt=args.system_prompt, prompts_per_call=args.prompts_per_call)
    print(f"[parsimony] adapt-think-ref: {n} prompts x {args.k} samples, mean R_ref {mean:.3f} -> {args.out}")
    return 0
