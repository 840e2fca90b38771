"""A sampling loop over a ``transformers`` causal LM that drops finished rows from the batch.

``model.generate`` keeps every row of a batch in every decoding step until the longest one ends
(finished rows are fed pad tokens), so a batch whose completions are 90 tokens on average but
200 at most pays for 200 x B token positions. :func:`sample_compact` removes a row from the
batch, and from its KV cache, as soon as it samples an end-of-sequence token, so the cost
follows the tokens actually generated.

The distribution is ``generate``'s: the same logits, the same warpers in the same order
(temperature, top-k, top-p, from ``transformers``), ``min_new_tokens`` as eos suppression, one
``torch.multinomial`` draw per step. While no row has finished the draws are the same as
``generate``'s, so with equal lengths (``min_new_tokens`` = ``max_new_tokens``) the samples are
identical for one seed (tested); once rows leave, the random stream differs (the samples are
equally distributed). Greedy decoding gives ``generate``'s tokens.

Stop strings are not handled here (the engine falls back to ``generate`` for them).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from rollout.types import SamplingConfig


def _warpers(sampling: SamplingConfig) -> list[Any]:
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    out: list[Any] = []
    if sampling.greedy:
        return out
    if sampling.temperature != 1.0:
        out.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        out.append(TopKLogitsWarper(top_k=sampling.top_k))
    if sampling.top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=sampling.top_p))
    return out


@torch.no_grad()
def sample_compact(
    model: Any,
    input_ids: Tensor,  # [B, P] left-padded
    attention: Tensor,  # [B, P]
    sampling: SamplingConfig,
    eos_token_ids: Sequence[int],
) -> tuple[list[list[int]], list[list[float]] | None]:
    """Sample up to ``sampling.max_new_tokens`` tokens for each row; a row leaves the batch at its
    first eos (which it keeps). Returns (token ids per row, the sampler's log-probs per row or None:
    log-softmax of the processed logits, as the engine computes them from ``generate``'s scores)."""
    from transformers import DynamicCache

    B = input_ids.shape[0]
    device = input_ids.device
    eos = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long, device=device)
    warpers = _warpers(sampling)
    want_lp = sampling.return_logprobs
    tokens: list[list[int]] = [[] for _ in range(B)]
    logps: list[list[float]] = [[] for _ in range(B)]
    rows = torch.arange(B)  # the original row of each active batch row
    attention = attention.to(device)
    position = (attention.cumsum(dim=1) - 1).clamp(min=0)  # [B, P]
    cache = DynamicCache()
    out = model(input_ids=input_ids, attention_mask=attention, position_ids=position, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    position = position[:, -1:]  # [B, 1]
    for step in range(sampling.max_new_tokens):
        scores = out.logits[:, -1, :].float()  # [b, V]
        if step < sampling.min_new_tokens:
            scores[:, eos] = float("-inf")
        if sampling.greedy:
            nxt = scores.argmax(dim=-1)
        else:
            for w in warpers:  # transformers' warpers read only the scores
                scores = w(None, scores)
            nxt = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)  # [b]
        lp = scores.log_softmax(-1).gather(-1, nxt.unsqueeze(-1)).squeeze(-1).tolist() if want_lp else None
        ids = nxt.tolist()
        for j, r in enumerate(rows.tolist()):
            tokens[r].append(ids[j])
            if lp is not None:
                logps[r].append(lp[j])
        if step == sampling.max_new_tokens - 1:
            break
        done = torch.isin(nxt, eos)  # [b]
        if bool(done.all()):
            break
        if bool(done.any()):  # finished rows leave the batch and the cache
            keep = (~done).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, nxt, attention, position = rows[keep.cpu()], nxt[keep], attention[keep], position[keep]
        attention = torch.cat([attention, attention.new_ones((attention.shape[0], 1))], dim=1)
        position = position + 1
        out = model(input_ids=nxt.unsqueeze(1), attention_mask=attention, position_ids=position,
                    past_key_values=cache, use_cache=True)
    return tokens, (logps if want_lp else None)
