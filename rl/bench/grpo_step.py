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
import time
from pathlib import Path
from typing import Any

from rl.bench.common import min_new_tokens, settings
from rl.bench.workers import run_ours, run_trl, worker_main

# settings and the workers live in rl.bench.common and rl.bench.workers; importable from here too
__all__ = ["BREAKDOWN", "DIFFERENCES", "FRAMEWORKS", "bench_size", "machine", "main", "min_new_tokens", "parse_args",
           "run_ours", "run_trl", "settings", "summarize", "table", "worker_main"]

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


# ---------------------------------------------------------------------------------------------
# the driver (the two workers, each in its own subprocess, are rl.bench.workers')
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
                     "min_new_tokens": min_new_tokens(args), "timed_steps": args.steps, "warmup_steps_untimed":
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
