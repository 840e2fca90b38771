"""CPU decoding with glibc's default allocator thresholds against the fixed ones (``rl/malloc.py``): wall,
user and system seconds and page faults of the same sampled decode, one fresh process per run, arms interleaved.

    python scripts/bench_malloc.py --model DIR [--batch 32] [--tokens 192] [--threads 1] [--rounds 2]

Without ``--model`` it builds the embedded tiny model (whose KV cache is too small for the effect: use a real
model, e.g. ``parsimony import-model --from smollm2-135m-instruct``). Every run decodes the same prompts with the
same seed and a forced length, so the arms do the same work (``out_sum`` checks it). Prints a markdown table with
the ratios against the default and writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARMS = {"default": "0", "tuned": "1"}  # arm -> PARSIMONY_MALLOC_TUNE


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model directory (default: build the embedded tiny model)")
    p.add_argument("--batch", type=int, default=32, help="sequences decoded together")
    p.add_argument("--tokens", type=int, default=192, help="new tokens per sequence (forced)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="runs of each arm, interleaved")
    p.add_argument("--out", default="outputs/bench_malloc.json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("batch", "tokens", "threads", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name}: must be >= 1")
    return args


def child(args: argparse.Namespace) -> dict:
    """One decode in this process: its seconds and page faults (the allocator is set before torch allocates)."""
    import resource
    import time

    from rl.malloc import tune_malloc

    tuned = tune_malloc()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"Tom has {i + 3} apples and buys {2 * i + 5} more. "
                                         "How many apples does he have? Put the final answer in \\boxed{}."}],
                                       tokenize=False, add_generation_prompt=True) for i in range(args.batch)]
    enc = tok(prompts, return_tensors="pt", padding=True)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    torch.manual_seed(0)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=True,
                             temperature=1.0, top_k=0, pad_token_id=pad)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {"tuned": tuned, "wall_s": wall, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
            "minor_faults": r1.ru_minflt - r0.ru_minflt, "max_rss_mb": r1.ru_maxrss // 1024, "out_sum": int(out.sum())}


def run_arm(args: argparse.Namespace, arm: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", args.model, "--batch", str(args.batch), "--tokens",
           str(args.tokens), "--threads", str(args.threads)]
    env = dict(os.environ, PARSIMONY_MALLOC_TUNE=ARMS[arm], OMP_NUM_THREADS=str(args.threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{arm} run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    if args.model is None:
        from rl.experiments.tiny_model import make_tiny_model

        args.model = str(make_tiny_model(Path(tempfile.mkdtemp(prefix="bench_malloc_")) / "model"))
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for r in range(args.rounds):
        for arm in ARMS:
            runs[arm].append(run_arm(args, arm))
            print(f"[bench_malloc] round {r + 1}/{args.rounds} {arm}: {runs[arm][-1]['wall_s']:.1f} s", flush=True)
    sums = {res["out_sum"] for rs in runs.values() for res in rs}
    report = {"settings": {**{k: v for k, v in vars(args).items() if k != "child"}, "machine": platform.platform(),
                           "nproc": os.cpu_count()},
              "same_tokens": len(sums) == 1, "runs": runs, "median": {}}
    for arm, rs in runs.items():
        report["median"][arm] = {k: statistics.median(x[k] for x in rs) for k in ("wall_s", "user_s", "sys_s", "minor_faults")}
    base = report["median"]["default"]
    report["ratio_wall"] = {arm: m["wall_s"] / base["wall_s"] for arm, m in report["median"].items()}
    lines = ["| arm | wall s | user s | sys s | page faults | wall vs default |", "|---|---|---|---|---|---|"]
    for arm, m in report["median"].items():
        lines.append(f"| {arm} | {m['wall_s']:.1f} | {m['user_s']:.1f} | {m['sys_s']:.1f} | {m['minor_faults']:,.0f} | "
                     f"{report['ratio_wall'][arm]:.2f}x |")
    print("\n".join(lines))
    if not report["same_tokens"]:
        print("[bench_malloc] warning: the arms decoded different tokens", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
