"""SFT step time on the embedded task: one padded batch vs the same batch cut into length-sorted
pieces (``split_by_length``, same gradient) vs length-grouped batches (``group_by_length``, other
batches). Ratios are against the plain batch, measured in the same process.

    python scripts/bench_sft.py [--size tiny] [--task overthink] [--steps 40] [--threads 0]

Builds the embedded model in a temp dir, trains each variant from the same start for ``--steps``
optimizer steps (after 3 warm-up steps) and reports the median seconds per step and the share of
padding in the forward passes. Prints a markdown table and writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

VARIANTS = {  # name -> SFTConfig fields
    "plain": {},
    "split_by_length=2": {"split_by_length": 2},
    "split_by_length=4": {"split_by_length": 4},
    "group_by_length": {"group_by_length": True},
    "split_by_length=4 + bf16": {"split_by_length": 4, "bf16": True},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="tiny", choices=["tiny", "small"])
    p.add_argument("--task", default="overthink")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=40, help="timed optimizer steps per variant")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--out", default="outputs/bench_sft.json")
    return p.parse_args(argv)


def _padding_share(trainer, steps: int, batch_size: int) -> float:
    """Padded / all positions of the forward passes the sampler's next ``steps`` batches would make
    (drawn from a copy of the sampler state, so the timed run is not disturbed)."""
    from rl.sft_trainer import split_by_length

    state = trainer.sampler.state_dict()
    real = total = 0
    for _ in range(steps):
        idx = trainer.sampler.draw(batch_size)
        for piece in split_by_length(idx, trainer.examples, trainer.args.split_by_length):
            lengths = [len(trainer.examples[i][0]) for i in piece]
            real += sum(lengths)
            total += max(lengths) * len(lengths)
    trainer.sampler.load_state_dict(state)
    return 1.0 - real / total


def bench_variant(model_dir: Path, out: Path, args, fields: dict) -> dict:
    from rl.config import SFTConfig
    from rl.sft_trainer import SFTTrainer

    cfg = SFTConfig(model=str(model_dir), dataset=f"task:{args.task}", dataset_num_examples=4096,
                    per_device_train_batch_size=args.batch_size, learning_rate=3e-3, max_steps=args.steps + 3,
                    output_dir=str(out), report_to=["jsonl"], save_final=False, disable_progress_bar=True, seed=0,
                    **fields)
    trainer = SFTTrainer(cfg.model, args=cfg)
    padding = _padding_share(trainer, args.steps + 3, args.batch_size)
    times = []
    for step in range(args.steps + 3):
        t0 = time.perf_counter()
        trainer.training_step()
        if step >= 3:  # warm-up steps are not timed
            times.append(time.perf_counter() - t0)
    return {"s_per_step": statistics.median(times), "padding_share": padding}


def main(argv=None) -> int:
    import torch

    from rl.experiments.tiny_model import make_tiny_model

    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny_model(Path(tmp) / "model", size=args.size, seed=0)
        for name, fields in VARIANTS.items():
            results[name] = bench_variant(model_dir, Path(tmp) / name, args, fields)
            print(f"[bench_sft] {name}: {results[name]['s_per_step']:.3f} s/step", flush=True)
    base = results["plain"]["s_per_step"]
    print(f"\n{args.size} model, batch {args.batch_size}, task {args.task}, {torch.get_num_threads()} threads, "
          f"median of {args.steps} steps\n")
    print("| variant | s/step | speed-up vs plain | padding share | gradient |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        grad = ("other batches" if name == "group_by_length" else "bf16 autocast (fp32 weights)" if "bf16" in name
                else "same as plain")
        print(f"| {name} | {r['s_per_step']:.3f} | {base / r['s_per_step']:.2f}x | {100 * r['padding_share']:.0f}% | {grad} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
