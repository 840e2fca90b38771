"""Rollout throughput: HF ``generate`` vs vLLM on the same prompts, n and max tokens, plus the
seconds per weight sync. Ratios are against the HF engine measured in the same process.

    python scripts/bench_rollout.py [--sizes tiny,small] [--prompts 16] [--n 8] [--max-tokens 128]

Uses the embedded models (built into a temp dir), sampling at temperature 1 from a fixed set
of chat prompts. Prints a markdown table and writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="tiny,small", help="embedded model sizes, comma-separated")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--n", type=int, default=8, help="completions per prompt")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    p.add_argument("--repeats", type=int, default=3, help="timed generate calls per engine (after one warm-up)")
    p.add_argument("--syncs", type=int, default=5, help="timed weight syncs")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    p.add_argument("--out", default="outputs/bench_rollout.json")
    return p.parse_args(argv)


def _prompts(tokenizer, k: int) -> list[list[int]]:
    from curriculum.data import render_prompt

    texts = [render_prompt(tokenizer, [{"role": "user", "content": f"Compute {i % 9 + 1} + {i % 7 + 2} * {i % 5 + 1}."}])
             for i in range(k)]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def _time_generate(engine, prompts, n, sampling, repeats) -> tuple[float, int]:
    """Median seconds per call and generated tokens per call (after one warm-up call)."""
    engine.generate(prompts, n, sampling)
    times, tokens = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        groups = engine.generate(prompts, n, sampling)
        times.append(time.perf_counter() - t0)
        tokens.append(sum(len(t.completion_ids) for g in groups for t in g))
    return statistics.median(times), int(statistics.median(tokens))


def bench_size(size: str, args, workdir: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rl.experiments.tiny_model import make_tiny_model
    from rollout.hf import HFEngine
    from rollout.types import SamplingConfig
    from rollout.vllm import VLLMEngine

    model_dir = make_tiny_model(workdir / size, size=size, seed=0)
    dtype = getattr(torch, args.dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    prompts = _prompts(tok, args.prompts)
    sampling = SamplingConfig(max_new_tokens=args.max_tokens, temperature=1.0, return_logprobs=True)
    params = sum(p.numel() for p in model.parameters())

    hf_s, hf_tokens = _time_generate(HFEngine(model, tok), prompts, args.n, sampling, args.repeats)
    engine = VLLMEngine(str(model_dir), tok, dtype=args.dtype, max_model_len=512, seed=0, gpu_memory_utilization=0.3)
    v_s, v_tokens = _time_generate(engine, prompts, args.n, sampling, args.repeats)
    syncs = []
    for _ in range(args.syncs):
        t0 = time.perf_counter()
        engine.sync_weights(model)
        syncs.append(time.perf_counter() - t0)
    engine.close()
    sync_s = statistics.median(syncs)
    return {
        "size": size,
        "params": params,
        "device": device,
        "dtype": args.dtype,
        "sequences": args.prompts * args.n,
        "max_tokens": args.max_tokens,
        "hf_tokens_per_s": hf_tokens / hf_s,
        "vllm_tokens_per_s": v_tokens / v_s,
        "speedup_vllm_over_hf": (v_tokens / v_s) / (hf_tokens / hf_s),
        "hf_seconds": hf_s,
        "vllm_seconds": v_s,
        "weight_sync_seconds": sync_s,
        "sync_share_of_vllm_rollout": sync_s / (v_s + sync_s),
        "vllm_init_seconds": engine.init_seconds,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            rows.append(bench_size(size, args, Path(tmp)))
    print(f"\n{args.prompts} prompts x n={args.n}, max {args.max_tokens} new tokens, {args.dtype}, sampling T=1\n")
    print("| model | params | device | HF tok/s | vLLM tok/s | vLLM / HF | weight sync s | sync / (rollout+sync) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['params'] / 1e6:.2f}M | {r['device']} | {r['hf_tokens_per_s']:,.0f} | "
              f"{r['vllm_tokens_per_s']:,.0f} | {r['speedup_vllm_over_hf']:.2f}x | {r['weight_sync_seconds']:.4f} | "
              f"{r['sync_share_of_vllm_rollout']:.1%} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": rows}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
