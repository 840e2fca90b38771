"""GRPO step time on identical work: parsimony's ``GRPOTrainer`` against TRL's, both with HF
``generate`` rollouts (``--engine hf``, TRL ``use_vllm=False``) or both with a colocated vLLM
(``--engine vllm``, TRL ``use_vllm=True``, ``vllm_mode="colocate"``; the same GPU memory share and
token-level truncated IS cap on both sides).

    python scripts/bench_grpo_step.py --out DIR [--sizes tiny,small] [--steps 4] [--warmup 1] [--rounds 2]

For each model size the embedded model is built once (``make_tiny_model``, random init, or
``--model DIR`` for an existing checkpoint, e.g. an SFT start). Then the two trainers run in
back-to-back subprocesses, alternated A, B, A, B (``--rounds`` times each), so that the load of a
shared machine hits both. Each run trains ``--warmup`` untimed steps, then ``--steps`` timed ones.

Both get the same weights, dataset rows, prompts per step, G, max completion length, sampling
(T, top_p, ``top_k=0``), reward (parsimony's ``accuracy``, through
:func:`rl.experiments.compare_trl.trl_reward` for TRL), beta, ``num_iterations``, loss aggregation
(token-mean = TRL's ``dapo``), optimizer and clipping, fp32, no gradient checkpointing (TRL
defaults it on; it is switched off here, a recompute that parsimony does not do would flatter us).
With ``--lengths forced`` (the default) every completion is exactly ``max_completion_length``
tokens (``min_new_tokens`` = max on both sides, vLLM's ``min_tokens``), so both do the same number of tokens; with
``natural`` the lengths are whatever the model samples, and tokens/s is the fair figure.

A step is the wall time between the ends of two consecutive optimizer steps of the trainer's own
``train()`` loop (everything a user pays: sampling prompts, generation, rewards, the update,
logging). The result: median and min s/step of each, the ratio ours / TRL, tokens/s, and our
breakdown (rollout, log-prob passes, reward, backward+optimizer, weight sync, other); a markdown
table on stdout and ``DIR/bench.json`` = ``{"ratio", "ours", "trl", "settings", "sizes"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FRAMEWORKS = ("ours", "trl")
# parsimony's own step timers (GRPOTrainer._timing, logged as time/<key>)
BREAKDOWN = ("rollout", "logprobs", "reward", "backward_optimizer", "weight_sync", "other")
# what differs between the two runs, and why (written to bench.json)
DIFFERENCES = {
    "prompt_order": "each trainer draws prompts with its own seeded sampler (same rows, same seed, another "
                    "order); with forced lengths only the prompt lengths (a few tokens) can differ",
    "loss_code": "parsimony loss_type 'clipped' + loss_agg_mode 'token-mean' vs TRL loss_type 'dapo': the same "
                 "token-mean clipped surrogate",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_grpo_step", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs/bench_grpo_step", help="output directory (bench.json, models)")
    p.add_argument("--sizes", default="tiny", help="embedded model sizes, comma-separated: tiny (~1M), small (~10M)")
    p.add_argument("--model", default=None, help="an existing model directory instead of the embedded sizes")
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--rounds", type=int, default=2, help="runs of each framework, alternated A, B, A, B")
    p.add_argument("--frameworks", default="ours,trl", help="ours,trl (one alone: no ratio)")
    p.add_argument("--task", default="overthink")
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-completion-length", type=int, default=200)
    p.add_argument("--lengths", default="forced", choices=["forced", "natural"],
                   help="forced: every completion is max-completion-length tokens (min_new_tokens = max)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--beta", type=float, default=0.0)
    p.add_argument("--num-iterations", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (1 on a shared machine)")
    p.add_argument("--engine", default="hf", choices=["hf", "vllm"],
                   help="rollouts on both sides: hf (transformers; TRL use_vllm=False) or vllm (colocated in the "
                        "trainer's process on both sides: parsimony engine vllm, TRL use_vllm=True vllm_mode colocate)")
    p.add_argument("--vllm-gpu-memory-utilization", type=float, default=0.3,
                   help="--engine vllm: the GPU memory share of each side's colocated vLLM (TRL's default)")
    p.add_argument("--vllm-is-cap", type=float, default=2.0,
                   help="--engine vllm: token-level truncated IS cap on both sides (parsimony vllm_is_cap; TRL "
                        "vllm_importance_sampling_mode token_truncate with this clip_max)")
    p.add_argument("--train-examples", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ours-overrides", default="{}",
                   help="JSON GRPOConfig fields for our trainer only (e.g. an optimisation switched off: a "
                        "before/after); they are listed in settings.differences")
    p.add_argument("--variants", default="{}",
                   help="JSON {name: GRPOConfig fields}: more runs of our trainer in the same alternation (A, B, C, ...), "
                        "each reported with its own ratio, e.g. '{\"compact\": {\"hf_decode\": \"compact\"}}' for a "
                        "before/after")
    p.add_argument("--parts", action="store_true",
                   help="instead: each optimisation alone, before/after in one process (rollout: generate vs compact; "
                        "update: one padded pass vs split_by_length 4; optimizer: AdamW loop vs fused), written to "
                        "DIR/parts.json")
    p.add_argument("--worker", default=None, choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


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


def _dataset(args):
    from curriculum.data import load_dataset_spec

    return load_dataset_spec(f"task:{args.task}", "train", args.train_examples, args.seed, {})


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


def _min_new_tokens(args) -> int:
    return args.max_completion_length if args.lengths == "forced" else 0


# ---------------------------------------------------------------------------------------------
# the two workers (each in its own subprocess)
# ---------------------------------------------------------------------------------------------


def run_ours(args, model_dir: Path, out: Path) -> dict[str, Any]:
    import dataclasses

    from rl.config import GRPOConfig
    from rl.grpo_trainer import GRPOTrainer

    s = settings(args)
    cfg = GRPOConfig(model=str(model_dir), dataset=f"task:{args.task}", reward_funcs=["accuracy"],
                     loss_type="clipped", advantage_estimator="grpo", output_dir=str(out), report_to=[],
                     logging_steps=1, save_final=False, disable_progress_bar=True, num_threads=args.threads,
                     **s, **{**_ours_engine_fields(args), **json.loads(args.ours_overrides)})
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=_dataset(args))
    trainer.sampling = dataclasses.replace(trainer.sampling, min_new_tokens=_min_new_tokens(args))
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
    if _min_new_tokens(args):  # transformers' generate name, or vLLM SamplingParams'
        extra["generation_kwargs"] = {"min_tokens" if args.engine == "vllm" else "min_new_tokens": _min_new_tokens(args)}
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

    trainer = TRLTrainer(model=model, reward_funcs=[trl_reward("accuracy")], args=cfg, train_dataset=_dataset(args),
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


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------


def _forward_argv(args, model_dir: Path, worker: str, result: Path) -> list[str]:
    skip = {"out", "sizes", "model", "rounds", "frameworks", "worker", "result", "variants", "ours_overrides", "parts"}
    name, _, variant = worker.partition("+")
    overrides = {**json.loads(args.ours_overrides), **(json.loads(args.variants)[variant] if variant else {})}
    argv = [sys.executable, "-m", "rl.bench.grpo_step", "--worker", name, "--model", str(model_dir),
            "--result", str(result), "--ours-overrides", json.dumps(overrides)]
    for k, v in vars(args).items():
        if k not in skip:
            argv += [f"--{k.replace('_', '-')}", str(v)]
    return argv


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the timed steps of every run of one framework."""
    times = [t for r in runs for t in r["step_times"]]
    tokens = [t for r in runs for t in r["tokens_per_step"]]
    out: dict[str, Any] = {
        "median_s_per_step": statistics.median(times),
        "min_s_per_step": min(times),
        "steps_timed": len(times),
        "runs": len(runs),
        "run_medians": [statistics.median(r["step_times"]) for r in runs],
        "mean_completion_tokens_per_step": statistics.mean(tokens) if tokens else float("nan"),
    }
    out["tokens_per_s"] = out["mean_completion_tokens_per_step"] / out["median_s_per_step"]
    out["peak_rss_mb"] = max(r.get("peak_rss_mb", float("nan")) for r in runs)
    if "update_tokens_per_step" in runs[0]:
        out["update_tokens_per_step"] = statistics.median(r["update_tokens_per_step"] for r in runs)
    keys = runs[0]["breakdown"].keys()
    out["breakdown"] = {k: statistics.median(r["breakdown"][k] for r in runs) for k in keys}
    if "trl_effective" in runs[0]:
        out["trl_effective"] = runs[0]["trl_effective"]
    return out


def bench_size(args, model_dir: Path, out: Path, frameworks: list[str]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false",
           "WANDB_MODE": "disabled"}
    runs: dict[str, list] = {f: [] for f in frameworks}
    for r in range(args.rounds):
        for fw in frameworks:  # A, B, A, B
            result = out / f"run-{model_dir.name}-{fw}-{r}.json"
            t0 = time.time()
            proc = subprocess.run(_forward_argv(args, model_dir, fw, result), env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{fw} run {r} failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
            runs[fw].append(json.loads(result.read_text()))
            med = statistics.median(runs[fw][-1]["step_times"])
            print(f"[bench_grpo_step] {model_dir.name} {fw} round {r}: {med:.3f} s/step "
                  f"({time.time() - t0:.0f}s with start-up)", flush=True)
    res = {fw: summarize(v) for fw, v in runs.items()}
    if "trl" in res:
        for fw in res:
            if fw.startswith("ours"):
                res[fw]["ratio"] = res[fw]["median_s_per_step"] / res["trl"]["median_s_per_step"]
                res[fw]["ratio_min"] = res[fw]["min_s_per_step"] / res["trl"]["min_s_per_step"]
        if "ours" in res:
            res["ratio"], res["ratio_min"] = res["ours"]["ratio"], res["ours"]["ratio_min"]
    return res


def table(sizes: dict[str, dict]) -> str:
    lines = ["| model | trainer | median s/step | min s/step | completion tok/s | ours / TRL (median) | (min) |",
             "|---|---|---|---|---|---|---|"]
    for name, res in sizes.items():
        for fw in [f for f in res if isinstance(res[f], dict) and "median_s_per_step" in res[f]]:
            r = res[fw]
            ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
            ratio_min = f"{r['ratio_min']:.2f}" if "ratio_min" in r else ""
            label = "TRL" if fw == "trl" else "parsimony" + (f" ({fw[5:]})" if "+" in fw else "")
            lines.append(f"| {name} | {label} | {r['median_s_per_step']:.3f} | "
                         f"{r['min_s_per_step']:.3f} | {r['tokens_per_s']:.0f} | {ratio} | {ratio_min} |")
    lines += ["", "| model | trainer | " + " | ".join(BREAKDOWN) + " | TRL generate |",
              "|---|---|" + "---|" * (len(BREAKDOWN) + 1)]
    for name, res in sizes.items():
        t = res.get("trl", {}).get("breakdown", {}).get("rollout", float("nan"))
        for fw in [f for f in res if f.startswith("ours") and isinstance(res[f], dict)]:
            b = res[fw]["breakdown"]
            lines.append(f"| {name} | {fw} | " + " | ".join(f"{b.get(k, float('nan')):.3f}" for k in BREAKDOWN)
                         + f" | {t:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    frameworks = [f for f in args.frameworks.split(",") if f]
    if not frameworks or any(f not in FRAMEWORKS for f in frameworks):
        raise SystemExit(f"error: --frameworks takes {','.join(FRAMEWORKS)}; got {args.frameworks!r}")
    variants = json.loads(args.variants)
    if not isinstance(variants, dict) or any("+" in k or not isinstance(v, dict) for k, v in variants.items()):
        raise SystemExit(f"error: --variants must be a JSON object of name -> GRPOConfig fields; got {args.variants!r}")
    frameworks += [f"ours+{k}" for k in variants]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.model:
        models = {Path(args.model).name: Path(args.model)}
    else:
        from rl.experiments.tiny_model import make_tiny_model

        models = {}
        for size in [s for s in args.sizes.split(",") if s]:
            d = out / f"model-{size}"
            models[size] = d if (d / "config.json").exists() else make_tiny_model(d, size=size, seed=args.seed)
    if args.parts:
        from rl.bench.parts import bench_parts, parts_table

        parts = {name: bench_parts(args, d) for name, d in models.items()}
        (out / "parts.json").write_text(json.dumps({"parts": parts, "machine": machine(), "args": vars(args)}, indent=1))
        print(parts_table(parts))
        return 0
    sizes: dict[str, dict] = {}
    for name, d in models.items():
        sizes[name] = bench_size(args, d, out, frameworks)
        sizes[name]["parameters"] = _parameters(d)
        if "ours" in sizes[name]:
            from rl.bench.flops import flops_report

            sizes[name]["flops"] = flops_report(sizes[name]["parameters"], sizes[name]["ours"], args.threads)
    first = next(iter(sizes.values()))
    differences = dict(DIFFERENCES)
    if json.loads(args.ours_overrides):
        differences["ours_overrides"] = f"parsimony only: {args.ours_overrides}"
    for k, v in variants.items():
        differences[f"variant ours+{k}"] = f"parsimony only, an extra run: {json.dumps(v)}"
    report = {
        "ratio": first.get("ratio"),
        "ours": first.get("ours"),
        "trl": first.get("trl"),
        "sizes": sizes,
        "settings": {**settings(args), "prompts_per_step": args.prompts_per_step, "lengths": args.lengths,
                     "min_new_tokens": _min_new_tokens(args), "timed_steps": args.steps, "warmup_steps_untimed":
                     args.warmup, "rounds": args.rounds, "threads": args.threads, "task": args.task,
                     "reward": "accuracy", "dtype": "float32", "gradient_checkpointing": False, "engine": args.engine,
                     "trl_use_vllm": args.engine == "vllm", "trl_loss_type": "dapo", "models": {k: str(v) for k, v in models.items()},
                     "differences": differences, "machine": machine()},
    }
    (out / "bench.json").write_text(json.dumps(report, indent=1, default=str))
    print()
    print(table(sizes))
    for name, res in sizes.items():
        if "flops" in res:
            f = res["flops"]
            print(f"\n{name}: the update achieves {f['update_gflops']:.2f} GFLOP/s (6 x params x tokens / "
                  f"backward+optimizer s) against {f['matmul_gflops']:.1f} GFLOP/s of a {f['dtype']} matmul on "
                  f"{f['threads']} thread(s): {100 * f['fraction_of_matmul']:.1f}%")
    print(f"\nbench: {out / 'bench.json'}")
    return 0


def _parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    n = 0
    for f in model_dir.glob("*.safetensors"):
        with safe_open(str(f), "pt") as h:
            for k in h.keys():
                n += _prod(h.get_slice(k).get_shape())
    return n


def _prod(shape) -> int:
    out = 1
    for x in shape:
        out *= int(x)
    return out


def machine() -> dict[str, Any]:
    import platform

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"nproc": os.cpu_count(), "cpu": model, "platform": platform.platform(), "loadavg": load}


if __name__ == "__main__":
    raise SystemExit(main())
