"""Periodic held-out evaluation during training (``eval_steps``), with the same code as
``parsimony eval`` (:mod:`rl.eval.benchmarks` to load, :func:`rl.eval.evaluate.evaluate_dataset` to
generate and grade).

``eval_dataset`` may name registered benchmarks (``math500``, ``aime24,gpqa``, ``all``),
``task:<name>``, a .parquet/.jsonl file or a hub dataset id (its ``test`` split); unset, a
``task:`` training set evaluates on the task's test split. ``eval_num_examples`` caps the
problems per benchmark (the first K; a task's test split is built with that many).
Decoding is greedy with ``max_completion_length`` new tokens.

Logged under ``eval/``: with one benchmark ``accuracy``, ``mean_tokens``, ... as before;
with several, ``<benchmark>/<metric>`` for each plus the unweighted mean over benchmarks of
``accuracy`` and ``mean_tokens``.
"""

from __future__ import annotations

from typing import Any

# numeric metrics of evaluate_dataset that are logged
LOGGED = ("accuracy", "maj@n", "mean_tokens", "median_tokens", "mean_tokens_correct", "mean_tokens_incorrect",
          "truncated_frac", "no_answer_frac", "mean_tool_calls", "num_problems", "seconds", "tokens_per_second")


def eval_benchmarks_for(cfg: Any) -> list[Any] | None:
    """The configured eval benchmarks (a list of :class:`rl.eval.benchmarks.Benchmark`), or None."""
    from rl.eval.benchmarks import canonical_name, expand_benchmark_names, load_registered, load_table_benchmark, load_task

    spec = getattr(cfg, "eval_dataset", None)
    dataset = getattr(cfg, "dataset", "") or ""
    if not spec and dataset.startswith("task:"):
        spec = dataset
    if not spec:
        return None
    limit = int(cfg.eval_num_examples)
    out = []
    for name in expand_benchmark_names([spec]):
        if name.startswith("task:"):
            kwargs = dict(getattr(cfg, "dataset_kwargs", None) or {}) if name == dataset else {}
            out.append(load_task(name, limit, seed=cfg.seed + 1, **kwargs))
        elif canonical_name(name) is not None:
            out.append(load_registered(name, limit=limit))
        else:  # a file, or a hub dataset id (test split)
            out.append(load_table_benchmark(name, split="test", limit=limit))
    return out


def eval_dataset_for(cfg: Any):
    """Backward-compatible name: the first configured benchmark (or None)."""
    benches = eval_benchmarks_for(cfg)
    return benches[0] if benches else None


def summarize_for_logging(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """{benchmark: evaluate_dataset result} -> the flat numeric metrics that are logged."""

    def numeric(res: dict[str, Any]) -> dict[str, float]:
        out = {k: float(res[k]) for k in LOGGED if isinstance(res.get(k), (int, float)) and not isinstance(res.get(k), bool)}
        # evaluate_dataset reports 0.0 for an empty set; a chart should show no point instead
        if res.get("accuracy") == 0:
            out.pop("mean_tokens_correct", None)
        if res.get("accuracy") == 1:
            out.pop("mean_tokens_incorrect", None)
        return out

    if len(results) == 1:
        return numeric(next(iter(results.values())))
    flat: dict[str, float] = {}
    for name, res in results.items():
        flat.update({f"{name}/{k}": v for k, v in numeric(res).items()})
    for key in ("accuracy", "mean_tokens"):
        vals = [res[key] for res in results.values() if isinstance(res.get(key), (int, float))]
        if vals:
            flat[key] = sum(vals) / len(vals)
    return flat


def attach_eval(trainer: Any, cfg: Any) -> None:
    if getattr(cfg, "eval_steps", 0) <= 0:
        return
    benchmarks = eval_benchmarks_for(cfg)
    if not benchmarks:
        trainer.log_line("[parsimony] eval_steps is set but there is no eval_dataset; evaluation is off")
        return

    def run() -> dict[str, float]:
        from contextlib import nullcontext

        # sharded (FSDP2): every process enters the gathered block together, then only the main one generates
        gathered = getattr(trainer, "gathered_weights", None)
        with gathered() if callable(gathered) else nullcontext():
            return _evaluate() if trainer.is_main else {}

    def _evaluate() -> dict[str, float]:
        import torch

        # evaluation seeds torch per batch; forking keeps training's random stream as if no evaluation ran
        with torch.random.fork_rng(devices=[]):
            return _evaluate_benchmarks()

    def _evaluate_benchmarks() -> dict[str, float]:
        from rl.eval.evaluate import evaluate_dataset

        results = {}
        for bench in benchmarks:
            results[bench.name] = evaluate_dataset(
                trainer.unwrapped_model,
                trainer.tokenizer,
                bench,
                greedy=True,
                max_new_tokens=cfg.max_completion_length,
                system_prompt=getattr(cfg, "system_prompt", None),
                seed=cfg.seed,
            )
        flat = summarize_for_logging(results)
        parts = [f"{name}: accuracy {r['accuracy']:.3f}, mean tokens {r['mean_tokens']:.1f}" for name, r in results.items()]
        trainer.log_line(f"[eval] step {trainer.global_step}: " + "; ".join(parts))
        return flat

    trainer.set_eval_fn(run)
