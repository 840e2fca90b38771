"""Supervised fine-tuning (full or LoRA), loss on assistant tokens only. Same config, tracking,
checkpoint and exact-resume machinery as GRPO (:class:`rl.trainer_base.BaseTrainer`).

Rows (see :mod:`rl.sft_data`): ``prompt`` + ``completion`` (what the task generators write) or a
``messages`` conversation (every assistant turn trained). Options: ``packing`` (position-id
varlen packing, no attention or loss across examples), ``split_by_length``, ``group_by_length``,
``gradient_checkpointing``, ``use_peft`` (LoRA; ``save_final`` writes the merged model, plus the
adapter under ``final/adapter``), and a held-out ``eval_loss`` every ``eval_steps``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from curriculum.samplers import LengthGroupedBatches, PromptSampler
from rl.config import SFTConfig
from rl.sft_data import (  # noqa: F401  (re-exported: the names tests and scripts import from here)
    IGNORE,
    Example,
    collate_packed,
    collate_padded,
    loss_tokens,
    split_by_length,
    tokenize_example,
    tokenize_row,
    validate_sft_dataset,
)
from rl.trainer_base import BaseTrainer


def epoch_steps(args: SFTConfig, dataset_size: int, world_size: int | None = None) -> int:
    """Optimizer steps for ``args.num_train_epochs`` passes over ``dataset_size`` examples:
    ``ceil(epochs * size / (per_device_train_batch_size * gradient_accumulation_steps * processes))``.
    ``processes`` defaults to ``$WORLD_SIZE`` (set by accelerate / torchrun; 1 without)."""
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(1, world_size)
    return max(1, math.ceil(args.num_train_epochs * dataset_size / per_step))


def holdout_split(n: int, fraction: float, limit: int, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train indices, held-out indices); at least one row each side when fraction > 0."""
    if fraction <= 0:
        return list(range(n)), []
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = min(max(1, int(round(fraction * n))), n - 1, limit)
    return sorted(order[k:]), sorted(order[:k])


def load_eval_loss_dataset(args: SFTConfig):
    from curriculum.data import load_dataset_spec

    spec = args.eval_loss_dataset
    split = "test" if spec.startswith("task:") else args.dataset_split
    kwargs = args.dataset_kwargs if spec == args.dataset else None
    return load_dataset_spec(spec, split, args.eval_loss_num_examples, args.seed + 1, kwargs)


class SFTTrainer(BaseTrainer):
    def __init__(
        self, model: Any, args: SFTConfig, train_dataset: Any = None, processing_class: Any = None,
        eval_dataset: Any = None,
    ) -> None:
        if train_dataset is None:
            from curriculum.data import load_dataset_spec

            train_dataset = load_dataset_spec(
                args.dataset, args.dataset_split, args.dataset_num_examples, args.seed, args.dataset_kwargs
            )
        layout = validate_sft_dataset(train_dataset)
        if eval_dataset is None and args.eval_loss_dataset:
            eval_dataset = load_eval_loss_dataset(args)
        train_idx, held_idx = list(range(len(train_dataset))), []
        if eval_dataset is None:
            train_idx, held_idx = holdout_split(
                len(train_dataset), args.eval_holdout_fraction, args.eval_loss_num_examples, args.seed
            )
        eval_layout = validate_sft_dataset(eval_dataset, "eval_dataset") if eval_dataset is not None else layout
        if args.num_train_epochs > 0:  # epochs -> steps, before the scheduler is built from max_steps
            args = dataclasses.replace(args, max_steps=epoch_steps(args, len(train_idx)))
        super().__init__(model, args, processing_class)
        self.args: SFTConfig = args

        def tok(row: dict, lay: str) -> Example:
            return tokenize_row(self.tokenizer, row, lay, args.max_length, args.system_prompt, args.completion_only_loss)

        self.examples = [tok(train_dataset[i], layout) for i in train_idx]
        if eval_dataset is not None:
            rows = range(min(len(eval_dataset), args.eval_loss_num_examples))
            self.eval_examples = [tok(eval_dataset[i], eval_layout) for i in rows]
        else:
            self.eval_examples = [tok(train_dataset[i], layout) for i in held_idx]
        self.sampler = PromptSampler(
            len(self.examples), seed=args.seed, rank=self.accelerator.process_index, world_size=self.accelerator.num_processes
        )
        # per example, the tokens its loss counts (labels after the one-position shift)
        self.label_tokens = [loss_tokens(e) for e in self.examples]
        if args.group_by_length:
            self.sampler = LengthGroupedBatches(self.sampler, [len(ids) for ids, _ in self.examples], args.length_group_pool)
        if args.gradient_checkpointing and args.use_peft:
            # frozen embeddings: the checkpointed blocks' inputs must carry grad for LoRA weights to get one
            self.unwrapped_model.enable_input_require_grads()
        self.last_eval_loss: float | None = None

    # --- batches ---------------------------------------------------------------------------------
    def _collate(self, items: list[Example]) -> dict[str, torch.Tensor]:
        if self.args.packing:
            return collate_packed(items, self.args.max_length, self.tokenizer.pad_token_id)
        return collate_padded(items, self.tokenizer.pad_token_id)

    def _loss_sum(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """(sum of token cross-entropies, number of tokens) of one collated batch."""
        dev = self.accelerator.device
        inputs = {k: v.to(dev) for k, v in batch.items() if k != "labels"}
        with self.accelerator.autocast():
            logits = self.model(**inputs, use_cache=False).logits  # [B, L, V]
        shift_logits = logits[:, :-1, :].float()  # [B, L-1, V]
        shift_labels = batch["labels"][:, 1:].to(dev)  # [B, L-1]
        loss_sum = F.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
        )
        return loss_sum, int((shift_labels != IGNORE).sum())

    def training_step(self) -> dict[str, float]:
        args = self.args
        t0 = time.time()
        self.model.train()  # gradient checkpointing (and dropout) act only in train mode
        batches = [self.sampler.draw(args.per_device_train_batch_size) for _ in range(args.gradient_accumulation_steps)]
        pieces = [piece for idx in batches for piece in split_by_length(idx, self.examples, args.split_by_length)]
        # the loss is the mean over every completion token of the step: each piece's token sum is divided
        # by the step's count, so pieces and accumulation add up to exactly the whole batch's gradient
        n_tokens = sum(self.label_tokens[i] for idx in batches for i in idx)
        total_loss = 0.0
        rows = padded = 0
        for j, idx in enumerate(pieces):
            batch = self._collate([self.examples[i] for i in idx])
            rows += batch["input_ids"].shape[0]
            padded += batch["input_ids"].numel()
            ctx = self.accelerator.no_sync(self.model) if j < len(pieces) - 1 else nullcontext()
            with ctx:
                loss_sum, _ = self._loss_sum(batch)
                loss = loss_sum / max(n_tokens, 1)
                self.accelerator.backward(loss)
            total_loss += float(loss.detach())
        grad_norm = self.clip_and_step()
        real = sum(len(self.examples[i][0]) for idx in batches for i in idx)
        metrics = {
            "loss": total_loss,
            "grad_norm": grad_norm,
            "tokens": float(n_tokens),
            "rows": float(rows),
            "padding_frac": 1.0 - real / max(padded, 1),
            "time/step": time.time() - t0,
        }
        return self.reduce_metrics(metrics)

    # --- held-out loss -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate_loss(self) -> float | None:
        """Token-mean cross-entropy over the held-out examples (each process takes every
        ``num_processes``-th one; sums are reduced). None without held-out data."""
        if not self.eval_examples:
            return None
        was_training = self.model.training
        self.model.eval()
        mine = self.eval_examples[self.accelerator.process_index :: self.accelerator.num_processes]
        bs = self.args.per_device_eval_batch_size
        total = torch.zeros(2, dtype=torch.float64, device=self.accelerator.device)  # [loss sum, tokens]
        with self.gathered_weights():  # sharded: processes may run different numbers of batches here
            for j in range(0, len(mine), bs):
                loss_sum, n = self._loss_sum(self._collate(mine[j : j + bs]))
                total += torch.tensor([float(loss_sum), float(n)], dtype=torch.float64, device=total.device)
        if self.accelerator.num_processes > 1:
            total = self.accelerator.reduce(total, reduction="sum")
        self.model.train(was_training)
        return float(total[0] / total[1].clamp(min=1))

    def on_step_end(self, metrics: dict[str, float]) -> None:
        self.model.eval()  # generation-based evaluation runs without checkpointing; training_step turns it back
        super().on_step_end(metrics)
        every = self.args.eval_steps
        if every > 0 and self.eval_examples and self.global_step % every == 0:
            self.last_eval_loss = self.evaluate_loss()
            if self.tracker is not None:
                self.tracker.log(self.global_step, {"eval_loss": self.last_eval_loss})
            self.log_line(f"[eval] step {self.global_step}: eval_loss {self.last_eval_loss:.4f}")

    # --- state -------------------------------------------------------------------------------------
    def extra_state(self):
        return {}, {"sampler": self.sampler.state_dict()}

    def load_extra_state(self, shared, local):
        if "sampler" in local:
            self.sampler.load_state_dict(local["sampler"])
