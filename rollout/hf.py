"""Rollouts with transformers ``generate`` (batched, KV cache, sampling).

The reference engine: it runs on any device the model is on, shares the trainer's
weights (so ``sync_weights`` is a no-op) and is what the vLLM engine is tested against.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from rollout.types import EngineBase, SamplingConfig, Trajectory


class HFEngine(EngineBase):
    """Generate with a ``transformers`` causal LM.

    ``model`` may be wrapped (DDP / accelerate); generation uses the unwrapped module.
    """

    def __init__(self, model: Any, tokenizer: Any, max_batch_size: int = 0, unwrap=None, decode: str = "generate") -> None:
        if decode not in ("generate", "compact"):
            raise ValueError(f"decode must be 'generate' or 'compact', got {decode!r}")
        # generate: transformers' generate(); compact: rollout.hf_decode (finished rows leave the batch)
        self.decode = decode
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size  # sequences per generate() call; 0 = no limit
        self._unwrap = unwrap or (lambda m: getattr(m, "module", m))
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        eos = getattr(getattr(self._unwrap(model), "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_token_ids: set[int] = set(eos if isinstance(eos, (list, tuple)) else [eos])

    def sync_weights(self, model: Any) -> None:  # the engine generates from the live model
        self.model = model

    def generates_from(self, model: Any) -> bool:
        return self.model is model

    @torch.no_grad()
    def generate(
        self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingConfig
    ) -> list[list[Trajectory]]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        model = self._unwrap(self.model)
        # expand prompts n times so that each generate() chunk holds whole groups
        flat = [(g, list(p)) for g, p in enumerate(prompt_ids) for _ in range(n)]
        step = self.max_batch_size if self.max_batch_size > 0 else len(flat)
        step = max(n, (step // n) * n)
        out: list[Trajectory] = []
        was_training = model.training
        model.eval()
        try:
            for start in range(0, len(flat), step):
                out.extend(self._generate_chunk(model, flat[start : start + step], sampling))
        finally:
            if was_training:
                model.train()
        groups: list[list[Trajectory]] = [[] for _ in prompt_ids]
        for t in out:
            groups[t.group_index].append(t)
        return groups

    def _stop_cut(self, ids: list[int], stop: Sequence[str]) -> int | None:
        """The shortest prefix length whose decoding contains a stop string (None if none does)."""
        def hit(k: int) -> bool:
            text = self.tokenizer.decode(ids[:k], skip_special_tokens=False)
            return any(s in text for s in stop)

        if not ids or not hit(len(ids)):
            return None
        lo, hi = 1, len(ids)  # hit(hi) holds; find the smallest such k
        while lo < hi:
            mid = (lo + hi) // 2
            if hit(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _generate_chunk(
        self, model: Any, items: list[tuple[int, list[int]]], sampling: SamplingConfig
    ) -> list[Trajectory]:
        device = next(model.parameters()).device
        p_len = max(len(p) for _, p in items)
        input_ids = torch.full((len(items), p_len), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(items), p_len), dtype=torch.long)
        for i, (_, p) in enumerate(items):  # left padding
            input_ids[i, p_len - len(p) :] = torch.tensor(p, dtype=torch.long)
            attention[i, p_len - len(p) :] = 1
        if self.decode == "compact" and not sampling.stop:
            return self._compact_chunk(model, items, input_ids.to(device), attention.to(device), sampling)
        gen_kwargs: dict[str, Any] = dict(
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=self.pad_token_id,
            eos_token_id=sorted(self.eos_token_ids),
            return_dict_in_generate=True,
            output_scores=sampling.return_logprobs,
            use_cache=True,
        )
        if sampling.min_new_tokens > 0:
            gen_kwargs["min_new_tokens"] = sampling.min_new_tokens
        if sampling.greedy:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            gen_kwargs.update(
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k if sampling.top_k > 0 else None,
            )
        if sampling.stop:
            gen_kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        res = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention.to(device), **gen_kwargs
        )
        seqs = res.sequences[:, p_len:].cpu()  # [B, T_gen]
        logprobs = None
        if sampling.return_logprobs and res.scores:
            # scores are the processed logits (after temperature / top-p), i.e. the sampler's distribution
            scores = torch.stack(res.scores, dim=1).float().log_softmax(-1)  # [B, T_gen, V]
            logprobs = scores.gather(-1, seqs.unsqueeze(-1).to(scores.device)).squeeze(-1).cpu()  # [B, T_gen]
        trajectories = []
        for i, (g, p) in enumerate(items):
            ids = seqs[i].tolist()
            end, finish = len(ids), "length"
            for j, tok in enumerate(ids):
                if tok in self.eos_token_ids:
                    end, finish = j + 1, "stop"  # keep the eos: the policy learns to stop
                    break
            ids = ids[:end]
            if sampling.stop:
                # a row that stopped at a stop string while others went on was filled with pad ids:
                # cut after the token that completed the first stop string (the sampled ids only)
                cut = self._stop_cut(ids, sampling.stop)
                if cut is not None:
                    ids, end, finish = ids[:cut], cut, "stop"
            lp = logprobs[i, :end].tolist() if logprobs is not None else None
            trajectories.append(
                Trajectory(
                    prompt_ids=p,
                    completion_ids=ids,
                    logprobs=lp,
                    finish_reason=finish,
                    text=self.tokenizer.decode(ids, skip_special_tokens=True),
                    group_index=g,
                )
            )
        return trajectories

    def _compact_chunk(self, model: Any, items: list[tuple[int, list[int]]], input_ids: torch.Tensor,
                       attention: torch.Tensor, sampling: SamplingConfig) -> list[Trajectory]:
        from rollout.hf_decode import sample_compact

        rows, logprobs = sample_compact(model, input_ids, attention, sampling, sorted(self.eos_token_ids))
        out = []
        for i, (g, p) in enumerate(items):
            ids = rows[i]  # ends at its first eos (kept) or at max_new_tokens
            finish = "stop" if ids and ids[-1] in self.eos_token_ids else "length"
            out.append(Trajectory(prompt_ids=p, completion_ids=ids, logprobs=logprobs[i] if logprobs is not None else None,
                                  finish_reason=finish, text=self.tokenizer.decode(ids, skip_special_tokens=True),
                                  group_index=g))
        return out
