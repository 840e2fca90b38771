"""The GRPO policy update: one scored batch -> old / reference log-probs -> the loss of every
micro-batch (accumulated with whole-batch denominators) -> optimizer steps -> weight sync.

A mixin of :class:`rl.grpo_trainer.GRPOTrainer` (the rollout half lives there). What it reads from
its host is declared on the class (``PolicyUpdate``'s annotations): the attributes and the methods that
:class:`rl.trainer_base.BaseTrainer` and the GRPO trainer provide.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any, Callable

import torch

from rl.batch import RolloutBatch
from rl.config import GRPOConfig
from rl.losses import LossTerm, aggregate, aggregation_denominator, compute_policy_loss, importance_correct, k3_kl, term_denominators
from rl.modeling import completion_logprobs
from rl.role_adapters import role_parts
from rl.sharding import empty_forward, empty_micro_batch_backward
from rl.update_padding import length_sorted_chunks, pad_columns, trim_padding
from rollout.types import RolloutEngine


class PolicyUpdate:
    """``_update(batch) -> metrics`` and its parts (see the module docstring)."""

    # what the host trainer provides (BaseTrainer: args, model, unwrapped_model, accelerator, tokenizer,
    # role_adapters, role_grad_norms, clip_and_step; GRPOTrainer: the rest)
    args: GRPOConfig
    model: Any
    unwrapped_model: Any
    ref_model: Any
    accelerator: Any
    tokenizer: Any
    engine: RolloutEngine
    loss_terms: list[LossTerm]
    role_adapters: list[str]
    role_grad_norms: dict[str, float]
    _timing: dict[str, float]
    clip_and_step: Callable[[], Any]

    @torch.no_grad()
    def _add_reference_logprobs(self, batch: RolloutBatch) -> None:
        """Old-policy log-probs (needed when mu > 1) and reference log-probs (beta > 0)."""
        args = self.args
        need_old = args.num_iterations > 1
        if not need_old and args.beta == 0:
            return
        old, ref = [], []
        T = batch.completion_ids.shape[1]
        for idx in self._micro_batches(batch.num_rollouts):
            mb = trim_padding(batch.select(idx))  # the same values, without all-padding columns
            if mb.num_rollouts == 0:  # a shortfall: nothing to score, but sharded forwards stay in step
                empty_forward([self.model] * need_old + [self.model if self.ref_model is None else self.ref_model] * (args.beta > 0),
                              self.accelerator, self.tokenizer.pad_token_id)
                continue
            if need_old and not self.role_adapters:
                old.append(self._logp(self.model, mb)[0])
            elif need_old:  # role adapters: each role's rows under its adapter, back in the batch's row order
                logp = None
                for ctx, rows in role_parts(self.unwrapped_model, self.role_adapters, mb.role, torch.arange(mb.num_rollouts)):
                    with ctx:
                        part = self._logp(self.model, mb.select(rows))[0]
                    if logp is None:
                        logp = part.new_zeros(mb.completion_ids.shape)
                    logp[rows.to(part.device)] = part
                old.append(logp)
            if args.beta > 0:
                if self.ref_model is not None:
                    ref.append(self._logp(self.ref_model, mb)[0])
                else:  # PEFT: the reference is the base model with adapters off
                    with self.unwrapped_model.disable_adapter():
                        ref.append(self._logp(self.model, mb)[0])
        if old:
            batch.old_logprobs = torch.cat([pad_columns(x, T) for x in old])
        if ref:
            batch.ref_logprobs = torch.cat([pad_columns(x, T) for x in ref])

    def _micro_batches(self, n: int) -> list[torch.Tensor]:
        """Exactly ``gradient_accumulation_steps`` index chunks (some may be empty on a shortfall)."""
        k = self.args.gradient_accumulation_steps
        return list(torch.arange(n).tensor_split(k))

    def _logp(self, model: Any, mb: RolloutBatch, with_entropy: bool = False):
        dev = self.accelerator.device
        return completion_logprobs(
            model,
            mb.prompt_ids.to(dev),
            mb.prompt_mask.to(dev),
            mb.completion_ids.to(dev),
            mb.attention_mask_completion.to(dev),
            temperature=self.args.temperature,
            with_entropy=with_entropy,
        )

    def _update(self, batch: RolloutBatch) -> dict[str, float]:
        args = self.args
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        maxes: dict[str, float] = {}
        grad_norms = []
        # split_by_length > 1: each accumulation chunk in length-sorted pieces (rl/update_padding.py)
        chunks = length_sorted_chunks(batch.completion_lengths, args.gradient_accumulation_steps, args.split_by_length)
        # every micro-batch's loss is divided by the whole batch's token (or row) count, so the
        # accumulated gradient equals the full batch's, however the tokens fall into micro-batches
        mode = args.loss_agg_mode
        denominators = term_denominators(self.loss_terms, batch.completion_mask, batch.rollout_masks, mode)
        kl_denominator = aggregation_denominator(batch.completion_mask, mode)
        # train mode for the update (gradient checkpointing only recomputes in train mode; models load in
        # eval mode); rollouts and the old/reference log-probs stay in eval mode. Hub reasoning models have
        # dropout 0, so both modes give the same log-probs and the first ratio is exactly 1.
        self.model.train()
        try:
            self._accumulate(batch, chunks, denominators, kl_denominator, sums, counts, maxes, grad_norms)
        finally:
            self.model.eval()
        t_sync = time.time()
        self.engine.sync_weights(self.model)
        self._timing["weight_sync"] += time.time() - t_sync
        # a term's loss is a share of the whole batch's loss in each micro-batch: its shares add up
        iters = max(1, args.num_iterations)
        out = {
            k: maxes[k] if k in maxes else sums[k] / iters if _is_loss_key(k) else sums[k] / counts[k] for k in sums
        }
        out["grad_norm"] = sum(grad_norms) / len(grad_norms)
        out.update({f"grad_norm/{k}": v for k, v in self.role_grad_norms.items()})  # the last step's
        return out

    def _accumulate(self, batch: RolloutBatch, chunks, denominators, kl_denominator, sums, counts, maxes,
                    grad_norms) -> None:
        """The optimizer steps of one batch: ``num_iterations`` passes over the micro-batches, their
        metrics summed into ``sums`` / ``counts`` / ``maxes`` and each step's grad norm appended."""
        args = self.args
        for _ in range(args.num_iterations):
            for j, idx in enumerate(chunks):
                last = j == len(chunks) - 1
                ctx = nullcontext() if last else self.accelerator.no_sync(self.model)
                with ctx:
                    if len(idx) == 0:  # keep the collective calls (DDP, FSDP2) aligned across processes
                        empty_micro_batch_backward(self.model, self.accelerator, self.tokenizer.pad_token_id)
                        continue
                    # role adapters: each role's rows with its adapter active (one part otherwise)
                    ms = []
                    for rctx, rows in role_parts(self.unwrapped_model, self.role_adapters, batch.role, idx):
                        with rctx:
                            loss, m = self._micro_loss(trim_padding(batch.select(rows)), denominators, kl_denominator)
                            self.accelerator.backward(loss)
                        ms.append(m)
                for m in ms:
                    for k, v in m.items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                        counts[k] = counts.get(k, 0) + 1
                        if k.endswith("_max"):  # maxima stay maxima over micro-batches
                            maxes[k] = max(maxes.get(k, float("-inf")), float(v))
            grad_norms.append(self.clip_and_step())

    def _micro_loss(
        self, mb: RolloutBatch, denominators: list[float], kl_denominator: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """One micro-batch's share of the step's loss (divided by the whole batch's counts)."""
        dev = self.accelerator.device
        with self.accelerator.autocast():
            logp, entropy = self._logp(self.model, mb, with_entropy=True)
        mask = mb.completion_mask.to(dev)  # [n, T]
        old = mb.old_logprobs.to(dev) if mb.old_logprobs is not None else logp.detach()
        if mb.forced_logprobs is not None:  # tokens the rollout forced: their behaviour log-prob is the rollout's
            forced = mb.forced_logprobs.to(dev)  # own choice, so the ratio there is pi_theta / proposal (importance
            old = torch.where(torch.isnan(forced), old, forced.to(old.dtype))  # sampling, rollout/prefixes.py)
        adv = {k: v.to(dev) for k, v in mb.advantages.items()}
        mismatch: dict[str, float] = {}
        if mb.sampling_logprobs is not None:
            adv, mismatch = importance_correct(adv, old, mb.sampling_logprobs.to(dev), mask, self.args.vllm_is_cap)
        loss, metrics = compute_policy_loss(
            logp, old, adv, mask, self.loss_terms, self.args,
            rollout_masks={k: v.to(dev) for k, v in mb.rollout_masks.items()},
            denominators=denominators,
        )
        denom = mask.sum().clamp(min=1)
        if self.args.beta > 0 and mb.ref_logprobs is not None:
            kl = k3_kl(logp, mb.ref_logprobs.to(dev))  # [n, T]
            loss = loss + self.args.beta * aggregate(
                kl, mask, self.args.loss_agg_mode, self.args.max_completion_length, kl_denominator
            )
            metrics["kl"] = float((kl.detach() * mask).sum() / denom)
        metrics["loss"] = loss.detach()  # the micro-batch's share of the step's loss, KL term included
        metrics["entropy"] = float((entropy.detach() * mask).sum() / denom)
        metrics.update(mismatch)
        return loss, {k: float(v) for k, v in metrics.items()}



def _is_loss_key(k: str) -> bool:
    """``loss`` and ``<term>/loss`` are shares of the step's loss per micro-batch: they add up."""
    return k == "loss" or k.endswith("/loss")
