"""rl/sharding.py in one process: the unsharded paths are what they were, DeepSpeed is refused on CPU,
and the export model holds exactly the state it was given. The 2-process FSDP2 runs are in
test_sharded_training.py."""

from __future__ import annotations

import pytest
import torch

from rl import sharding


def _model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_a_deepspeed_config_is_refused_on_cpu_with_the_reason(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(RuntimeError, match="DeepSpeed .* needs a GPU"):
        sharding.make_accelerator("no")


def test_without_sharding_the_helpers_change_nothing(tiny_model_dir):
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    assert not sharding.is_sharded(acc) and sharding.sharding_name(acc) == "none"
    model = _model(tiny_model_dir)
    with sharding.gathered(model, acc) as m:
        assert m is model
    state = sharding.full_state_dict(model, acc)
    with torch.no_grad():
        model.model.norm.weight.add_(1.0)
    assert not torch.equal(state["model.norm.weight"], model.model.norm.weight)  # a copy, not a view
    out = model(input_ids=torch.tensor([[3, 4, 5]])).logits.pow(2).mean()
    out.backward()
    params = [p for p in model.parameters()]
    expected = float(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
    assert sharding.clip_grad_norm(acc, params, 0.0) == pytest.approx(expected, rel=1e-6)
    sharding.empty_forward([model], acc, 0)  # nothing to align without sharding


def test_the_export_model_holds_exactly_the_state(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = _model(tiny_model_dir)
    state = {k: v.clone() + 0.01 for k, v in model.state_dict().items()}
    plain = sharding.plain_model_from_state(model.config, state)
    plain.save_pretrained(tmp_path / "out")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32).state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
