"""The compact sampling loop (finished rows leave the batch) against transformers' ``generate``."""

import pytest
import torch

from rl.batch import collate
from rl.modeling import completion_logprobs, load_model, load_tokenizer
from rollout.hf import HFEngine
from rollout.types import SamplingConfig


def _prompts(tok):
    texts = ["Compute: 1 + 2", "Compute: 3 * 4 - 5 + 6", "Compute: 7"]  # different lengths -> left padding
    return [tok(tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True),
                add_special_tokens=False)["input_ids"] for t in texts]


def _run(engine, prompts, n, sampling, seed=0):
    torch.manual_seed(seed)
    return [t for g in engine.generate(prompts, n, sampling) for t in g]


@pytest.fixture(scope="module")
def tok_model(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir)), load_model(str(tiny_model_dir)).eval()


@pytest.mark.parametrize("sampling", [
    SamplingConfig(max_new_tokens=12, min_new_tokens=12),
    SamplingConfig(max_new_tokens=12, min_new_tokens=12, temperature=0.7, top_p=0.9, top_k=20),
])
def test_equal_lengths_give_generates_samples_and_logprobs(tok_model, sampling):
    # while no row has finished, the loop draws what generate() draws: the same samples for one seed
    tok, model = tok_model
    a = _run(HFEngine(model, tok), _prompts(tok), 3, sampling)
    b = _run(HFEngine(model, tok, decode="compact"), _prompts(tok), 3, sampling)
    assert [t.completion_ids for t in a] == [t.completion_ids for t in b]
    assert all(len(t.completion_ids) == 12 for t in b)
    for x, y in zip(a, b):
        assert x.finish_reason == y.finish_reason
        assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-6)


def test_rows_that_stop_early_leave_the_batch_and_greedy_matches_generate(tok_model):
    tok, model = tok_model
    prompts = _prompts(tok)
    sampling = SamplingConfig(max_new_tokens=16, greedy=True)
    ref = HFEngine(model, tok)
    plain = _run(ref, prompts, 1, sampling)
    # make a token the greedy rows emit mid-way an eos, so that rows finish at different steps
    counts = {}
    for t in plain:
        for tok_id in t.completion_ids[2:10]:
            counts[tok_id] = counts.get(tok_id, 0) + 1
    stop = max(counts, key=counts.get)
    gen, compact = HFEngine(model, tok), HFEngine(model, tok, decode="compact")
    gen.eos_token_ids = compact.eos_token_ids = {stop}
    a, b = _run(gen, prompts, 1, sampling), _run(compact, prompts, 1, sampling)
    assert [t.completion_ids for t in a] == [t.completion_ids for t in b]
    assert [t.finish_reason for t in a] == [t.finish_reason for t in b]
    assert any(t.finish_reason == "stop" and len(t.completion_ids) < 16 for t in b)


def test_sampling_logprobs_match_the_trainers_with_uneven_lengths(tok_model):
    """Rows leave the batch at their eos; each row's sampling log-probs still equal the trainer's
    full-sequence recomputation (positions and cache rows stay aligned)."""
    tok, model = tok_model
    prompts = _prompts(tok)
    engine = HFEngine(model, tok, decode="compact")
    first = _run(engine, prompts, 2, SamplingConfig(max_new_tokens=10), seed=3)
    engine.eos_token_ids = {first[0].completion_ids[1], first[1].completion_ids[3]}
    trajs = _run(engine, prompts, 4, SamplingConfig(max_new_tokens=10), seed=3)
    lengths = {len(t.completion_ids) for t in trajs}
    assert len(lengths) > 1  # some rows stopped early
    batch = collate(trajs, tok.pad_token_id)
    with torch.no_grad():
        logp, _ = completion_logprobs(model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids,
                                      batch.attention_mask_completion)
    mask = batch.attention_mask_completion.bool()
    assert torch.allclose(logp[mask], batch.sampling_logprobs[mask], atol=1e-4)


def test_stop_strings_fall_back_to_generate(tok_model):
    tok, model = tok_model
    sampling = SamplingConfig(max_new_tokens=8, greedy=True, stop=("zzz-never",))
    a = _run(HFEngine(model, tok), _prompts(tok), 1, sampling)
    b = _run(HFEngine(model, tok, decode="compact"), _prompts(tok), 1, sampling)
    assert [t.completion_ids for t in a] == [t.completion_ids for t in b]


def test_unknown_decode_is_refused(tok_model):
    tok, model = tok_model
    with pytest.raises(ValueError, match="decode"):
        HFEngine(model, tok, decode="fast")
