"""The embedded tiny model + tokenizer: round-trips through save/load, determinism, sizes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from curriculum.tasks import get_task_dataset
from rl.experiments.tiny_model import (
    IM_END,
    IM_START,
    PAD_TOKEN,
    THINK_END,
    THINK_START,
    build_model,
    build_tokenizer,
    count_parameters,
    make_tiny_model,
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(seed=0)


@pytest.fixture(scope="module")
def loaded_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def sample_texts(tokenizer):
    rows = list(get_task_dataset("overthink_heavy", 20, seed=3)) + list(get_task_dataset("overthink", 10, seed=4, split="test"))
    texts = []
    for r in rows:
        prompt = tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        trace = r["completion"][0]["content"] + IM_END
        texts += [r["prompt"][0]["content"], trace, prompt, prompt + trace]
    texts += [
        "Hello, world! 12345 + 678 = 91011\n\n  indented\ttab",
        "unicode: café – naïve — 数学 🙂",
        "<think>\n</think>\n\\boxed{42}",
        "",
    ]
    return texts


def test_special_tokens_are_single_ids(tokenizer, loaded_tokenizer):
    for tok in (tokenizer, loaded_tokenizer):
        ids = [tok.convert_tokens_to_ids(t) for t in (PAD_TOKEN, IM_START, IM_END, THINK_START, THINK_END)]
        assert ids == [0, 1, 2, 3, 4]
        for t, i in zip((PAD_TOKEN, IM_START, IM_END, THINK_START, THINK_END), ids):
            assert tok(t, add_special_tokens=False)["input_ids"] == [i]
            assert tok.decode([i]) == t
        assert tok.eos_token == IM_END and tok.pad_token == PAD_TOKEN
        assert tok.bos_token is None
        # <think> tags survive skip_special_tokens; chat markers do not
        ids = tok(f"{IM_START}assistant\n{THINK_START}\nx\n{THINK_END}\n1{IM_END}")["input_ids"]
        assert tok.decode(ids, skip_special_tokens=True) == f"assistant\n{THINK_START}\nx\n{THINK_END}\n1"


def test_vocab_is_small(tokenizer):
    assert 300 <= len(tokenizer) <= 1000


def test_digits_are_single_tokens(tokenizer):
    for d in "0123456789":
        assert len(tokenizer(d, add_special_tokens=False)["input_ids"]) == 1
    ids = tokenizer("14 * 5 = 70", add_special_tokens=False)["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids]
    assert [p for p in pieces if p.strip().isdigit()] == ["1", "4", "5", "7", "0"]


def test_frequent_task_words_are_single_tokens(tokenizer):
    for word in ("Compute", " answer", " step", "Wait", "Hmm", "Yes", "\\boxed", "assistant", "user"):
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word


def test_chat_template(tokenizer, loaded_tokenizer):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Compute left to right: 3 + 4"}]
    expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nCompute left to right: 3 + 4<|im_end|>\n"
    for tok in (tokenizer, loaded_tokenizer):
        assert tok.apply_chat_template(msgs, tokenize=False) == expected
        assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == expected + "<|im_start|>assistant\n"
    ids_a = tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
    ids_b = loaded_tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
    ids_a = ids_a["input_ids"] if isinstance(ids_a, dict) or hasattr(ids_a, "keys") else ids_a
    ids_b = ids_b["input_ids"] if isinstance(ids_b, dict) or hasattr(ids_b, "keys") else ids_b
    assert list(ids_a) == list(ids_b)


def test_tokenizer_round_trip(tokenizer, loaded_tokenizer, sample_texts):
    assert type(loaded_tokenizer).__name__ == "Qwen2Tokenizer"  # what transformers picks for qwen2
    assert len(loaded_tokenizer) == len(tokenizer)
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    for text in sample_texts:
        a = tokenizer(text)["input_ids"]
        b = loaded_tokenizer(text)["input_ids"]
        assert a == b, text
        assert tokenizer.decode(a) == text
        assert loaded_tokenizer.decode(b) == text
    batch_a = tokenizer(sample_texts[:8], padding=True)["input_ids"]
    batch_b = loaded_tokenizer(sample_texts[:8], padding=True)["input_ids"]
    assert batch_a == batch_b


def test_typical_lengths(tokenizer):
    row = get_task_dataset("overthink", 1, seed=0)[0]
    prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    assert len(tokenizer(prompt)["input_ids"]) <= 32
    rows = get_task_dataset("overthink", 200, seed=0)
    lens = [len(tokenizer(r["completion"][0]["content"] + IM_END)["input_ids"]) for r in rows]
    assert 60 <= sum(lens) / len(lens) <= 160
    assert max(lens) <= 200


def test_model_round_trip(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer(seed=0)
    fresh = build_model(tok, "tiny", seed=0)
    loaded = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert type(loaded).__name__ == "Qwen2ForCausalLM"
    x = torch.tensor([tok("<|im_start|>user\nCompute left to right: 3 + 4 * 2<|im_end|>\n")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(fresh(x).logits, loaded(x).logits)
    assert loaded.config.eos_token_id == tok.eos_token_id == 2
    assert loaded.config.pad_token_id == tok.pad_token_id == 0
    assert loaded.generation_config.eos_token_id == 2
    assert loaded.generation_config.pad_token_id == 0
    assert loaded.config.tie_word_embeddings
    assert loaded.config.vocab_size == len(tok)
    assert (Path(tiny_model_dir) / "model.safetensors").is_file()


def test_generate_stops_at_eos(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = ["<|im_start|>user\nCompute left to right: 3 + 4<|im_end|>\n<|im_start|>assistant\n", "<|im_start|>user\nhi<|im_end|>\n"]
    enc = tok(prompts, return_tensors="pt", padding=True)
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[0] == 2 and out.shape[1] <= enc["input_ids"].shape[1] + 5


def test_param_counts(tokenizer):
    tiny = count_parameters(build_model(tokenizer, "tiny", seed=0))
    small = count_parameters(build_model(tokenizer, "small", seed=0))
    assert 0.8e6 <= tiny <= 1.3e6
    assert 7e6 <= small <= 12e6
    with pytest.raises(ValueError, match="tiny"):
        build_model(tokenizer, "huge")


def test_the_half_billion_size_has_qwen25_05b_layers(tokenizer):
    from transformers import Qwen2ForCausalLM

    from rl.experiments.tiny_model import model_config

    config = model_config(tokenizer, "0.5b")
    with torch.device("meta"):  # the shapes without allocating 1.4 GB
        model = Qwen2ForCausalLM(config)
    n = count_parameters(model)
    # Qwen2.5-0.5B: 494M parameters, of which 136M are its 151,936 x 896 embedding
    assert abs(n - (494_032_768 - 151_936 * 896)) / n < 0.01, n
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (24, 896, 4864)
    assert config.vocab_size == len(tokenizer) and config.tie_word_embeddings


def test_seeded_init(tokenizer):
    a = build_model(tokenizer, "tiny", seed=0).state_dict()
    b = build_model(tokenizer, "tiny", seed=0).state_dict()
    c = build_model(tokenizer, "tiny", seed=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def _digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


def test_make_tiny_model_deterministic(tmp_path, tiny_model_dir):
    out = make_tiny_model(tmp_path / "again", size="tiny", seed=0)
    assert _digests(out) == _digests(Path(tiny_model_dir))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["hidden_size"] == 128 and cfg["num_hidden_layers"] == 4


def test_cli(tmp_path, capsys):
    from rl.commands import make_tiny_model as mod
    assert mod.main(["--out", str(tmp_path / "m"), "--size", "tiny", "--seed", "0"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["size"] == "tiny" and 0.8e6 <= info["parameters"] <= 1.3e6
    assert (tmp_path / "m" / "tokenizer.json").is_file() and (tmp_path / "m" / "config.json").is_file()
