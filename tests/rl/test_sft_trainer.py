import json

import pytest
import torch
from datasets import Dataset

from curriculum.data import DatasetError
from rl.config import SFTConfig
from rl.sft_trainer import IGNORE, SFTTrainer, tokenize_example


def _ds(n=16):
    return Dataset.from_list(
        [{"prompt": [{"role": "user", "content": f"Compute: {i % 9 + 1} + 1"}],
          "completion": [{"role": "assistant", "content": f"<think>\n{i % 9 + 1} + 1 = {i % 9 + 2}\n</think>\n\\boxed{{{i % 9 + 2}}}"}]}
         for i in range(n)]
    )


def test_labels_mask_the_prompt(tiny_model_dir):
    from rl.modeling import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    row = _ds(1)[0]
    ids, labels = tokenize_example(tok, row["prompt"], row["completion"], 512)
    n_prompt = sum(1 for x in labels if x == IGNORE)
    assert n_prompt > 0 and labels[n_prompt:] == ids[n_prompt:]
    assert ids[-1] == tok.eos_token_id  # the model learns to stop
    full_ids, full_labels = tokenize_example(tok, row["prompt"], row["completion"], 512, completion_only=False)
    assert full_ids == ids and full_labels == full_ids


def test_group_by_length_resumes_exactly(tiny_model_dir, tmp_path):
    ds = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": "Compute: " + "1+" * (i % 7) + "1"}],
          "completion": [{"role": "assistant", "content": "<think>\n" + "ok\n" * (i % 5) + f"</think>\n\\boxed{{{i % 7 + 1}}}"}]}
         for i in range(24)]
    )

    def run(out, steps, resume=None):
        cfg = SFTConfig(model=str(tiny_model_dir), output_dir=str(out), learning_rate=3e-3, max_steps=steps,
                        per_device_train_batch_size=4, group_by_length=True, length_group_pool=3,
                        report_to=["jsonl"], save_steps=2, save_final=False, resume_from_checkpoint=resume,
                        disable_progress_bar=True, seed=1)
        t = SFTTrainer(cfg.model, args=cfg, train_dataset=ds)
        t.train()
        return {k: v.detach().clone() for k, v in t.unwrapped_model.named_parameters()}

    straight = run(tmp_path / "a", 5)
    run(tmp_path / "b", 2)  # stops inside a pool of 3 micro-batches
    resumed = run(tmp_path / "b", 5, resume="latest")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_sft_loss_goes_down_and_resume_is_exact(tiny_model_dir, tmp_path):
    def run(out, steps, resume=None):
        cfg = SFTConfig(model=str(tiny_model_dir), output_dir=str(out), learning_rate=3e-3, max_steps=steps,
                        per_device_train_batch_size=8, report_to=["jsonl"], save_steps=3, save_final=False,
                        resume_from_checkpoint=resume, disable_progress_bar=True, seed=3)
        t = SFTTrainer(cfg.model, args=cfg, train_dataset=_ds())
        t.train()
        return t, {k: v.detach().clone() for k, v in t.unwrapped_model.named_parameters()}

    t, straight = run(tmp_path / "a", 6)
    losses = [json.loads(x)["loss"] for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]
    run(tmp_path / "b", 3)
    _, resumed = run(tmp_path / "b", 6, resume="latest")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_bad_rows(tiny_model_dir, tmp_path):
    ds = Dataset.from_list([{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": ""}])
    cfg = SFTConfig(model=str(tiny_model_dir), output_dir=str(tmp_path))
    with pytest.raises(DatasetError, match="row 1 field 'completion'"):
        SFTTrainer(cfg.model, args=cfg, train_dataset=ds)


def _ragged_ds(n=24):
    # completions of 1..5 extra lines: batches mix short and long examples
    return Dataset.from_list(
        [{"prompt": [{"role": "user", "content": "Compute: " + "1+" * (i % 4) + "1"}],
          "completion": [{"role": "assistant", "content": "<think>\n" + "ok\n" * (i % 6) + f"</think>\n\\boxed{{{i % 4 + 1}}}"}]}
         for i in range(n)]
    )


def _sft_params(model_dir, out, **kw):
    base = dict(model=str(model_dir), output_dir=str(out), learning_rate=1e-2, max_steps=3, per_device_train_batch_size=8,
                report_to=["jsonl"], save_final=False, disable_progress_bar=True, seed=2, max_grad_norm=0.0,
                adam_beta1=0.0, adam_beta2=0.0, adam_epsilon=1.0)  # SGD-like steps: lr * g / (|g| + 1)
    base.update(kw)
    t = SFTTrainer(base["model"], args=SFTConfig(**base), train_dataset=_ragged_ds())
    t.train()
    losses = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {k: v.detach().clone() for k, v in t.unwrapped_model.named_parameters()}, losses


def test_split_by_length_and_accumulation_keep_the_full_batch_gradient(tiny_model_dir, tmp_path):
    from rl.sft_trainer import split_by_length

    examples = [([0] * n, [0] * n) for n in (5, 1, 4, 2, 3)]
    assert split_by_length([0, 1, 2, 3, 4], examples, 2) == [[1, 3, 4], [2, 0]]
    assert split_by_length([0, 1], examples, 1) == [[0, 1]]

    whole, loss_whole = _sft_params(tiny_model_dir, tmp_path / "whole")
    split, loss_split = _sft_params(tiny_model_dir, tmp_path / "split", split_by_length=4)
    accum, loss_accum = _sft_params(tiny_model_dir, tmp_path / "accum", per_device_train_batch_size=4,
                                    gradient_accumulation_steps=2, split_by_length=2)
    from rl.modeling import load_model

    start = dict(load_model(str(tiny_model_dir)).named_parameters())
    moved = sum(float((whole[k] - start[k]).abs().sum()) for k in whole)
    for other, losses in ((split, loss_split), (accum, loss_accum)):
        diff = sum(float((whole[k] - other[k]).abs().sum()) for k in whole)
        assert moved > 0 and diff < 1e-4 * moved
        assert losses == pytest.approx(loss_whole, rel=1e-5)
