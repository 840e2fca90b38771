"""The complete SFT trainer: conversations with assistant-only labels, position-id packing,
LoRA merge-and-save, gradient checkpointing, held-out eval loss, exact resume with all of them."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset

from rl.config import SFTConfig
from rl.sft_data import IGNORE, collate_packed, collate_padded, example_spans, pack_bins, tokenize_example, tokenize_messages
from rl.sft_trainer import SFTTrainer


def _tok(model_dir):
    from rl.modeling import load_tokenizer

    return load_tokenizer(str(model_dir))


def _ragged(n=24):
    return Dataset.from_list(
        [{"prompt": [{"role": "user", "content": "Compute: " + "1+" * (i % 4) + "1"}],
          "completion": [{"role": "assistant", "content": "<think>\n" + "ok\n" * (i % 6) + f"</think>\n\\boxed{{{i % 4 + 1}}}"}]}
         for i in range(n)]
    )


def test_messages_train_every_assistant_turn_and_nothing_else(tiny_model_dir):
    tok = _tok(tiny_model_dir)
    conv = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Compute: 1 + 2"},
            {"role": "assistant", "content": "\\boxed{3}"}, {"role": "user", "content": "Compute: 2 + 2"},
            {"role": "assistant", "content": "\\boxed{4}"}]
    ids, labels = tokenize_messages(tok, conv, 512)
    assert tok.decode(ids) == tok.apply_chat_template(conv, tokenize=False)
    trained = [i for i, x in zip(ids, labels) if x != IGNORE]
    assert tok.decode(trained) == "\\boxed{3}<|im_end|>\\boxed{4}<|im_end|>"
    assert all(x == IGNORE or x == i for i, x in zip(ids, labels))
    # a two-message conversation gives the prompt-completion layout's tokens (plus the template's newline)
    pc_ids, pc_labels = tokenize_example(tok, conv[1:2], conv[2:3], 512)
    m_ids, m_labels = tokenize_messages(tok, conv[1:3], 512)
    assert m_ids[: len(pc_ids)] == pc_ids and m_labels[: len(pc_labels)] == pc_labels
    assert tok.decode(m_ids[len(pc_ids):]) == "\n" and m_labels[len(pc_labels):] == [IGNORE]
    # completion_only_loss off: every token is a label
    all_ids, all_labels = tokenize_messages(tok, conv, 512, completion_only=False)
    assert all_labels == all_ids == ids


def test_a_messages_dataset_trains(tiny_model_dir, tmp_path):
    ds = Dataset.from_list([{"messages": [{"role": "user", "content": f"Compute: {i} + 1"},
                                          {"role": "assistant", "content": f"\\boxed{{{i + 1}}}"}]} for i in range(8)])
    cfg = SFTConfig(model=str(tiny_model_dir), output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                    report_to=[], save_final=False, disable_progress_bar=True, learning_rate=1e-3)
    t = SFTTrainer(cfg.model, args=cfg, train_dataset=ds)
    out = t.train()
    assert out["global_step"] == 2 and out["last_metrics"]["tokens"] > 0


def test_pack_bins_first_fit_decreasing():
    assert pack_bins([5, 3, 4, 2, 6], 8) == [[4, 3], [0, 1], [2]]
    assert pack_bins([9, 1], 8) == [[0], [1]]  # an over-long item gets its own bin


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_each_example_run_alone(tiny_model_dir, attn):
    from transformers import AutoModelForCausalLM

    tok = _tok(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32, attn_implementation=attn).eval()
    ds = _ragged(7)
    items = [tokenize_example(tok, r["prompt"], r["completion"], 512) for r in ds]
    batch = collate_packed(items, max_length=3 * max(len(i) for i, _ in items), pad_id=tok.pad_token_id)
    assert batch["input_ids"].shape[0] < len(items)  # really packed: rows hold several examples
    with torch.no_grad():
        # use_cache=False matters: with a cache (the config's default) transformers skips the packed-sequence
        # detection and the examples attend to each other; the trainer always passes it
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        # the same rows with one plain causal mask: the examples would see each other
        leaky = model(input_ids=batch["input_ids"]).logits
        alone = [model(input_ids=torch.tensor([ids])).logits[0] for ids, _ in items]
    seen, worst, leak = [], 0.0, 0.0
    for r, spans in enumerate(example_spans(batch["position_ids"])):
        for s, e in spans:
            row_ids = batch["input_ids"][r, s:e].tolist()
            matches = [k for k, (ids, _) in enumerate(items) if ids == row_ids and k not in seen]
            if not matches:  # the row's tail padding
                assert set(row_ids) == {tok.pad_token_id}
                continue
            k = matches[0]
            seen.append(k)
            worst = max(worst, float((packed[r, s:e] - alone[k]).abs().max()))
            leak = max(leak, float((leaky[r, s:e] - alone[k]).abs().max()))
    assert sorted(seen) == list(range(len(items)))
    assert worst < 1e-4, worst
    assert leak > 1e-2  # the test can tell isolation from leakage
    # the first label of every packed example is ignored: no loss crosses a boundary
    for r, spans in enumerate(example_spans(batch["position_ids"])):
        assert all(int(batch["labels"][r, s]) == IGNORE for s, _ in spans)


def _train(model_dir, out, ds=None, steps=3, **kw):
    base = dict(model=str(model_dir), output_dir=str(out), learning_rate=1e-2, max_steps=steps,
                per_device_train_batch_size=8, report_to=["jsonl"], save_final=False, disable_progress_bar=True,
                seed=2, max_grad_norm=0.0, adam_beta1=0.0, adam_beta2=0.0, adam_epsilon=1.0)
    base.update(kw)
    t = SFTTrainer(base["model"], args=SFTConfig(**base), train_dataset=_ragged() if ds is None else ds)
    t.train()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()] if "jsonl" in base["report_to"] else []
    return t, {k: v.detach().clone() for k, v in t.unwrapped_model.named_parameters()}, rows


def _rel_diff(a, b, start):
    moved = sum(float((a[k] - start[k].detach()).abs().sum()) for k in a)
    diff = sum(float((a[k] - b[k]).abs().sum()) for k in a)
    assert moved > 0
    return diff / moved


def test_packing_gives_the_unpacked_loss_and_gradient(tiny_model_dir, tmp_path):
    from rl.modeling import load_model

    start = dict(load_model(str(tiny_model_dir)).named_parameters())
    _, plain, rows_plain = _train(tiny_model_dir, tmp_path / "plain")
    _, packed, rows_packed = _train(tiny_model_dir, tmp_path / "packed", packing=True, max_length=128)
    loss = lambda rows: [r["loss"] for r in rows if "loss" in r]  # noqa: E731
    assert loss(rows_packed) == pytest.approx(loss(rows_plain), rel=1e-5)
    assert _rel_diff(plain, packed, start) < 1e-4
    assert all(r["rows"] < 8 for r in rows_packed if "rows" in r)  # fewer rows than examples


def test_gradient_checkpointing_recomputes_and_keeps_the_loss(tiny_model_dir, tmp_path):
    from rl.modeling import load_model

    start = dict(load_model(str(tiny_model_dir)).named_parameters())
    _, plain, rows_plain = _train(tiny_model_dir, tmp_path / "plain", steps=2)
    calls = []

    class Counting(SFTTrainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            layer = self.unwrapped_model.model.layers[0]
            layer.register_forward_pre_hook(lambda *_: calls.append(1))  # pre: recomputation stops early

    cfg = SFTConfig(model=str(tiny_model_dir), output_dir=str(tmp_path / "gc"), learning_rate=1e-2, max_steps=2,
                    per_device_train_batch_size=8, report_to=["jsonl"], save_final=False, disable_progress_bar=True,
                    seed=2, max_grad_norm=0.0, adam_beta1=0.0, adam_beta2=0.0, adam_epsilon=1.0,
                    gradient_checkpointing=True)
    t = Counting(cfg.model, args=cfg, train_dataset=_ragged())
    t.train()
    assert len(calls) == 4  # 2 steps x (forward + recomputation in backward)
    gc = {k: v.detach().clone() for k, v in t.unwrapped_model.named_parameters()}
    rows_gc = [json.loads(x) for x in (tmp_path / "gc" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows_gc] == pytest.approx([r["loss"] for r in rows_plain], rel=1e-5)
    assert _rel_diff(plain, gc, start) < 1e-4


def test_lora_merge_and_save_reloads_to_the_trained_adapter_outputs(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from rl.modeling import load_model

    t, _, _ = _train(tiny_model_dir, tmp_path / "lora", steps=4, use_peft=True, lora_r=4, lora_alpha=8,
                     learning_rate=5e-2, save_final=True, gradient_checkpointing=True)
    peft_model = t.unwrapped_model.eval()
    lora_b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert lora_b and all(float(p.detach().abs().max()) > 0 for p in lora_b)  # trained (B starts at zero)
    final = tmp_path / "lora" / "final"
    assert (final / "adapter" / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(str(final), dtype=torch.float32).eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    base = load_model(str(tiny_model_dir)).eval()
    x = torch.tensor([_tok(tiny_model_dir)("<|im_start|>user\nCompute: 1+1+1<|im_end|>\n")["input_ids"]])
    with torch.no_grad():
        a, m, b = peft_model(input_ids=x).logits, merged(input_ids=x).logits, base(input_ids=x).logits
    assert float((a - m).abs().max()) < 1e-4
    assert float((a - b).abs().max()) > 1e-2  # the adapter changed the model


def test_eval_loss_is_logged_on_a_held_out_split(tiny_model_dir, tmp_path):
    t, _, rows = _train(tiny_model_dir, tmp_path / "ev", steps=6, eval_steps=2, eval_holdout_fraction=0.25,
                        learning_rate=3e-3, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8)
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    assert [s for s, _ in evals] == [2, 4, 6]
    assert evals[-1][1] < evals[0][1]
    assert len(t.examples) == 18 and len(t.eval_examples) == 6
    train_set = {tuple(ids) for ids, _ in t.examples}
    assert len([e for e in t.eval_examples if tuple(e[0]) in train_set]) < len(t.eval_examples)  # held out
    # the logged value is the held-out token mean of the final model
    from rl.sft_data import collate_padded as pad

    model = t.unwrapped_model.eval()
    s = n = 0.0
    with torch.no_grad():
        for ids, labels in t.eval_examples:
            b = pad([(ids, labels)], t.tokenizer.pad_token_id)
            logits = model(input_ids=b["input_ids"]).logits[0, :-1]
            lab = b["labels"][0, 1:]
            s += float(torch.nn.functional.cross_entropy(logits, lab, ignore_index=IGNORE, reduction="sum"))
            n += int((lab != IGNORE).sum())
    assert evals[-1][1] == pytest.approx(s / n, rel=1e-5)


def test_eval_loss_dataset_from_a_task_test_split(tiny_model_dir, tmp_path):
    cfg = SFTConfig(model=str(tiny_model_dir), output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4,
                    dataset="task:overthink", dataset_num_examples=16, eval_loss_dataset="task:overthink",
                    eval_loss_num_examples=5, report_to=[], save_final=False, disable_progress_bar=True)
    t = SFTTrainer(cfg.model, args=cfg)
    assert len(t.examples) == 16 and len(t.eval_examples) == 5
    assert t.evaluate_loss() > 0


def test_packing_lora_checkpointing_eval_resume_is_exact(tiny_model_dir, tmp_path):
    kw = dict(packing=True, max_length=96, use_peft=True, lora_r=4, gradient_checkpointing=True, eval_steps=2,
              eval_holdout_fraction=0.2, save_steps=2, learning_rate=3e-3, adam_beta1=0.9, adam_beta2=0.999,
              adam_epsilon=1e-8, per_device_train_batch_size=4)
    _, straight, rows_a = _train(tiny_model_dir, tmp_path / "a", steps=5, **kw)
    _train(tiny_model_dir, tmp_path / "b", steps=2, **kw)
    _, resumed, rows_b = _train(tiny_model_dir, tmp_path / "b", steps=5, resume_from_checkpoint="latest", **kw)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    ev = lambda rows: {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}  # noqa: E731
    assert ev(rows_a) == ev(rows_b)


def test_collate_padded_shapes():
    b = collate_padded([([1, 2, 3], [IGNORE, 2, 3]), ([4], [4])], pad_id=0)
    assert b["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["labels"].tolist() == [[IGNORE, 2, 3], [4, IGNORE, IGNORE]]
