"""The HF engine in a child process: it samples what the in-process engine samples from the same
weights and seed, follows weight syncs only when asked, and reports failures and a dead child."""

from __future__ import annotations

import time

import pytest
import torch

from rl.modeling import load_model, load_tokenizer
from rollout.hf import HFEngine
from rollout.hf_process import HFProcessEngine
from rollout.types import SamplingConfig

SAMPLING = SamplingConfig(max_new_tokens=12, return_logprobs=True)


def _ids(groups):
    return [t.completion_ids for g in groups for t in g]


@pytest.fixture(scope="module")
def model_and_engine(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    engine = HFProcessEngine(model, tok)
    yield model, tok, engine
    engine.close()


def test_child_samples_like_the_in_process_engine_and_syncs_on_request(model_and_engine):
    model, tok, engine = model_and_engine
    prompts = [tok("Compute: 3 + 4")["input_ids"], tok("Compute: 9 + 1")["input_ids"]]
    child = engine.generate(prompts, 3, SAMPLING, seed=5)
    torch.manual_seed(5)
    local = HFEngine(model, tok).generate(prompts, 3, SAMPLING)
    assert _ids(child) == _ids(local)
    lp_child = [x for g in child for t in g for x in t.logprobs]
    lp_local = [x for g in local for t in g for x in t.logprobs]
    assert max(abs(a - b) for a, b in zip(lp_child, lp_local)) < 1e-5
    assert _ids(engine.generate(prompts, 3, SAMPLING, seed=5)) == _ids(child)  # a seed gives the same request

    with torch.no_grad():  # the trainer's update: the child keeps its copy until a sync
        saved = [p.clone() for p in model.parameters()]
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    try:
        assert _ids(engine.generate(prompts, 3, SAMPLING, seed=5)) == _ids(child)
        engine.sync_weights(model)
        synced = engine.generate(prompts, 3, SAMPLING, seed=5)
        torch.manual_seed(5)
        assert _ids(synced) == _ids(HFEngine(model, tok).generate(prompts, 3, SAMPLING))
        assert _ids(synced) != _ids(child)
    finally:
        with torch.no_grad():
            for p, s in zip(model.parameters(), saved):
                p.copy_(s)
        engine.sync_weights(model)


def test_a_failed_request_names_the_child_error_and_the_engine_goes_on(model_and_engine):
    _, tok, engine = model_and_engine
    with pytest.raises(RuntimeError, match="rollout process: generate failed: IndexError"):
        engine.generate([[10**7]], 1, SAMPLING, seed=1)  # a token id outside the vocabulary
    assert len(engine.generate([tok("Compute: 1 + 1")["input_ids"]], 2, SAMPLING, seed=1)[0]) == 2


def test_a_dead_child_is_reported_with_its_exit_code(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    engine = HFProcessEngine(model, tok)
    try:
        engine._proc.kill()
        time.sleep(0.2)
        with pytest.raises(RuntimeError, match=r"exit code -9"):
            engine.generate([tok("Compute: 1 + 1")["input_ids"]], 1, SAMPLING)
    finally:
        engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.generate([[1]], 1, SAMPLING)
