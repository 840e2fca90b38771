"""The start directory of a vLLM engine (config-free; the config side is tests/rl/test_engines.py)."""

from __future__ import annotations


def test_engine_model_dir_uses_the_source_or_exports(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rollout.factory import engine_model_dir

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert engine_model_dir(model, tok, tmp_path / "x") == str(tiny_model_dir)  # a usable source: no copy
    model.config._name_or_path = ""  # a model built in memory
    out = engine_model_dir(model, tok, tmp_path / "export")
    saved = load_file(f"{out}/model.safetensors")
    assert torch.equal(saved["lm_head.weight"], model.lm_head.weight) and torch.equal(saved["model.embed_tokens.weight"], model.model.embed_tokens.weight)
    assert AutoTokenizer.from_pretrained(out)("3+4=7")["input_ids"] == tok("3+4=7")["input_ids"]
