"""Accuracy and efficiency of a model on a prompt dataset.

This is the core that the quickstart, ``eval_steps`` during training and
``parsimony eval`` share: generate with an engine, grade with the same grader the
reward uses, and report accuracy and token counts.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from curriculum.data import get_ground_truth, render_prompt
from rollout.hf import HFEngine
from rollout.types import RolloutEngine, SamplingConfig


def evaluate_dataset(
    model: Any,
    tokenizer: Any,
    dataset: Any,
    *,
    n_samples: int = 1,
    greedy: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    batch_size: int = 64,
    system_prompt: str | None = None,
    engine: RolloutEngine | None = None,
    grader: Any = None,
    text_metrics: dict[str, Callable[[str], float]] | None = None,
) -> dict[str, Any]:
    """Returns accuracy (pass@1 averaged over samples), mean tokens (all / correct /
    incorrect), truncated fraction, throughput, any ``text_metrics`` averaged, and the
    per-sample records under ``"samples"``."""
    from rewards.math import get_default_grader

    grader = grader or get_default_grader()
    engine = engine or HFEngine(model, tokenizer)
    sampling = SamplingConfig(
        max_new_tokens=max_new_tokens,
        temperature=temperature if not greedy else 1.0,
        top_p=top_p,
        greedy=greedy,
        return_logprobs=False,
    )
    rows = list(dataset)
    prompts = [render_prompt(tokenizer, r["prompt"], system_prompt) for r in rows]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    start = time.time()
    samples: list[dict[str, Any]] = []
    per_call = max(1, batch_size // max(1, n_samples))
    for s in range(0, len(rows), per_call):
        groups = engine.generate(prompt_ids[s : s + per_call], n_samples, sampling)
        texts = [t.text for g in groups for t in g]
        gts = [get_ground_truth(rows[s + gi]) or "" for gi, g in enumerate(groups) for _ in g]
        grades = grader.grade(texts, gts)
        k = 0
        for gi, g in enumerate(groups):
            for t in g:
                samples.append(
                    {
                        "index": s + gi,
                        "completion": t.text,
                        "ground_truth": gts[k],
                        "extracted": grades[k].extracted,
                        "correct": grades[k].score > 0,
                        "status": grades[k].status,
                        "tokens": len(t.completion_ids),
                        "truncated": t.truncated,
                    }
                )
                k += 1
    elapsed = time.time() - start
    tokens = [x["tokens"] for x in samples]
    correct = [x["tokens"] for x in samples if x["correct"]]
    wrong = [x["tokens"] for x in samples if not x["correct"]]
    result: dict[str, Any] = {
        "accuracy": sum(x["correct"] for x in samples) / max(1, len(samples)),
        "mean_tokens": statistics.fmean(tokens) if tokens else 0.0,
        "median_tokens": statistics.median(tokens) if tokens else 0.0,
        "mean_tokens_correct": statistics.fmean(correct) if correct else 0.0,
        "mean_tokens_incorrect": statistics.fmean(wrong) if wrong else 0.0,
        "truncated_frac": sum(x["truncated"] for x in samples) / max(1, len(samples)),
        "num_problems": len(rows),
        "num_samples": len(samples),
        "seconds": elapsed,
        "tokens_per_second": sum(tokens) / elapsed if elapsed > 0 else 0.0,
    }
    for name, fn in (text_metrics or {}).items():
        vals = [fn(x["completion"]) for x in samples]
        result[name] = statistics.fmean(vals) if vals else 0.0
    result["samples"] = samples
    return result
