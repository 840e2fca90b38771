"""Evaluation of multi-turn episodes (tool use): run each held-out row as an episode of the
configured environment, grade the episode's final text, and report accuracy, the model's own
tokens and the tool round-trips.

    res = evaluate_episodes(model, tok, rows, environment="tools",
                            environment_kwargs={"tools": ["calculator"]}, max_turns=3, greedy=True)
    res["accuracy"], res["mean_tokens"], res["mean_tool_calls"], res["tool_calls_by_bucket"]

The loop is the training loop's (:func:`rollout.episodes.run_episodes` over an
:class:`~rollout.hf.HFEngine`), so evaluation sees exactly the rendering, stop strings and limits
that rollouts see. ``tokens`` counts the model's own tokens (observations excluded; they are in
``observation_tokens``). Sampling is seeded per batch (``seed + index of the batch's first row``),
so a sampled evaluation is reproducible at a fixed ``batch_size``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import torch

from curriculum.data import get_ground_truth
from rl.eval.metrics import dataset_metrics

__all__ = ["evaluate_episodes", "executor_metrics", "tool_call_buckets"]


def tool_call_buckets(samples: Sequence[Mapping[str, Any]], top: int = 3) -> dict[str, dict[str, float]]:
    """Accuracy and share of samples per tool-call count: ``{"0": {...}, "1": ..., "3+": ...}``."""
    out: dict[str, dict[str, float]] = {}
    n = len(samples)
    for k in range(top + 1):
        members = [s for s in samples if (min(int(s.get("tool_calls", 0)), top)) == k]
        if members:
            key = f"{k}+" if k == top else str(k)
            out[key] = {"share": len(members) / n, "accuracy": sum(bool(s["correct"]) for s in members) / len(members)}
    return out


def executor_metrics(samples: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Over the samples' executor sub-episodes: ``mean_executor_calls`` (per episode),
    ``executor_format_ok`` (share of calls with a valid ``<result>``) and ``executor_accuracy`` (mean
    ``r_local`` of the calls that have one); None where no call (or no local score) was made."""
    n = len(samples)
    ok = [v for s in samples for v in s.get("executor_format_ok", [])]
    local = [float(v) for s in samples for v in s.get("executor_r_local", []) if v is not None]
    return {"mean_executor_calls": sum(int(s.get("executor_calls", 0)) for s in samples) / n if n else 0.0,
            "executor_format_ok": sum(ok) / len(ok) if ok else None,
            "executor_accuracy": sum(local) / len(local) if local else None}


def evaluate_episodes(
    model: Any,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    environment: str,
    environment_kwargs: Mapping[str, Any] | None = None,
    max_turns: int = 4,
    max_episode_tokens: int | None = None,
    greedy: bool = True,
    temperature: float = 1.0,
    max_new_tokens: int = 256,
    batch_size: int = 64,
    seed: int = 0,
    system_prompt: str | None = None,
    text_metrics: Mapping[str, Callable[[str], float]] | None = None,
    row_metrics: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], float | None]] | None = None,
    grader: Any = None,
    mode: str = "math",
    engine: Any = None,
) -> dict[str, Any]:
    """One episode per row; returns :func:`~rl.eval.metrics.summarize_samples`'s metrics plus
    ``accuracy``, ``mean_tool_calls``, ``zero_tool_calls_frac``, ``mean_turns``,
    ``mean_observation_tokens``, ``tool_calls_by_bucket`` (:func:`tool_call_buckets`), each of
    ``text_metrics`` (``fn(text)``) and ``row_metrics`` (``fn(row, sample)``, None = not counted)
    averaged, and the per-sample records under ``"samples"``. ``engine``: any
    :class:`~rollout.types.RolloutEngine` (default: an HF engine on ``model``)."""
    from rewards.math import get_default_grader
    from rollout.episodes import episode_factory, run_episodes
    from rollout.hf import HFEngine
    from rollout.types import SamplingConfig

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    grader = grader or get_default_grader(mode)
    make_env = episode_factory(environment, environment_kwargs)
    engine = engine if engine is not None else HFEngine(model, tokenizer)
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature if not greedy else 1.0,
                              greedy=greedy, return_logprobs=False)
    rows = list(rows)
    samples: list[dict[str, Any]] = []
    t0 = time.time()
    was_training = bool(getattr(model, "training", False))
    if model is not None:
        model.eval()
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            torch.manual_seed(seed + start)
            t_batch = time.perf_counter()
            groups = run_episodes(engine, tokenizer, chunk, make_env, 1, sampling, max_turns=max_turns,
                                  max_episode_tokens=max_episode_tokens or max_new_tokens, system_prompt=system_prompt)
            trajs = [g[0] for g in groups]
            truths = [get_ground_truth(r) or "" for r in chunk]
            grades = grader.grade([t.text for t in trajs], truths)
            seconds = (time.perf_counter() - t_batch) / max(1, len(trajs))
            for j, (t, gr, truth) in enumerate(zip(trajs, grades, truths)):
                meta = t.meta or {}
                kids = [c for c in groups[j][1:] if c.role != 0]
                samples.append({
                    "problem": start + j, "index": start + j, "sample": 0, "ground_truth": truth,
                    "extracted": gr.extracted, "correct": bool(gr.score > 0), "status": gr.status,
                    "tokens": int(sum(t.completion_mask)), "observation_tokens": int(meta.get("observation_tokens", 0)),
                    "truncated": bool(t.truncated), "finish_reason": t.finish_reason, "gen_seconds": seconds,
                    "tool_calls": int(meta.get("tool_calls", 0) or 0), "turns": int(meta.get("turns", 1)),
                    "episode_end": meta.get("episode_end"), "completion": t.text,
                    # sub-episodes (M-GRPO executor calls: rollout/mgrpo/agents.py): their count, format and local score
                    "executor_calls": len(kids), "executor_format_ok": [bool(c.meta.get("executor_format_ok")) for c in kids],
                    "executor_r_local": [c.meta.get("executor_r_local") for c in kids],
                })
    finally:
        if was_training:
            model.train()
    result = dataset_metrics(samples, text_metrics)
    n = len(samples)
    result["mean_tool_calls"] = sum(s["tool_calls"] for s in samples) / n if n else 0.0
    result["zero_tool_calls_frac"] = sum(s["tool_calls"] == 0 for s in samples) / n if n else 0.0
    result["mean_turns"] = sum(s["turns"] for s in samples) / n if n else 0.0
    result["mean_observation_tokens"] = sum(s["observation_tokens"] for s in samples) / n if n else 0.0
    result["tool_calls_by_bucket"] = tool_call_buckets(samples)
    result.update(executor_metrics(samples))
    result["seconds"] = time.time() - t0
    for metric, fn in (row_metrics or {}).items():
        vals = [v for v in (fn(rows[s["index"]], s) for s in samples) if v is not None]
        result[metric] = sum(vals) / len(vals) if vals else None
    result["samples"] = samples
    return result
