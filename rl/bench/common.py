"""What the benchmark's runs share (:mod:`rl.bench.grpo_step`'s two workers and
:mod:`rl.bench.parts`): the shared trainer settings, the training rows and the forced completion
length, all read from the parsed ``bench_grpo_step`` arguments."""

from __future__ import annotations

import argparse
from typing import Any


def settings(args) -> dict[str, Any]:
    """The shared settings, parsimony's names (compare-trl's, with the benchmark's sizes)."""
    from rl.experiments.compare_trl import shared_settings

    ns = argparse.Namespace(lr=5e-5, warmup_steps=0, num_generations=args.num_generations,
                            prompts_per_step=args.prompts_per_step, steps=args.warmup + args.steps,
                            max_completion_length=args.max_completion_length, temperature=args.temperature,
                            seed=args.seed)
    s = shared_settings(ns)
    s.update(beta=args.beta, num_iterations=args.num_iterations)
    return s


def bench_dataset(args):
    """The training rows of ``--task`` (``--train-examples`` of them, ``--seed``)."""
    from curriculum.data import load_dataset_spec

    return load_dataset_spec(f"task:{args.task}", "train", args.train_examples, args.seed, {})


def min_new_tokens(args) -> int:
    """The completions' forced length: ``--max-completion-length`` with ``--lengths forced``, else 0."""
    return args.max_completion_length if args.lengths == "forced" else 0
