"""Reasoning chunks of a completion, for DECS (arXiv 2509.25827): token character offsets
and chunking. :mod:`rewards.decs.reward` finds the necessary reasoning prefix over these chunks.

For one completion (token ids + the tokenizer that produced them):

1. **Token offsets** (:func:`token_char_offsets`): every token is decoded on its own into a
   piece of text whose concatenation is the completion text, so every character offset maps
   to a token. Byte-level BPE tokenizers (GPT-2 / Qwen / Llama-3 style) are decoded byte-wise
   through an incremental UTF-8 decoder: a character whose bytes span several tokens is
   emitted by the token that completes it, and every one of those tokens *starts* at that
   character. Other tokenizers fall back to windowed incremental decoding. Special tokens
   (``<|im_end|>``, ...) decode to nothing; added non-special tokens (``<think>``) to their text.
2. **Chunking** (:func:`chunk_spans`, :func:`chunk_completion`; ``decs_chunking: lines``, the
   rule judge's; the paper code's chunking is :mod:`rewards.decs.paper_chunking`): only the
   reasoning counts: the text before the first ``</think>`` (exclusive; ``decs_think_end``); the summary / ``\\boxed{}`` after it is
   in no chunk. **Without ``</think>`` the whole completion is reasoning** (a truncated or
   think-less response). A new chunk starts at every split word (default
   :data:`DEFAULT_SPLIT_WORDS`: Wait, But, Alternatively, Hmm, Let, Therefore; case-sensitive,
   whole words: "Letter" does not split, "Let's" does) that begins a step:

   * at the start of the text or of a line, optionally after indentation: the chunk starts at
     the beginning of the line (the indentation belongs to the new chunk);
   * inside a line after sentence punctuation (``.``, ``!``, ``?``) and whitespace (on by
     default, ``split_inline=False`` turns it off): the chunk starts at the whitespace run
     before the word, so that a byte-level token like ``" Wait"`` belongs to the new chunk.

   A chunk that is not multi-line (no newline once leading/trailing whitespace is stripped)
   is merged into the following one; this is decided on the chunks as split, so a run of
   one-line chunks all merge into the next multi-line chunk. The last chunk is always kept.
   A token belongs to the chunk containing its first character (tokens straddling a boundary
   go to the chunk where they start), so chunk token ranges are contiguous and disjoint.

Pure functions (no model, no grader, no network).
"""

from __future__ import annotations

import bisect
import codecs
import logging
import re
from dataclasses import dataclass
from typing import Any, Sequence

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SPLIT_WORDS",
    "THINK_END",
    "Chunk",
    "chunk_completion",
    "chunk_spans",
    "chunks_from",
    "reasoning_end",
    "token_char_offsets",
]

DEFAULT_SPLIT_WORDS: tuple[str, ...] = ("Wait", "But", "Alternatively", "Hmm", "Let", "Therefore")
THINK_END = "</think>"


# ---------------------------------------------------------------------------------------
# Token offsets
# ---------------------------------------------------------------------------------------


def _byte_decoder() -> dict[str, int]:
    """Inverse of the byte-level BPE alphabet: every byte is shown as one printable char;
    printable Latin-1 bytes as themselves, the others as chr(256 + n) in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    kept = set(keep)
    table = {chr(b): b for b in keep}
    n = 0
    for b in range(256):
        if b not in kept:
            table[chr(256 + n)] = b
            n += 1
    return table


_BYTE_DECODER = _byte_decoder()


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    dec = getattr(backend, "decoder", None)
    if dec is None:
        return False
    if type(dec).__name__ == "ByteLevel":
        return True
    return type(dec).__name__ == "Sequence" and "ByteLevel" in repr(dec)


def _added_tokens(tokenizer: Any) -> tuple[dict[int, str], set[int]]:
    """(id -> text of added tokens, ids of special tokens)."""
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    added: dict[int, str] = {}
    for i, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        added[int(i)] = getattr(tok, "content", str(tok))
        if getattr(tok, "special", False):
            special.add(int(i))
    return added, special


def _offsets_byte_level(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[int]]:
    added, special = _added_tokens(tokenizer)
    toks = tokenizer.convert_ids_to_tokens(list(ids))
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    parts: list[str] = []
    starts: list[int] = []
    length = 0
    for tid, tok in zip(ids, toks):
        starts.append(length)  # the char that this token's first byte belongs to
        tid = int(tid)
        if tid in special or tok is None:
            continue
        if tid in added:
            piece = dec.decode(b"", final=True) + added[tid]  # flush dangling bytes first
        else:
            buf = bytearray()
            for c in tok:
                b = _BYTE_DECODER.get(c)
                if b is None:  # not in the byte alphabet (should not happen): its UTF-8
                    buf += c.encode()
                else:
                    buf.append(b)
            piece = dec.decode(bytes(buf))
        if piece:
            parts.append(piece)
            length += len(piece)
    tail = dec.decode(b"", final=True)
    if tail:
        parts.append(tail)
    return "".join(parts), starts


def _offsets_incremental(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[int]]:
    """Windowed incremental decoding (any tokenizer): token i's piece is
    ``decode(ids[p:i+1])[len(decode(ids[p:r])):]`` with a short prefix window ``p..r`` (it keeps
    leading-space handling right); a piece ending in U+FFFD is held back until completed."""
    ids = [int(x) for x in ids]

    def dec(xs: list[int]) -> str:
        return tokenizer.decode(xs, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    parts: list[str] = []
    starts: list[int] = []
    length = 0
    prefix, read = 0, 0
    for i in range(len(ids)):
        starts.append(length)
        prefix_text = dec(ids[prefix:read])
        new_text = dec(ids[prefix : i + 1])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd") and new_text.startswith(prefix_text):
            piece = new_text[len(prefix_text) :]
            parts.append(piece)
            length += len(piece)
            prefix, read = read, i + 1
    if read < len(ids):  # held-back bytes at the end (invalid UTF-8)
        piece = dec(ids[prefix:])[len(dec(ids[prefix:read])) :]
        parts.append(piece)
    return "".join(parts), starts


def token_char_offsets(tokenizer: Any, ids: Sequence[int], method: str = "auto") -> tuple[str, list[int]]:
    """``(text, starts)``: the completion text rebuilt token by token and, per token, the
    offset in ``text`` of the character its first byte belongs to (non-decreasing;
    ``len(text)``-valued for special tokens at the end, which carry no text).

    ``method``: ``"byte_level"`` (byte-level BPE decoder tokenizers), ``"incremental"`` (any
    tokenizer), or ``"auto"`` (byte-level when the tokenizer's decoder is ByteLevel and the
    result matches ``tokenizer.decode(ids, skip_special_tokens=True)``, else incremental).
    """
    if method not in ("auto", "byte_level", "incremental"):
        raise ValueError(f"method must be 'auto', 'byte_level' or 'incremental', got {method!r}")
    ids = [int(x) for x in ids]
    if method == "byte_level" or (method == "auto" and _is_byte_level(tokenizer)):
        text, starts = _offsets_byte_level(tokenizer, ids)
        if method == "byte_level":
            return text, starts
        ref = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if ref == text:
            return text, starts
        logger.debug("byte-level offsets disagree with tokenizer.decode; using incremental decoding")
    return _offsets_incremental(tokenizer, ids)


# ---------------------------------------------------------------------------------------
# Chunking
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """A reasoning chunk: characters ``[start_char, end_char)`` of the completion text, tokens
    ``[start_token, end_token)`` (the tokens whose first character lies in the span)."""

    start_char: int
    end_char: int
    start_token: int
    end_token: int
    text: str


def reasoning_end(text: str, think_end: str = THINK_END) -> int:
    """Offset of the first ``think_end`` marker (default ``</think>``; the reasoning is
    ``text[:offset]``); ``len(text)`` when there is none (the whole completion is reasoning)."""
    i = text.find(think_end) if think_end else -1
    return len(text) if i < 0 else i


_SPLIT_CACHE: dict[tuple[tuple[str, ...], bool], re.Pattern] = {}


def _split_pattern(split_words: Sequence[str], split_inline: bool) -> re.Pattern | None:
    key = (tuple(split_words), bool(split_inline))
    pat = _SPLIT_CACHE.get(key)
    if pat is None and split_words:
        words = "|".join(re.escape(w) for w in sorted(set(split_words), key=len, reverse=True))
        # group "line": a line start (text start or after \n) + indentation; group "inline":
        # the whitespace run after . ! ? inside a line. The chunk starts where the group starts.
        alts = [r"(?P<line>(?:(?<=\n)|^)[ \t]*)(?:%s)\b" % words]
        if split_inline:
            alts.append(r"(?<=[.!?])(?P<inline>[ \t]+)(?:%s)\b" % words)
        pat = re.compile("|".join(alts))
        if len(_SPLIT_CACHE) > 64:
            _SPLIT_CACHE.clear()
        _SPLIT_CACHE[key] = pat
    return pat


def _multi_line(s: str) -> bool:
    return "\n" in s.strip()


def chunk_spans(
    text: str,
    split_words: Sequence[str] = DEFAULT_SPLIT_WORDS,
    split_inline: bool = True,
    think_end: str = THINK_END,
) -> list[tuple[int, int]]:
    """Character spans ``[(start, end), ...]`` of the reasoning chunks of ``text`` (see the
    module docstring for the rules; the reasoning ends at ``think_end``). Empty reasoning -> ``[]``."""
    end = reasoning_end(text, think_end)
    if end == 0:
        return []
    reasoning = text[:end]
    bounds = [0]
    pat = _split_pattern(split_words, split_inline)
    if pat is not None:
        for m in pat.finditer(reasoning):
            pos = m.start("line") if m.group("line") is not None else m.start("inline")
            if pos > bounds[-1]:
                bounds.append(pos)
    bounds.append(end)
    raw = list(zip(bounds[:-1], bounds[1:]))
    spans: list[tuple[int, int]] = []
    start = None
    for j, (a, b) in enumerate(raw):
        if start is None:
            start = a
        if j == len(raw) - 1 or _multi_line(reasoning[a:b]):
            spans.append((start, b))
            start = None
    return spans


def chunk_completion(
    ids: Sequence[int],
    tokenizer: Any,
    split_words: Sequence[str] = DEFAULT_SPLIT_WORDS,
    split_inline: bool = True,
    offsets: tuple[str, list[int]] | None = None,
    think_end: str = THINK_END,
) -> list[Chunk]:
    """The reasoning chunks of a completion given as token ids (``offsets`` = a precomputed
    :func:`token_char_offsets` result). These are the ``lines`` chunks; the paper code's are
    :func:`rewards.decs.paper_chunking.paper_chunks`."""
    text, starts = offsets if offsets is not None else token_char_offsets(tokenizer, ids)
    return chunks_from(text, starts, split_words, split_inline, think_end)


def chunks_from(text: str, starts: list[int], split_words: Sequence[str], split_inline: bool,
                think_end: str = THINK_END) -> list[Chunk]:
    """The chunks of ``text`` (:func:`chunk_spans`) with their token spans, ``starts`` being each
    token's first character (:func:`token_char_offsets`)."""
    out = []
    for a, b in chunk_spans(text, split_words, split_inline, think_end):
        out.append(Chunk(a, b, bisect.bisect_left(starts, a), bisect.bisect_left(starts, b), text[a:b]))
    return out

