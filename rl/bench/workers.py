"""The two workers of :mod:`rl.bench.grpo_step`, each run in its own subprocess
(``python -m rl.bench.grpo_step --worker ours|trl``): parsimony's ``GRPOTrainer`` or TRL's trains
``--warmup`` + ``--steps`` steps and writes its step times, tokens and breakdown to ``--result``."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rl.bench.common import bench_dataset, min_new_tokens, settings


def _ours_engine_fields(args) -> dict[str, Any]:
    """GRPOConfig fields of ``--engine`` (the HF engine is the default)."""
    if args.engine == "hf":
        return {}
    return {"engine": "vllm", "rollout_mode": "colocate", "vllm_gpu_memory_utilization": args.vllm_gpu_memory_utilization,
            "vllm_is_cap": args.vllm_is_cap}


def _trl_engine_fields(args) -> dict[str, Any]:
    """TRL GRPOConfig fields of ``--engine``, the same settings as :func:`_ours_engine_fields`."""
    if args.engine == "hf":
        return {"use_vllm": False}
    return {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": args.vllm_gpu_memory_utilization,
            "vllm_importance_sampling_correction": True, "vllm_importance_sampling_mode": "token_truncate",
            "vllm_importance_sampling_clip_max": args.vllm_is_cap}


def run_ours(args, model_dir: Path, out: Path) -> dict[str, Any]:
    import dataclasses

    from rl.config import GRPOConfig
    from rl.grpo_trainer import GRPOTrainer

    s = settings(args)
    cfg = GRPOConfig(model=str(model_dir), dataset=f"task:{args.task}", reward_funcs=["accuracy"], overwrite_output_dir=True,
                     loss_type="clipped", advantage_estimator="grpo", output_dir=str(out), report_to=[],
                     logging_steps=1, save_final=False, disable_progress_bar=True, num_threads=args.threads,
                     **s, **{**_ours_engine_fields(args), **json.loads(args.ours_overrides)})
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=bench_dataset(args))
    trainer.sampling = dataclasses.replace(trainer.sampling, min_new_tokens=min_new_tokens(args))
    ends: list[float] = []
    per_step: list[dict[str, float]] = []
    step = trainer.training_step

    def timed_step():
        m = step()
        ends.append(time.perf_counter())
        per_step.append({k: float(v) for k, v in m.items()})
        return m

    trainer.training_step = timed_step  # the train() loop's own steps, clocked at their ends
    update_tokens: list[int] = []
    update = trainer._update

    def counted_update(batch):  # the real (unpadded) tokens the update's forward + backward processes
        update_tokens.append(int(batch.prompt_mask.sum() + batch.completion_mask.sum()))
        return update(batch)

    trainer._update = counted_update
    start = time.perf_counter()
    try:
        trainer.train()
    finally:
        trainer.close()  # async_rollouts: the rollout thread and process
    times = _step_times(start, ends, args.warmup)
    timed = per_step[args.warmup:]
    tokens = [m["completion/mean_length"] * s["per_device_train_batch_size"] for m in timed]
    breakdown = {}
    for k in ("rollout", "logprobs", "reward", "weight_sync"):
        breakdown[k] = statistics.median(m.get(f"time/{k}", 0.0) for m in timed)
    # time/update holds the advantages, the micro-batch forward + backward passes, the optimizer
    # step and the weight sync
    breakdown["backward_optimizer"] = statistics.median(
        m.get("time/update", 0.0) - m.get("time/weight_sync", 0.0) for m in timed)
    breakdown["other"] = max(0.0, statistics.median(times) - sum(breakdown.values()))
    return {"step_times": times, "tokens_per_step": tokens, "breakdown": breakdown,
            "update_tokens_per_step": statistics.median(update_tokens[args.warmup:] or update_tokens)}


def run_trl(args, model_dir: Path, out: Path) -> dict[str, Any]:
    import torch
    from transformers import TrainerCallback
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer as TRLTrainer

    from rl.experiments.compare_trl import trl_config, trl_reward
    from rl.modeling import load_model, load_tokenizer

    torch.set_num_threads(args.threads)
    s = settings(args)
    extra: dict[str, Any] = _trl_engine_fields(args)
    if min_new_tokens(args):  # transformers' generate name, or vLLM SamplingParams'
        extra["generation_kwargs"] = {"min_tokens" if args.engine == "vllm" else "min_new_tokens": min_new_tokens(args)}
    cfg = trl_config(TRLConfig, s, out, logging_steps=1, gradient_checkpointing=False, **extra)
    model = load_model(str(model_dir))
    tok = load_tokenizer(str(model_dir))
    ends: list[float] = []
    gen_times: list[float] = []
    sync_times: list[float] = []

    def timed(fn, into: list[float]):
        def call(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                into.append(time.perf_counter() - t0)
        return call

    if args.engine == "hf":  # TRL's HF path calls the model's own generate()
        model.generate = timed(model.generate, gen_times)

    class StepClock(TrainerCallback):
        def on_step_end(self, *a, **k):
            ends.append(time.perf_counter())

    trainer = TRLTrainer(model=model, reward_funcs=[trl_reward("accuracy")], args=cfg, train_dataset=bench_dataset(args),
                         processing_class=tok, callbacks=[StepClock()])
    if args.engine == "vllm":  # the colocated engine's generation and its weight sync after each step
        vg = trainer.vllm_generation
        vg.generate, vg.sync_weights = timed(vg.generate, gen_times), timed(vg.sync_weights, sync_times)
    start = time.perf_counter()
    trainer.train()
    times = _step_times(start, ends, args.warmup)
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h][args.warmup:]
    tokens = [h["completions/mean_length"] * s["per_device_train_batch_size"] for h in logs]
    breakdown = {"rollout": _median_after(gen_times, args.warmup)}
    if args.engine == "vllm":
        breakdown["weight_sync"] = _median_after(sync_times, args.warmup)
    effective = {k: getattr(trainer.args, k, None) for k in (
        "loss_type", "scale_rewards", "beta", "num_iterations", "top_k", "top_p", "temperature", "epsilon",
        "num_generations", "per_device_train_batch_size", "generation_batch_size", "steps_per_generation",
        "max_completion_length", "use_vllm", "bf16", "gradient_checkpointing", "generation_kwargs", "vllm_mode",
        "vllm_gpu_memory_utilization", "vllm_importance_sampling_mode", "vllm_importance_sampling_clip_max")}
    return {"step_times": times, "tokens_per_step": tokens, "breakdown": breakdown, "trl_effective": effective}


def _median_after(times: list[float], warmup: int) -> float:
    """The median of the calls after the warm-up steps' (NaN when there are none)."""
    return statistics.median(times[warmup:]) if len(times) > warmup else float("nan")


def _step_times(start: float, ends: list[float], warmup: int) -> list[float]:
    """Seconds of each step after the warm-up ones (the first step is clocked from the start of train())."""
    marks = [start, *ends]
    return [marks[i + 1] - marks[i] for i in range(warmup, len(ends))]


def worker_main(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    out = Path(tempfile.mkdtemp(prefix=f"bench-{args.worker}-"))
    fn = run_ours if args.worker == "ours" else run_trl
    res = fn(args, Path(args.model), out)
    import resource

    # peak resident memory: this process, plus its largest child (async_rollouts' rollout process)
    res["peak_rss_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                          + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    Path(args.result).write_text(json.dumps(res, default=str))
    return 0
