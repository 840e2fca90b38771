import torch

from rl.batch import collate
from rl.modeling import completion_logprobs, load_model, load_tokenizer
from rollout.hf import HFEngine
from rollout.types import RolloutEngine, SamplingConfig


def _prompts(tok):
    texts = ["Compute: 1 + 2", "Compute: 3 * 4 - 5 + 6"]  # different lengths -> left padding
    return [tok(tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True),
                add_special_tokens=False)["input_ids"] for t in texts]


def test_groups_shapes_and_protocol(tiny_model_dir):
    tok, model = load_tokenizer(str(tiny_model_dir)), load_model(str(tiny_model_dir))
    engine = HFEngine(model, tok)
    assert isinstance(engine, RolloutEngine)
    torch.manual_seed(0)
    groups = engine.generate(_prompts(tok), 3, SamplingConfig(max_new_tokens=10))
    assert [len(g) for g in groups] == [2 * 0 + 3, 3]
    for gi, g in enumerate(groups):
        for t in g:
            assert t.group_index == gi and 1 <= len(t.completion_ids) <= 10
            assert t.finish_reason in ("stop", "length")
            if t.finish_reason == "stop":
                assert t.completion_ids[-1] in engine.eos_token_ids
            assert len(t.logprobs) == len(t.completion_ids)


def test_sampling_logprobs_match_trainer_logprobs(tiny_model_dir):
    """The engine's sampling log-probs (T=1, no top-p) equal the trainer's recomputation,
    which checks left-padding position ids end to end."""
    tok, model = load_tokenizer(str(tiny_model_dir)), load_model(str(tiny_model_dir)).eval()
    torch.manual_seed(1)
    groups = HFEngine(model, tok).generate(_prompts(tok), 2, SamplingConfig(max_new_tokens=8))
    batch = collate([t for g in groups for t in g], tok.pad_token_id)
    with torch.no_grad():
        logp, _ = completion_logprobs(model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids,
                                      batch.attention_mask_completion)
    mask = batch.attention_mask_completion.bool()
    assert torch.allclose(logp[mask], batch.sampling_logprobs[mask], atol=1e-4)


def test_greedy_is_deterministic(tiny_model_dir):
    tok, model = load_tokenizer(str(tiny_model_dir)), load_model(str(tiny_model_dir))
    engine = HFEngine(model, tok)
    cfg = SamplingConfig(max_new_tokens=8, greedy=True)
    a = engine.generate(_prompts(tok), 2, cfg)
    b = engine.generate(_prompts(tok), 2, cfg)
    assert [t.completion_ids for g in a for t in g] == [t.completion_ids for g in b for t in g]
    assert a[0][0].completion_ids == a[0][1].completion_ids
