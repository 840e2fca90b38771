"""Checkpoint names of a PEFT policy, and the exported weights equal the merged model's."""

from __future__ import annotations

import torch

from rollout.weights import checkpoint_name, policy_weights


def test_checkpoint_names():
    assert checkpoint_name("base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight") == "model.layers.0.self_attn.q_proj.weight"
    assert checkpoint_name("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight") is None
    assert checkpoint_name("base_model.model.lm_head.modules_to_save.default.weight") == "lm_head.weight"
    assert checkpoint_name("base_model.model.lm_head.original_module.weight") is None
    assert checkpoint_name("model.norm.weight") == "model.norm.weight"


def test_lora_export_equals_merge_and_unload(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], init_lora_weights=False),
    )
    with policy_weights(model) as weights:
        exported = {n: t.clone() for n, t in weights}
    merged = model.merge_and_unload().state_dict()
    assert set(exported) == set(merged)
    for n, t in merged.items():
        assert torch.allclose(exported[n], t, atol=1e-6), n
    # the LoRA delta is really in there (the export is not just the base weights)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    assert not torch.allclose(exported["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])

