"""DECS (arXiv 2509.25827): reasoning chunking, necessary-reasoning-prefix (NRP) detection and
the token-level redundancy reward.

Pipeline for one completion (token ids + the tokenizer that produced them):

1. **Token offsets** (:func:`token_char_offsets`): every token is decoded on its own into a
   piece of text whose concatenation is the completion text, so every character offset maps
   to a token. Byte-level BPE tokenizers (GPT-2 / Qwen / Llama-3 style) are decoded byte-wise
   through an incremental UTF-8 decoder: a character whose bytes span several tokens is
   emitted by the token that completes it, and every one of those tokens *starts* at that
   character. Other tokenizers fall back to windowed incremental decoding. Special tokens
   (``<|im_end|>``, ...) decode to nothing; added non-special tokens (``<think>``) to their text.
2. **Chunking** (:func:`chunk_spans`, :func:`chunk_completion`): only the reasoning counts:
   the text before the first ``</think>`` (exclusive); the summary / ``\\boxed{}`` after it is
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
3. **NRP detection** (:func:`analyze_completions`): only correct responses (graded by the math
   grader on the full completion against the ground truth) are judged. Chunks are scanned
   in order; the first chunk k that the judge says presents the correct final answer ends
   the NRP (chunks 0..k); every chunk after k is redundant. No "yes" -> nothing redundant.
   A chunk the judge could not decide (``None``: endpoint down with ``fallback="no_penalty"``)
   before the first "yes" -> the response is treated as having no redundant part.
4. **The reward** (:class:`DECSRedundancyReward`, registered as ``decs_redundancy``): one float
   per completion token, 1.0 from the first to the last redundant token (inclusive), else 0.0.

Everything here is pure apart from the endpoint judge's HTTP (:mod:`rewards.judges`).
"""

from __future__ import annotations

import bisect
import codecs
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

from rewards.judges import (
    DEFAULT_JUDGE_MODEL,
    DEFAULT_JUDGE_TEMPLATE,
    JUDGE_URL_ENV,
    EndpointJudge,
    Judge,
    JudgeItem,
    RuleJudge,
)
from rewards.math import MathGrader, completion_text, get_default_grader, grade_one, ground_truths_from_columns

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SPLIT_WORDS",
    "decs_redundancy",
    "THINK_END",
    "Chunk",
    "DECSResult",
    "DECSRedundancyReward",
    "analyze_completions",
    "chunk_completion",
    "chunk_spans",
    "problem_text",
    "reasoning_end",
    "redundant_token_fraction",
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


def reasoning_end(text: str) -> int:
    """Offset of the first ``</think>`` (the reasoning is ``text[:offset]``); ``len(text)``
    when there is none (the whole completion is reasoning)."""
    i = text.find(THINK_END)
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
) -> list[tuple[int, int]]:
    """Character spans ``[(start, end), ...]`` of the reasoning chunks of ``text`` (see the
    module docstring for the rules). Empty reasoning -> ``[]``."""
    end = reasoning_end(text)
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
) -> list[Chunk]:
    """The reasoning chunks of a completion given as token ids (``offsets`` = a precomputed
    :func:`token_char_offsets` result)."""
    text, starts = offsets if offsets is not None else token_char_offsets(tokenizer, ids)
    return _chunks_from(text, starts, split_words, split_inline)


def _chunks_from(text: str, starts: list[int], split_words: Sequence[str], split_inline: bool) -> list[Chunk]:
    out = []
    for a, b in chunk_spans(text, split_words, split_inline):
        out.append(Chunk(a, b, bisect.bisect_left(starts, a), bisect.bisect_left(starts, b), text[a:b]))
    return out


# ---------------------------------------------------------------------------------------
# NRP detection
# ---------------------------------------------------------------------------------------


@dataclass
class DECSResult:
    """DECS analysis of one completion. Redundant tokens are ``[redundant_start, redundant_end)``
    (empty when ``redundant_start == redundant_end``)."""

    correct: bool
    chunks: list[Chunk]
    num_tokens: int
    nrp_chunk: int | None = None
    redundant_start: int = 0
    redundant_end: int = 0
    judge_fallback: bool = False
    text: str = field(default="", repr=False)

    @property
    def redundant_tokens(self) -> int:
        return self.redundant_end - self.redundant_start

    @property
    def nrp_ratio(self) -> float | None:
        if self.nrp_chunk is None or not self.chunks:
            return None
        return (self.nrp_chunk + 1) / len(self.chunks)

    def token_rewards(self) -> list[float]:
        r = [0.0] * self.num_tokens
        for t in range(self.redundant_start, self.redundant_end):
            r[t] = 1.0
        return r

    def meta(self) -> dict[str, Any]:
        return {
            "decs/correct": bool(self.correct),
            "decs/num_chunks": len(self.chunks),
            "decs/nrp_chunk": self.nrp_chunk,
            "decs/nrp_ratio": self.nrp_ratio,
            "decs/redundant_tokens": self.redundant_tokens,
            "decs/judge_fallback": bool(self.judge_fallback),
        }


def _run_judge(judge: Any, items: list[JudgeItem]) -> tuple[list[bool | None], list[bool]]:
    if not items:
        return [], []
    detailed = getattr(judge, "judge_detailed", None)
    if callable(detailed):
        verdicts, fell_back = detailed(items)
    else:
        verdicts = judge.judge(items)
        fell_back = [v is None for v in verdicts]
    if len(verdicts) != len(items):
        raise RuntimeError(f"judge {type(judge).__name__} returned {len(verdicts)} verdicts for {len(items)} items")
    return list(verdicts), list(fell_back)


def analyze_completions(
    completion_ids: Sequence[Sequence[int]] | None,
    ground_truths: Sequence[Any],
    tokenizer: Any,
    *,
    completions: Sequence[Any] | None = None,
    problems: Sequence[str] | None = None,
    judge: Judge | None = None,
    correct: Sequence[bool] | None = None,
    grader: MathGrader | None = None,
    split_words: Sequence[str] = DEFAULT_SPLIT_WORDS,
    split_inline: bool = True,
) -> list[DECSResult]:
    """DECS analysis of a batch of completions (one judge call for all chunks of all correct
    responses).

    ``completion_ids`` (or, when None, ``completions`` tokenized without special tokens) give
    the tokens. Correctness: ``correct`` if given, else the math grader on the full completion
    text (``completions``, else the decoded ids) against the ground truth: through ``grader``
    when given, else in-process (:func:`rewards.math.grade_one`, no timeout). Rows without a
    ground truth are incorrect. ``judge`` defaults to an in-process :class:`RuleJudge`.
    """
    if completion_ids is None:
        if completions is None:
            raise ValueError("need completion_ids or completions")
        texts_in = [completion_text(c) for c in completions]
        completion_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts_in]
    n = len(completion_ids)
    if len(ground_truths) != n:
        raise ValueError(f"{len(ground_truths)} ground truths for {n} completions")
    if completions is not None and len(completions) != n:
        raise ValueError(f"{len(completions)} completions for {n} completion_ids")
    if problems is not None and len(problems) != n:
        raise ValueError(f"{len(problems)} problems for {n} completions")
    offsets = [token_char_offsets(tokenizer, ids) for ids in completion_ids]
    texts = [completion_text(c) for c in completions] if completions is not None else [o[0] for o in offsets]
    gts = [None if g is None else str(g) for g in ground_truths]
    if correct is None:
        rows = [i for i in range(n) if gts[i] is not None and gts[i].strip()]
        ok = [False] * n
        if rows:
            if grader is not None:
                for i, r in zip(rows, grader.grade([texts[i] for i in rows], [gts[i] for i in rows])):
                    ok[i] = r.correct
            else:
                for i in rows:
                    try:
                        ok[i] = grade_one(texts[i], gts[i])[2] == "correct"
                    except Exception:
                        ok[i] = False
        correct = ok
    elif len(correct) != n:
        raise ValueError(f"{len(correct)} correctness flags for {n} completions")
    results = [
        DECSResult(
            correct=bool(correct[i]) and gts[i] is not None,
            chunks=_chunks_from(offsets[i][0], offsets[i][1], split_words, split_inline),
            num_tokens=len(completion_ids[i]),
            text=offsets[i][0],
        )
        for i in range(n)
    ]
    items: list[JudgeItem] = []
    owner: list[tuple[int, int]] = []
    for i, res in enumerate(results):
        if not res.correct:
            continue
        for j, ch in enumerate(res.chunks):
            items.append(JudgeItem(problem=(problems[i] if problems is not None else "") or "", segment=ch.text, ground_truth=gts[i]))
            owner.append((i, j))
    verdicts, fell_back = _run_judge(judge if judge is not None else RuleJudge(), items)
    per: dict[int, list[tuple[bool | None, bool]]] = {}
    for (i, _j), v, f in zip(owner, verdicts, fell_back):
        per.setdefault(i, []).append((v, f))
    for i, vs in per.items():
        res = results[i]
        res.judge_fallback = any(f for _, f in vs)
        for j, (v, _f) in enumerate(vs):
            if v is None:  # undecidable before any "yes": no penalty for this response
                break
            if v:
                res.nrp_chunk = j
                break
        if res.nrp_chunk is not None and res.nrp_chunk + 1 < len(res.chunks):
            res.redundant_start = res.chunks[res.nrp_chunk + 1].start_token
            res.redundant_end = res.chunks[-1].end_token
            if res.redundant_end < res.redundant_start:
                res.redundant_end = res.redundant_start
        else:
            res.redundant_start = res.redundant_end = res.chunks[-1].end_token if res.chunks else 0
    return results


def redundant_token_fraction(
    completion: Any,
    ground_truth: Any,
    tokenizer: Any,
    *,
    completion_ids: Sequence[int] | None = None,
    problem: str = "",
    judge: Judge | None = None,
    correct: bool | None = None,
    grader: MathGrader | None = None,
    split_words: Sequence[str] = DEFAULT_SPLIT_WORDS,
    split_inline: bool = True,
) -> tuple[int, int]:
    """``(redundant tokens, total tokens)`` of one completion, for evaluation
    (``redundant_fraction`` = their ratio over a benchmark). ``completion`` is the text (or
    chat messages); its tokens are ``completion_ids`` or the text tokenized without special
    tokens. The judge defaults to an in-process :class:`RuleJudge`; correctness to ``correct``
    or the math grader (in-process unless ``grader``). For many completions call
    :func:`analyze_completions` once instead (one judge call)."""
    res = analyze_completions(
        [list(completion_ids)] if completion_ids is not None else None,
        [ground_truth],
        tokenizer,
        completions=[completion],
        problems=[problem],
        judge=judge,
        correct=None if correct is None else [bool(correct)],
        grader=grader,
        split_words=split_words,
        split_inline=split_inline,
    )[0]
    return res.redundant_tokens, res.num_tokens


# ---------------------------------------------------------------------------------------
# The reward
# ---------------------------------------------------------------------------------------


def problem_text(prompt: Any) -> str:
    """The problem of a prompt: a string as is; chat messages -> the last user message's
    content (string, or the text parts of a content list)."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, dict):
        prompt = [prompt]
    for msg in reversed(list(prompt)):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, (list, tuple)):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return "" if content is None else str(content)
    return ""


_SETTING_KEYS = (
    "decs_split_words",
    "decs_split_inline",
    "decs_judge",
    "decs_judge_url",
    "decs_judge_model",
    "decs_judge_template",
    "decs_judge_timeout",
    "decs_judge_retries",
    "decs_judge_concurrency",
    "decs_judge_max_segment_chars",
    "decs_judge_fallback",
)


def _bad(key: str, msg: str) -> ValueError:
    return ValueError(f"method_kwargs[{key!r}] {msg}")


def _num(kw: dict, key: str, default: float, minimum: float, integer: bool, strict: bool = False) -> float:
    v = kw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise _bad(key, f"must be {'an integer' if integer else 'a number'}, got {v!r}")
    if (v <= minimum) if strict else (v < minimum):
        raise _bad(key, f"must be {'>' if strict else '>='} {minimum}, got {v!r}")
    return int(v) if integer else float(v)


def _split_words_setting(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [w.strip() for w in v.split(",") if w.strip()]
    if not isinstance(v, (list, tuple)) or not all(isinstance(w, str) and w.strip() and " " not in w.strip() for w in v):
        raise _bad("decs_split_words", f"must be a list of single words (or a comma-separated string), got {v!r}")
    return tuple(w.strip() for w in v)


class DECSRedundancyReward:
    """Token-level DECS redundancy indicator (registered as ``decs_redundancy``).

    ``f(prompts, completions, completion_ids, **columns) -> list[list[float]]``: per completion
    one float per token of ``completion_ids``: 1.0 on every token from the first to the last
    redundant token (inclusive), 0.0 elsewhere; all zeros for incorrect responses, rows without
    a ground truth, or when no NRP is found. Ground truth: ``reward_model["ground_truth"]``,
    else the ``ground_truth`` / ``answer`` columns; problem text: the last user message of the
    prompt.

    Configuration (constructor, or ``setup(tokenizer, args)`` reading ``args.method_kwargs``):
    ``decs_split_words`` (list or comma-separated), ``decs_split_inline`` (bool),
    ``decs_judge`` ("rule" | "endpoint"), ``decs_judge_url`` (else ``$PARSIMONY_DECS_JUDGE_URL``),
    ``decs_judge_model``, ``decs_judge_template`` (with ``{problem}``, ``{segment}``,
    ``{ground_truth}``), ``decs_judge_timeout`` (s per request), ``decs_judge_retries``,
    ``decs_judge_concurrency``, ``decs_judge_max_segment_chars``, ``decs_judge_fallback``
    ("rule" | "no_penalty").

    Correctness and the rule judge's comparisons go through ``grader`` (default: the shared
    :func:`rewards.math.get_default_grader`), so sympy never runs in the training process.
    """

    token_level = True

    def __init__(
        self,
        tokenizer: Any = None,
        *,
        judge: Judge | None = None,
        grader: MathGrader | None = None,
        split_words: Sequence[str] = DEFAULT_SPLIT_WORDS,
        split_inline: bool = True,
        name: str = "decs_redundancy",
    ):
        self.__name__ = name
        self.tokenizer = tokenizer
        self._grader = grader
        self._judge = judge
        self.split_words = tuple(split_words)
        self.split_inline = bool(split_inline)
        self._lock = threading.Lock()
        self._meta: list[dict[str, Any]] = []
        self._reset()

    # -- configuration -------------------------------------------------------------------

    @property
    def grader(self) -> MathGrader:
        if self._grader is None:
            self._grader = get_default_grader("math")
        return self._grader

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            self._judge = RuleJudge(grader=self.grader)
        return self._judge

    def setup(self, tokenizer: Any = None, args: Any = None) -> None:
        if tokenizer is not None:
            self.tokenizer = tokenizer
        kw = getattr(args, "method_kwargs", None) if args is not None else None
        if kw is None and isinstance(args, dict):
            kw = args
        self.configure(**{k: v for k, v in (kw or {}).items() if k in _SETTING_KEYS})

    def configure(self, **kw: Any) -> None:
        """Applies ``decs_*`` settings (the :meth:`setup` keys); errors name the key."""
        unknown = sorted(set(kw) - set(_SETTING_KEYS))
        if unknown:
            raise ValueError(f"unknown DECS reward settings {unknown}; known: {list(_SETTING_KEYS)}")
        split_words = _split_words_setting(kw["decs_split_words"]) if "decs_split_words" in kw else self.split_words
        split_inline = kw.get("decs_split_inline", self.split_inline)
        if not isinstance(split_inline, bool):
            raise _bad("decs_split_inline", f"must be true or false, got {split_inline!r}")
        kind = kw.get("decs_judge", "rule")
        if kind not in ("rule", "endpoint"):
            raise _bad("decs_judge", f"must be 'rule' or 'endpoint', got {kind!r}")
        timeout = _num(kw, "decs_judge_timeout", 30.0, 0.0, False, strict=True)
        retries = _num(kw, "decs_judge_retries", 2, 0, True)
        concurrency = _num(kw, "decs_judge_concurrency", 16, 1, True)
        max_chars = _num(kw, "decs_judge_max_segment_chars", 20_000, 1, True)
        fallback = kw.get("decs_judge_fallback", "rule")
        if fallback not in ("rule", "no_penalty"):
            raise _bad("decs_judge_fallback", f"must be 'rule' or 'no_penalty', got {fallback!r}")
        model = kw.get("decs_judge_model", DEFAULT_JUDGE_MODEL)
        if not isinstance(model, str) or not model:
            raise _bad("decs_judge_model", f"must be a non-empty string, got {model!r}")
        template = kw.get("decs_judge_template", DEFAULT_JUDGE_TEMPLATE)
        if not isinstance(template, str) or "{segment}" not in template:
            raise _bad("decs_judge_template", f"must be a string containing the {{segment}} placeholder, got {template!r}")
        url = kw.get("decs_judge_url")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise _bad("decs_judge_url", f"must be an http(s) URL, got {url!r}")
        if kind == "endpoint":
            url = url or os.environ.get(JUDGE_URL_ENV)
            if not url or not url.startswith(("http://", "https://")):
                raise _bad("decs_judge_url", f"must be an http(s) URL (or set ${JUDGE_URL_ENV}) for decs_judge='endpoint', got {url!r}")
        # everything is valid: apply
        self.split_words, self.split_inline = split_words, split_inline
        if kind == "rule":
            endpoint_keys = sorted(k for k in kw if k.startswith("decs_judge_"))
            if endpoint_keys:
                logger.warning("DECS reward: %s are ignored with decs_judge='rule'", endpoint_keys)
            if "decs_judge" in kw:
                self._judge = None  # a RuleJudge over the grader, made on first use
            return
        self._judge = EndpointJudge(
            url=url,
            model=model,
            template=template,
            timeout=timeout,
            retries=retries,
            concurrency=concurrency,
            max_segment_chars=max_chars,
            fallback=fallback,
            rule_judge=RuleJudge(grader=self.grader),
        )

    # -- scoring -------------------------------------------------------------------------

    def analyze(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[DECSResult]:
        """The per-completion :class:`DECSResult` objects behind :meth:`__call__`."""
        if self.tokenizer is None:
            raise RuntimeError("DECSRedundancyReward needs a tokenizer: pass it to the constructor or call setup()")
        completions = list(completions or [])
        n = len(completions) if completions else len(completion_ids or [])
        gts = ground_truths_from_columns(n, columns)
        prompts = list(prompts) if prompts is not None else [None] * n
        if len(prompts) != n:
            raise ValueError(f"{len(prompts)} prompts for {n} completions")
        ids = [list(x) for x in completion_ids] if completion_ids is not None else None
        return analyze_completions(
            ids,
            gts,
            self.tokenizer,
            completions=completions or None,
            problems=[problem_text(p) for p in prompts],
            judge=self.judge,
            grader=self.grader,
            split_words=self.split_words,
            split_inline=self.split_inline,
        )

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[list[float]]:
        results = self.analyze(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
        stats = self.judge.pop_stats() if hasattr(self.judge, "pop_stats") else {}
        with self._lock:
            self._meta = [r.meta() for r in results]
            s = self._sums
            s["completions"] += len(results)
            s["correct"] += sum(r.correct for r in results)
            with_nrp = [r for r in results if r.correct and r.nrp_ratio is not None]
            s["with_nrp"] += len(with_nrp)
            s["nrp_ratio_sum"] += sum(r.nrp_ratio for r in with_nrp)  # type: ignore[misc]
            s["redundant_tokens"] += sum(r.redundant_tokens for r in results)
            s["tokens"] += sum(r.num_tokens for r in results)
            for k, v in stats.items():
                self._judge_stats[k] = self._judge_stats.get(k, 0.0) + float(v)
        return [r.token_rewards() for r in results]

    # -- hooks ---------------------------------------------------------------------------

    def _reset(self) -> None:
        self._sums = {k: 0.0 for k in ("completions", "correct", "with_nrp", "nrp_ratio_sum", "redundant_tokens", "tokens")}
        self._judge_stats: dict[str, float] = {}

    def pop_metrics(self) -> dict[str, float]:
        """Since the last pop: judge latency (s, wall time of judge calls), items judged,
        fallbacks, unparseable replies, timeouts, errors; the mean NRP ratio (k+1)/chunks over
        correct responses with an NRP (0.0 when there is none); redundant tokens / all
        completion tokens; correct responses with an NRP / all completions."""
        with self._lock:
            s, j = self._sums, self._judge_stats
            m = {
                "decs/judge_latency_s": j.get("latency_s", 0.0),
                "decs/judge_calls": j.get("calls", 0.0),
                "decs/judge_fallbacks": j.get("fallbacks", 0.0),
                "decs/judge_unparseable": j.get("unparseable", 0.0),
                "decs/judge_timeouts": j.get("timeouts", 0.0),
                "decs/judge_errors": j.get("errors", 0.0),
                "decs/nrp_ratio": s["nrp_ratio_sum"] / s["with_nrp"] if s["with_nrp"] else 0.0,
                "decs/redundant_token_frac": s["redundant_tokens"] / s["tokens"] if s["tokens"] else 0.0,
                "decs/correct_with_nrp_frac": s["with_nrp"] / s["completions"] if s["completions"] else 0.0,
            }
            self._reset()
        return m

    def pop_meta(self) -> list[dict[str, Any]]:
        """One record per completion of the last call (then cleared)."""
        with self._lock:
            meta, self._meta = self._meta, []
        return meta


# the registered instance (``REWARD_FUNCS["decs_redundancy"]``); the trainer calls its setup()
decs_redundancy = DECSRedundancyReward()
