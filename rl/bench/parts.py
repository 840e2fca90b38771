"""``bench_grpo_step.py --parts``: each optimisation alone, before/after in one process on the same
work, interleaved A, B, A, B so that slow load changes hit both (the step-time comparison with TRL
is :mod:`rl.bench.grpo_step`)."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rl.bench.common import bench_dataset, min_new_tokens, settings


def bench_parts(args, model_dir: Path, repeats: int = 5) -> dict[str, Any]:
    """Each optimisation alone, before/after in one process on the same work, interleaved A, B, A, B
    (``repeats`` pairs), so that slow load changes hit both: the rollout of one step's prompts with
    ``generate`` vs the compact loop, and the update's forward + backward of one fixed batch as one
    padded pass vs ``split_by_length`` 4 trimmed pieces (a batch of the trainer's own sampling, whatever
    ``--lengths`` says: forced lengths leave nothing to trim), and one AdamW step over the model's
    parameters with the for-loop (``optim: adamw_torch``) vs the fused kernel (``adamw_torch_fused``).
    Median seconds of each and the ratio."""
    import torch

    from rl.config import OPTIMIZERS, GRPOConfig
    from rl.grpo_trainer import GRPOTrainer
    from rl.losses import aggregation_denominator, term_denominators
    from rl.update_padding import length_sorted_chunks, trim_padding

    torch.set_num_threads(args.threads)
    s = settings(args)
    cfg = GRPOConfig(model=str(model_dir), dataset=f"task:{args.task}", reward_funcs=["accuracy"], loss_type="clipped",
                     output_dir=tempfile.mkdtemp(prefix="bench-parts-"), report_to=[], save_final=False,
                     disable_progress_bar=True, num_threads=args.threads, **s)
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=bench_dataset(args))
    sampling = dataclasses.replace(trainer.sampling, min_new_tokens=min_new_tokens(args))
    rows = [trainer.train_dataset[i] for i in trainer.sampler.draw(args.prompts_per_step)]
    prompt_ids = trainer._prompt_ids(rows)
    gen: dict[str, list[float]] = {"generate": [], "compact": []}
    tokens: dict[str, list[int]] = {"generate": [], "compact": []}
    for r in range(repeats):
        for mode in ("generate", "compact"):
            trainer.engine.decode = mode
            torch.manual_seed(r)
            t0 = time.perf_counter()
            groups = trainer.engine.generate(prompt_ids, args.num_generations, sampling)
            gen[mode].append(time.perf_counter() - t0)
            tokens[mode].append(sum(len(t.completion_ids) for g in groups for t in g))
    trainer.engine.decode = "generate"
    trainer._timing = {k: 0.0 for k in ("rollout", "reward", "logprobs", "update", "weight_sync")}
    trainer._reward_metrics = {}
    batch = trainer.build_batch(trainer.rollout_and_score(trainer.sampler.draw(args.prompts_per_step)))
    batch.advantages = trainer.advantage_fn(batch, cfg)
    dens = term_denominators(trainer.loss_terms, batch.completion_mask, batch.rollout_masks, cfg.loss_agg_mode)
    kl_den = aggregation_denominator(batch.completion_mask, cfg.loss_agg_mode)
    upd: dict[str, list[float]] = {"one_pass": [], "split_by_length_4": []}
    trainer.model.train()
    for _ in range(repeats):
        for name, pieces in (("one_pass", 1), ("split_by_length_4", 4)):
            trainer.model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            for idx in length_sorted_chunks(batch.completion_lengths, 1, pieces):
                mb = batch.select(idx)
                loss, _ = trainer._micro_loss(trim_padding(mb) if pieces > 1 else mb, dens, kl_den)
                loss.backward()
            upd[name].append(time.perf_counter() - t0)
    # the last backward's gradients; each optimizer keeps its own state (both step the same weights)
    opts = {name: torch.optim.AdamW(trainer.model.parameters(), lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                    eps=cfg.adam_epsilon, **kw) for name, kw in OPTIMIZERS.items()}
    opt: dict[str, list[float]] = {name: [] for name in opts}
    for _ in range(repeats):
        for name, o in opts.items():
            t0 = time.perf_counter()
            o.step()
            opt[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in {**gen, **upd, **opt}.items()}
    lengths = batch.completion_lengths.float()
    return {
        "rollout_s": {k: med[k] for k in gen}, "rollout_tokens": {k: statistics.mean(v) for k, v in tokens.items()},
        "rollout_ratio": med["compact"] / med["generate"],
        "update_fwd_bwd_s": {k: med[k] for k in upd}, "update_ratio": med["split_by_length_4"] / med["one_pass"],
        "optimizer_step_s": {k: med[k] for k in opt},
        "optimizer_ratio": med["adamw_torch_fused"] / med["adamw_torch"],
        "padding_share": float(1 - lengths.sum() / (lengths.max() * len(lengths))), "repeats": repeats,
        "raw": {**gen, **upd, **opt},
    }


def parts_table(parts: dict[str, dict[str, Any]]) -> str:
    """A markdown table of :func:`bench_parts` results, a row per model."""
    lines = ["| model | rollout generate s | compact s | ratio | update 1 pass s | 4 pieces s | ratio | padding "
             "| AdamW loop s | fused s | ratio |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in parts.items():
        lines.append(f"| {name} | {p['rollout_s']['generate']:.3f} | {p['rollout_s']['compact']:.3f} | "
                     f"{p['rollout_ratio']:.2f} | {p['update_fwd_bwd_s']['one_pass']:.3f} | "
                     f"{p['update_fwd_bwd_s']['split_by_length_4']:.3f} | {p['update_ratio']:.2f} | "
                     f"{100 * p['padding_share']:.0f}% | {p['optimizer_step_s']['adamw_torch']:.4f} | "
                     f"{p['optimizer_step_s']['adamw_torch_fused']:.4f} | {p['optimizer_ratio']:.2f} |")
    return "\n".join(lines)
