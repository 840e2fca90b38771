"""completion_logprobs on fp32 logits (whole-batch log-softmax) gives the per-row loop's log-probs,
entropies and gradients: the loop it replaced is written out here as the reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rl.modeling import completion_logprobs, load_model


def _per_row_reference(model, prompt_ids, prompt_mask, completion_ids, completion_attn, temperature):
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention = torch.cat([prompt_mask, completion_attn], dim=1)
    position_ids = (attention.cumsum(dim=1) - 1).clamp(min=0)
    T = completion_ids.shape[1]
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=position_ids, logits_to_keep=T + 1,
                   use_cache=False).logits[:, :-1, :]
    logps, ents = [], []
    for i in range(logits.shape[0]):
        row = logits[i].float() / temperature
        lse = torch.logsumexp(row, dim=-1)
        logps.append(row.gather(-1, completion_ids[i].unsqueeze(-1)).squeeze(-1) - lse)
        with torch.no_grad():
            ents.append(lse - (F.softmax(row, dim=-1) * row).sum(-1))
    return torch.stack(logps), torch.stack(ents)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_batched_logprobs_equal_the_per_row_loop(tiny_model_dir, temperature):
    model = load_model(str(tiny_model_dir))
    g = torch.Generator().manual_seed(0)
    N, P, T = 6, 9, 11
    prompt_ids = torch.randint(5, 300, (N, P), generator=g)
    prompt_mask = torch.ones(N, P, dtype=torch.long)
    prompt_mask[:3, :4] = 0  # left padding
    completion_ids = torch.randint(5, 300, (N, T), generator=g)
    completion_attn = torch.ones(N, T, dtype=torch.long)
    completion_attn[2:, 7:] = 0  # right padding
    weights = torch.randn(N, T, generator=g) * completion_attn

    def run(fn):
        model.zero_grad(set_to_none=True)
        logp, ent = fn()
        (logp * weights).sum().backward()
        return logp.detach(), ent, {n: p.grad.clone() for n, p in model.named_parameters()}

    lp, ent, grads = run(lambda: completion_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_attn,
                                                     temperature=temperature, with_entropy=True))
    ref_lp, ref_ent, ref_grads = run(lambda: _per_row_reference(model, prompt_ids, prompt_mask, completion_ids,
                                                                completion_attn, temperature))
    assert torch.allclose(lp, ref_lp, atol=1e-6) and torch.allclose(ent, ref_ent, atol=1e-6)
    for k in ref_grads:
        assert torch.allclose(grads[k], ref_grads[k], rtol=1e-5, atol=1e-7), k
