"""Supervised fine-tuning (full or LoRA) on prompt/completion pairs, loss on completion
tokens only. Same config, tracking and exact-resume checkpoint machinery as GRPO.

Rows: ``prompt`` (chat messages or text) and ``completion`` (assistant messages or
text), TRL's prompt-completion layout. The completion ends with the tokenizer's eos.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from curriculum.data import DatasetError, completion_text, render_prompt, validate_prompt
from curriculum.samplers import LengthGroupedBatches, PromptSampler
from rl.config import SFTConfig
from rl.trainer_base import BaseTrainer

IGNORE = -100


def validate_sft_dataset(dataset, name: str = "train_dataset") -> None:
    if len(dataset) == 0:
        raise DatasetError(f"{name} is empty")
    for field in ("prompt", "completion"):
        if field not in dataset.column_names:
            raise DatasetError(f"{name}: row 0 has no field {field!r} (columns: {dataset.column_names})")
    for i, row in enumerate(dataset):
        problem = validate_prompt(row["prompt"])
        if problem:
            raise DatasetError(f"{name}: row {i} field 'prompt' {problem}")
        c = row["completion"]
        if c is None or (isinstance(c, str) and not c.strip()) or (isinstance(c, list) and not c):
            raise DatasetError(f"{name}: row {i} field 'completion' is missing or empty")


def tokenize_example(
    tokenizer, prompt: Any, completion: Any, max_length: int, system_prompt: str | None = None,
    completion_only: bool = True,
):
    """-> (input_ids, labels) with labels = IGNORE on prompt tokens (on none if not ``completion_only``)."""
    p_ids = tokenizer(render_prompt(tokenizer, prompt, system_prompt), add_special_tokens=False)["input_ids"]
    text = completion_text(completion)
    if tokenizer.eos_token and not text.endswith(tokenizer.eos_token):
        text = text + tokenizer.eos_token
    c_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = (p_ids + c_ids)[:max_length]
    labels = ((([IGNORE] * len(p_ids)) if completion_only else p_ids) + c_ids)[:max_length]
    return ids, labels


def split_by_length(idx: list[int], examples: list[tuple[list[int], list[int]]], pieces: int) -> list[list[int]]:
    """Cut one batch of example indices into ``pieces`` groups of similar length (sorted by length,
    order kept among equals). Each group pads only to its own longest example; the batch, and so the
    gradient, is unchanged."""
    if pieces <= 1 or len(idx) <= 1:
        return [list(idx)]
    ordered = sorted(idx, key=lambda i: len(examples[i][0]))
    size = -(-len(ordered) // min(pieces, len(ordered)))  # ceil
    return [ordered[j : j + size] for j in range(0, len(ordered), size)]


def epoch_steps(args: SFTConfig, dataset_size: int, world_size: int | None = None) -> int:
    """Optimizer steps for ``args.num_train_epochs`` passes over ``dataset_size`` examples:
    ``ceil(epochs * size / (per_device_train_batch_size * gradient_accumulation_steps * processes))``.
    ``processes`` defaults to ``$WORLD_SIZE`` (set by accelerate / torchrun; 1 without)."""
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(1, world_size)
    return max(1, math.ceil(args.num_train_epochs * dataset_size / per_step))


class SFTTrainer(BaseTrainer):
    def __init__(self, model: Any, args: SFTConfig, train_dataset: Any = None, processing_class: Any = None) -> None:
        if train_dataset is None:
            from curriculum.data import load_dataset_spec

            train_dataset = load_dataset_spec(
                args.dataset, args.dataset_split, args.dataset_num_examples, args.seed, args.dataset_kwargs
            )
        validate_sft_dataset(train_dataset)
        if args.num_train_epochs > 0:  # epochs -> steps, before the scheduler is built from max_steps
            args = dataclasses.replace(args, max_steps=epoch_steps(args, len(train_dataset)))
        super().__init__(model, args, processing_class)
        self.args: SFTConfig = args
        self.examples = [
            tokenize_example(
                self.tokenizer, r["prompt"], r["completion"], args.max_length, args.system_prompt, args.completion_only_loss
            )
            for r in train_dataset
        ]
        self.sampler = PromptSampler(
            len(self.examples), seed=args.seed, rank=self.accelerator.process_index, world_size=self.accelerator.num_processes
        )
        # per example, the tokens its loss counts (labels after the one-position shift)
        self.label_tokens = [sum(1 for x in labels[1:] if x != IGNORE) for _, labels in self.examples]
        if args.group_by_length:
            self.sampler = LengthGroupedBatches(self.sampler, [len(ids) for ids, _ in self.examples], args.length_group_pool)

    def _collate(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pad = self.tokenizer.pad_token_id
        items = [self.examples[i] for i in idx]
        L = max(len(ids) for ids, _ in items)
        input_ids = torch.full((len(items), L), pad, dtype=torch.long)  # [B, L]
        labels = torch.full((len(items), L), IGNORE, dtype=torch.long)  # [B, L]
        attention = torch.zeros((len(items), L), dtype=torch.long)  # [B, L]
        for i, (ids, lab) in enumerate(items):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(lab)] = torch.tensor(lab)
            attention[i, : len(ids)] = 1
        return input_ids, labels, attention

    def training_step(self) -> dict[str, float]:
        args = self.args
        t0 = time.time()
        dev = self.accelerator.device
        batches = [self.sampler.draw(args.per_device_train_batch_size) for _ in range(args.gradient_accumulation_steps)]
        pieces = [piece for idx in batches for piece in split_by_length(idx, self.examples, args.split_by_length)]
        # the loss is the mean over every completion token of the step: each piece's token sum is divided
        # by the step's count, so pieces and accumulation add up to exactly the whole batch's gradient
        n_tokens = sum(self.label_tokens[i] for idx in batches for i in idx)
        total_loss = 0.0
        for j, idx in enumerate(pieces):
            input_ids, labels, attention = self._collate(idx)
            ctx = self.accelerator.no_sync(self.model) if j < len(pieces) - 1 else nullcontext()
            with ctx:
                with self.accelerator.autocast():
                    logits = self.model(input_ids=input_ids.to(dev), attention_mask=attention.to(dev)).logits
                shift_logits = logits[:, :-1, :].float()  # [B, L-1, V]
                shift_labels = labels[:, 1:].to(dev)  # [B, L-1]
                loss_sum = F.cross_entropy(
                    shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                    ignore_index=IGNORE, reduction="sum",
                )
                loss = loss_sum / max(n_tokens, 1)
                self.accelerator.backward(loss)
            total_loss += float(loss.detach())
        grad_norm = self.clip_and_step()
        metrics = {
            "loss": total_loss,
            "grad_norm": grad_norm,
            "tokens": float(n_tokens),
            "time/step": time.time() - t0,
        }
        return self.reduce_metrics(metrics)

    def extra_state(self):
        return {}, {"sampler": self.sampler.state_dict()}

    def load_extra_state(self, shared, local):
        if "sampler" in local:
            self.sampler.load_state_dict(local["sampler"])

