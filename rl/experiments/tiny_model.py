"""The embedded default world: a tiny random-init Qwen2 model and a small BPE tokenizer
trained locally on the synthetic tasks, so that everything runs offline on a CPU.

    make_tiny_model("outputs/tiny", size="tiny", seed=0)  # -> Path with model + tokenizer

The tokenizer uses exactly the components that transformers' ``Qwen2Tokenizer`` re-installs
when it loads a ``qwen2`` checkpoint (NFC normalizer, Qwen2's split regex with single digits
followed by a byte-level pre-tokenizer without prefix space, byte-level decoder), so ids
round-trip through ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Qwen2's pre-tokenizer regex (transformers/models/qwen2/tokenization_qwen2.py): numbers split
# into single digits.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK_START = "<think>"
THINK_END = "</think>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]  # ids 0, 1, 2
THINK_TOKENS = [THINK_START, THINK_END]  # ids 3, 4 (added, non-special: decode as text)

VOCAB_SIZE = 640
MODEL_MAX_LENGTH = 512

# With ``tools=`` (JSON schemas, e.g. from transformers.utils.get_json_schema) a system turn lists
# them first (merged with the conversation's own system message), one line per tool as a signature,
# ``- calculator(expression: string): Exact arithmetic.``, not as the whole JSON schema: the schema
# is ~200 byte-level tokens of the 640-token vocabulary per tool, and a prompt that long dilutes the
# tiny model's attention so much that SFT never learned to copy the operands into the call (600
# steps of task:calc_tool: the loss stalled at 0.15 from step 100 and 6% of greedy answers were
# right; docs/hdpo.md). Argument descriptions are left out. Tool results are ``tool`` turns; an
# assistant message's ``tool_calls`` render as <tool_call>{"name": ..., "arguments": ...}</tool_call>.
# Without tools the rendering is unchanged.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(skip=false) %}"
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{{- messages[0]['content'] + '\\n\\n' }}{%- set ns.skip = true %}"
    "{%- endif %}"
    "{{- 'Tools (call one as <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>):\\n' }}"
    "{%- for tool in tools %}"
    "{%- set fn = tool['function'] if tool['function'] is defined else tool %}"
    "{{- '- ' + fn['name'] + '(' }}"
    "{%- if fn['parameters'] is defined and fn['parameters']['properties'] is defined %}"
    "{%- for arg, spec in fn['parameters']['properties'].items() %}"
    "{{- arg + ((': ' + spec['type']) if spec['type'] is defined else '') }}{{- ', ' if not loop.last else '' }}"
    "{%- endfor %}"
    "{%- endif %}"
    "{{- '): ' + (fn['description'] or '') + '\\n' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (loop.first and ns.skip) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') }}"
    "{%- for call in (message['tool_calls'] or []) if message['tool_calls'] is defined %}"
    "{%- set fn = call['function'] if call['function'] is defined else call %}"
    "{{- '<tool_call>' + ({'name': fn['name'], 'arguments': fn['arguments']} | tojson) + '</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)

MODEL_SIZES: dict[str, dict[str, Any]] = {
    # ~1.0M parameters
    "tiny": dict(
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=512,
    ),
    # ~9.6M parameters
    "small": dict(
        hidden_size=256,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        intermediate_size=1280,
    ),
    # ~0.36B: Qwen2.5-0.5B's transformer body (24 layers, hidden 896, 14 query / 2 key-value heads,
    # MLP 4864) on this tokenizer's small vocabulary (Qwen's 151,936-token embedding is the rest of
    # its 0.49B). For the GPU benchmarks: built from a local path like the others.
    "0.5b": dict(
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
    ),
}

_GENERIC_TEXT = [
    "You are a helpful assistant.",
    "You are a helpful assistant. Think step by step, then put the final answer in \\boxed{}.",
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "The quick brown fox jumps over the lazy dog.",
    "Question: What is the answer? Answer: the answer is 42.",
    "system", "user", "assistant", "tool",
]


def _qwen2_components():
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers

    normalizer = normalizers.NFC()
    pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return normalizer, pre_tokenizer, decoders.ByteLevel()


def _render_chat(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def tokenizer_corpus(seed: int = 0) -> list[str]:
    """Task prompts/traces rendered through the chat template, plus generic template text."""
    from curriculum.tasks.explore import corpus_texts as explore_texts
    from curriculum.tasks.overthink import corpus_texts

    # prompt/trace pairs, then each task's phrase list (even lengths: the pairs stay aligned)
    texts = corpus_texts(num_examples=400, seed=seed) + explore_texts(num_examples=200, seed=seed)
    out: list[str] = []
    for i in range(0, len(texts) - 1, 2):
        prompt, trace = texts[i], texts[i + 1]
        out.append(_render_chat([{"role": "user", "content": prompt}], add_generation_prompt=True) + trace + IM_END)
    out += texts
    out += [_render_chat([{"role": "system", "content": g}, {"role": "user", "content": g}]) for g in _GENERIC_TEXT]
    out += _GENERIC_TEXT
    return out


def build_tokenizer(seed: int = 0, vocab_size: int = VOCAB_SIZE):
    """Train a byte-level BPE tokenizer on the synthetic-task corpus -> PreTrainedTokenizerFast.

    Special tokens: ``<|endoftext|>`` (pad, id 0), ``<|im_start|>`` (1), ``<|im_end|>`` (eos, 2);
    ``<think>`` (3) and ``</think>`` (4) are added non-special tokens (single ids that decode as
    text even with ``skip_special_tokens``). Digits are always single tokens.
    """
    from tokenizers import AddedToken, Tokenizer, pre_tokenizers, processors
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer, decoder = _qwen2_components()
    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoder
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=SPECIAL_TOKENS + THINK_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(tokenizer_corpus(seed), trainer=trainer)
    # the trainer registers its special tokens as special added tokens; <think>/</think> are
    # re-declared as normal added tokens (same ids) so that they decode as text.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        unk_token=None,
        extra_special_tokens=[IM_START],
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        add_prefix_space=False,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def model_config(tokenizer, size: str = "tiny"):
    """The ``Qwen2Config`` of an embedded model of ``size`` for ``tokenizer`` (tied embeddings)."""
    from transformers import Qwen2Config

    if size not in MODEL_SIZES:
        raise ValueError(f"unknown size {size!r}; known sizes: {', '.join(MODEL_SIZES)}")
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    return Qwen2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=MODEL_MAX_LENGTH,
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        initializer_range=0.02,
        hidden_act="silu",
        use_cache=True,
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        **MODEL_SIZES[size],
    )


def build_model(tokenizer, size: str = "tiny", seed: int = 0):
    """Random-init ``Qwen2ForCausalLM`` (seeded) sized for ``tokenizer``; eos = ``<|im_end|>``."""
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM

    config = model_config(tokenizer, size)
    pad_id, eos_id = config.pad_token_id, config.eos_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=pad_id, eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False, max_new_tokens=256
    )
    return model.eval()


def make_tiny_model(out_dir: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Build tokenizer + model and save both (safetensors) in ``out_dir``; returns the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(seed=seed)
    model = build_model(tokenizer, size=size, seed=seed)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def count_parameters(model) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


__all__ = [
    "CHAT_TEMPLATE",
    "MODEL_SIZES",
    "build_model",
    "build_tokenizer",
    "count_parameters",
    "make_tiny_model",
    "tokenizer_corpus",
]
