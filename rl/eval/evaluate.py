"""Accuracy and efficiency of a model on a prompt dataset or benchmark: generate, grade,
summarise.

This is the core that the quickstart, ``eval_steps`` during training and
``parsimony eval`` share: generate with an :class:`EvalGenerator`, grade with the same grader
the reward uses (``rewards.math``), and report accuracy and token counts.

* :func:`evaluate_problems` generates and grades the problems of one benchmark in
  batches and hands each finished batch of sample records to a callback (``parsimony
  eval`` appends them to ``samples.jsonl``, which is what makes a run resumable).
* :func:`evaluate_dataset` is the in-memory entry point for a ``datasets.Dataset`` (or any
  list of rows) used by the quickstart and training; it returns the metrics of
  :func:`rl.eval.metrics.summarize_samples` plus the per-sample records.

Determinism: every completion has its own random stream (``sample_key(seed, benchmark,
problem index, sample index)``, see :mod:`rl.eval.generation`), so a completion does not
depend on which other problems share its batch, on the batch size or on where an
interrupted run resumed. Torch is also seeded before each batch with ``seed + index of the
batch's first problem`` for engines that sample with torch's global generator.

The generation side (:mod:`rl.eval.generation`: :class:`EvalSettings`, :class:`EvalGenerator`,
:class:`SeededSampler`, ...) is re-exported here. ``parsimony eval``'s orchestration
(:func:`rl.eval.run.run_eval`, :func:`rl.eval.run.parse_model_specs`, ...) sits on top of this
module, in :mod:`rl.eval.run`.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch

from curriculum.data import get_ground_truth
from rl.eval.benchmarks import Benchmark, EvalProblem
from rl.eval.generation import (
    EvalError,
    EvalGenerator,
    EvalSettings,
    SeededSampler,
    render_eval_prompt,
    sample_key,
    stream_uniform,
)
from rl.eval.metrics import dataset_metrics
from rollout.types import RolloutEngine

__all__ = [
    "EvalError",
    "EvalGenerator",
    "EvalSettings",
    "RecordSink",
    "SeededSampler",
    "evaluate_benchmark",
    "evaluate_dataset",
    "evaluate_problems",
    "render_eval_prompt",
    "sample_key",
    "stream_uniform",
]


# ---------------------------------------------------------------------------------------
# generate + grade one benchmark
# ---------------------------------------------------------------------------------------

RecordSink = Callable[[list[dict[str, Any]]], None]


def _grader_for(mode: str, grader: Any = None) -> Any:
    if grader is not None:
        return grader
    from rewards.math import get_default_grader

    return get_default_grader(mode)


def evaluate_problems(
    problems: Sequence[EvalProblem],
    *,
    generator: EvalGenerator,
    tokenizer: Any,
    settings: EvalSettings,
    benchmark: str = "dataset",
    model_name: str = "model",
    mode: str = "math",
    grader: Any = None,
    done: set[int] | frozenset[int] = frozenset(),
    on_records: RecordSink | None = None,
    progress: Any = None,
    keep_completions: bool = True,
) -> list[dict[str, Any]]:
    """Generate ``settings.n`` completions for each problem not in ``done`` (problem
    indices), grade them and return one record per completion.

    Problems are batched (``settings.batch_size // n`` per generate call, longest prompts
    first to limit padding). After each batch, its records (all ``n`` samples of every
    problem in it) go to ``on_records`` and ``progress.update(problems in batch)`` is called.
    A record holds ``model, benchmark, problem, sample, ground_truth, extracted, correct,
    status, tokens, truncated, finish_reason, gen_seconds`` (the batch's wall time shared
    equally by its samples), ``completion`` (when ``keep_completions``) and ``tool_calls``
    when the engine reports them in ``Trajectory.meta``.
    """
    grader = _grader_for(mode, grader)
    pending = [p for p in problems if p.index not in done]
    if not pending:
        return []
    start = getattr(grader, "start", None)
    if callable(start):  # worker start-up is not generation time
        start()
    texts = [render_eval_prompt(tokenizer, p.prompt, settings.system_prompt, settings.chat_template) for p in pending]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(pending)), key=lambda i: (-len(ids[i]), pending[i].index))
    per_call = max(1, settings.batch_size // settings.n)
    out: list[dict[str, Any]] = []
    for start in range(0, len(order), per_call):
        chunk = order[start : start + per_call]
        batch = [pending[i] for i in chunk]
        t0 = time.perf_counter()
        torch.manual_seed(settings.seed + min(p.index for p in batch))
        keys = [sample_key(settings.seed, benchmark, p.index, j) for p in batch for j in range(settings.n)]
        groups = generator.generate([ids[i] for i in chunk], settings, keys)
        completions = [t.text for g in groups for t in g]
        truths = [p.answer for p, g in zip(batch, groups) for _ in g]
        grades = grader.grade(completions, truths)
        seconds = (time.perf_counter() - t0) / max(1, len(completions))
        records: list[dict[str, Any]] = []
        k = 0
        for p, g in zip(batch, groups):
            if len(g) != settings.n:
                raise RuntimeError(f"engine returned {len(g)} completions for problem {p.index}, expected {settings.n}")
            for j, t in enumerate(g):
                gr = grades[k]
                rec: dict[str, Any] = {
                    "model": model_name,
                    "benchmark": benchmark,
                    "problem": p.index,
                    "sample": j,
                    "ground_truth": p.answer,
                    "extracted": gr.extracted,
                    "correct": bool(gr.score > 0),
                    "status": gr.status,
                    "tokens": len(t.completion_ids),
                    "truncated": bool(t.truncated),
                    "finish_reason": t.finish_reason,
                    "gen_seconds": seconds,
                }
                tool_calls = (t.meta or {}).get("tool_calls")
                if tool_calls is not None:
                    rec["tool_calls"] = int(tool_calls)
                if keep_completions:
                    rec["completion"] = t.text
                records.append(rec)
                k += 1
        if on_records is not None:
            on_records(records)
        if progress is not None:
            progress.update(len(batch))
        out.extend(records)
    return out


def evaluate_benchmark(
    bench: Benchmark, *, generator: EvalGenerator, tokenizer: Any, settings: EvalSettings, model_name: str = "model",
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """:func:`evaluate_problems` for a :class:`~rl.eval.benchmarks.Benchmark` (its name and mode)."""
    return evaluate_problems(
        bench.problems, generator=generator, tokenizer=tokenizer, settings=settings, benchmark=bench.name,
        model_name=model_name, mode=bench.mode, **kwargs,
    )


# ---------------------------------------------------------------------------------------
# the in-memory entry point (quickstart, eval during training)
# ---------------------------------------------------------------------------------------


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
    seed: int = 0,
    mode: str = "math",
    top_k: int = 0,
    chat_template: bool = True,
    name: str = "dataset",
) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` (rows with ``prompt`` and a ground truth, a
    :class:`~rl.eval.benchmarks.Benchmark`, or a list of :class:`~rl.eval.benchmarks.EvalProblem`).

    Returns ``accuracy`` (= pass@1 averaged over the ``n_samples``), ``maj@n``, ``pass@k``
    ({"1": .., ..}), mean / median tokens (all, ``*_correct``, ``*_incorrect``; the legacy
    keys ``mean_tokens_correct`` / ``mean_tokens_incorrect`` are 0.0 when the set is empty),
    ``truncated_frac``, ``no_answer_frac``, ``num_problems``, ``num_samples``, ``seconds``,
    ``tokens_per_second``, each of ``text_metrics`` averaged over samples, and the
    per-sample records under ``"samples"`` (each also has ``index`` = its problem index).
    """
    if isinstance(dataset, Benchmark):
        problems, mode, name = dataset.problems, dataset.mode, dataset.name
    else:
        rows = list(dataset)
        if rows and isinstance(rows[0], EvalProblem):
            problems = rows
        else:
            problems = [EvalProblem(i, r["prompt"], get_ground_truth(r) or "") for i, r in enumerate(rows)]
    settings = EvalSettings(
        n=n_samples, temperature=0.0 if greedy else temperature, top_p=top_p, top_k=top_k,
        max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, system_prompt=system_prompt,
        chat_template=chat_template,
    )
    generator = EvalGenerator(model, tokenizer) if engine is None else EvalGenerator(engine=engine)
    start = time.time()
    samples = evaluate_problems(
        problems, generator=generator, tokenizer=tokenizer, settings=settings, benchmark=name, mode=mode,
        grader=grader,
    )
    elapsed = time.time() - start
    samples.sort(key=lambda s: (s["problem"], s["sample"]))
    for s in samples:
        s["index"] = s["problem"]
    result = dataset_metrics(samples, text_metrics)
    result["seconds"] = elapsed
    result["tokens_per_second"] = result["generated_tokens"] / elapsed if elapsed > 0 else 0.0
    result["samples"] = samples
    return result
