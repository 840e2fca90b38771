"""The chunking of DECS's released code (``decs_chunking: paper``), on token ids, beside the
line-based chunking of :mod:`rewards.decs.chunking` (``lines``). The released NRP detector was
trained on segments cut this way, so the endpoint judge uses it by default.

For one completion (token ids):

1. **The reasoning** is the tokens before the first end-of-thinking marker (``</think>``,
   ``decs_think_end``; found in the decoded text, and as a token id when the marker is one token);
   without a marker the whole completion is reasoning. The final answer after the marker is in no
   chunk, so it is never penalised.
2. **Split points**: every position where a split word's tokens start, anywhere in the text (not only
   at line starts): the tokens of ``w`` and of ``" " + w`` for each split word ``w``, leading
   whitespace-only tokens dropped (a tokenizer that writes ``" Wait"`` as ``" "`` + ``"Wait"`` splits at
   ``"Wait"``). The first segment is the text before the first split point; each split point starts a
   segment that runs to the next one; the last runs to the end of the reasoning.
3. **Merging**: a segment that is not multi-line is merged into the next one (consecutive ones
   accumulate until a multi-line segment; the last segment is never merged forward). A segment is
   multi-line, as in the released code, when a newline token follows its first non-newline token *and*
   a newline token precedes its last non-newline token; so a newline strictly inside counts, and so
   does the pair of a leading and a trailing newline. Newline tokens: those of ``"\\n"``, ``" \\n"``,
   ``"\\n\\n"``, ``" \\n\\n"``, ``".\\n"``, ``".\\n\\n"`` whose text holds a newline.

The segment sent to a judge is the chunk's tokens decoded with ``skip_special_tokens=True``.

With a tokenizer that writes every split word, its spaced form and every newline string as one token
(the Qwen-2.5 family of R1-Distill and of the detector) this is the released code's rule token for
token; the whitespace and multi-token handling above only matters for other tokenizers, where taking
each string's first token (the code's rule) would split at every space. One deliberate difference:
the released code cuts only its *last* segment at the marker, so split words in the summary after
``</think>`` make chunks of the final answer there (judged, and penalised when redundant); here the
reasoning is cut at the marker before splitting, as the code's comment intends.
"""

from __future__ import annotations

import bisect
from typing import Any, Sequence

from rewards.decs.chunking import THINK_END, Chunk, reasoning_end

__all__ = ["NEWLINE_STRINGS", "is_multi_line", "newline_token_ids", "paper_chunks", "paper_token_spans",
           "split_token_patterns"]

NEWLINE_STRINGS: tuple[str, ...] = ("\n", " \n", "\n\n", " \n\n", ".\n", ".\n\n")


def _encode(tokenizer: Any, s: str) -> list[int]:
    return [int(t) for t in tokenizer(s, add_special_tokens=False)["input_ids"]]


def _piece(tokenizer: Any, tid: int) -> str:
    return tokenizer.decode([tid], skip_special_tokens=False, clean_up_tokenization_spaces=False)


def split_token_patterns(tokenizer: Any, split_words: Sequence[str]) -> list[tuple[int, ...]]:
    """The token sequences whose start is a split point: ``w`` and ``" " + w`` for each split word,
    leading whitespace-only tokens dropped."""
    out: set[tuple[int, ...]] = set()
    for w in split_words:
        for form in (w, " " + w):
            ids = _encode(tokenizer, form)
            while ids and not _piece(tokenizer, ids[0]).strip():
                ids = ids[1:]
            if ids:
                out.add(tuple(ids))
    return sorted(out)


def newline_token_ids(tokenizer: Any) -> frozenset[int]:
    """The newline tokens: the tokens of :data:`NEWLINE_STRINGS` whose text holds a newline."""
    return frozenset(t for s in NEWLINE_STRINGS for t in _encode(tokenizer, s) if "\n" in _piece(tokenizer, t))


def is_multi_line(ids: Sequence[int], newline_ids: frozenset[int] | set[int]) -> bool:
    """The released code's test: a newline token after the first non-newline token and a newline
    token before the last non-newline token."""
    content = [i for i, t in enumerate(ids) if t not in newline_ids]
    if not content:
        return False
    first, last = content[0], content[-1]
    return any(t in newline_ids for t in ids[first + 1:]) and any(t in newline_ids for t in ids[:last])


def _split_points(ids: Sequence[int], patterns: Sequence[tuple[int, ...]]) -> list[int]:
    by_first: dict[int, list[tuple[int, ...]]] = {}
    for p in patterns:
        by_first.setdefault(p[0], []).append(p)
    n = len(ids)
    return [i for i in range(n) if ids[i] in by_first
            and any(i + len(p) <= n and tuple(ids[i:i + len(p)]) == p for p in by_first[ids[i]])]


def paper_token_spans(ids: Sequence[int], end: int, patterns: Sequence[tuple[int, ...]],
                      newline_ids: frozenset[int] | set[int]) -> list[tuple[int, int]]:
    """Token spans ``[(a, b), ...]`` of the chunks of ``ids[:end]`` (``end``: the first token of the
    marker, or ``len(ids)``); no reasoning -> ``[]``."""
    ids = [int(t) for t in ids[:end]]
    if not ids:
        return []
    bounds = [0] + [p for p in _split_points(ids, patterns) if p > 0] + [len(ids)]
    raw = list(zip(bounds[:-1], bounds[1:]))
    spans: list[tuple[int, int]] = []
    start = None
    for j, (a, b) in enumerate(raw):
        if start is None:
            start = a
        if j == len(raw) - 1 or is_multi_line(ids[a:b], newline_ids):
            spans.append((start, b))
            start = None
    return spans


def _marker_token(ids: Sequence[int], text: str, starts: list[int], tokenizer: Any, think_end: str) -> int:
    """The first token of the marker: found in the decoded text, or as its token id (a marker that is a
    special token decodes to nothing in ``text``); ``len(ids)`` when absent."""
    end = len(ids)
    if not think_end:
        return end
    char = reasoning_end(text, think_end)
    if char < len(text):
        end = bisect.bisect_left(starts, char)  # a token straddling the marker's start stays in the reasoning
    marker = _encode(tokenizer, think_end)
    if len(marker) == 1 and marker[0] in ids[:end]:
        end = list(ids[:end]).index(marker[0])
    return end


def paper_chunks(ids: Sequence[int], tokenizer: Any, offsets: tuple[str, list[int]], split_words: Sequence[str],
                 think_end: str = THINK_END, *, patterns: Sequence[tuple[int, ...]] | None = None,
                 newline_ids: frozenset[int] | None = None) -> list[Chunk]:
    """The chunks of a completion by the paper code's rules (module docstring). ``offsets``: its
    :func:`rewards.decs.chunking.token_char_offsets`; ``patterns`` / ``newline_ids``: precomputed
    :func:`split_token_patterns` / :func:`newline_token_ids` (a batch computes them once)."""
    ids = [int(t) for t in ids]
    text, starts = offsets
    if patterns is None:
        patterns = split_token_patterns(tokenizer, split_words)
    if newline_ids is None:
        newline_ids = newline_token_ids(tokenizer)
    end = _marker_token(ids, text, starts, tokenizer, think_end)
    out = []
    for a, b in paper_token_spans(ids, end, patterns, newline_ids):
        a_char = starts[a] if a < len(starts) else len(text)
        b_char = starts[b] if b < len(starts) else len(text)
        out.append(Chunk(a_char, b_char, a, b, tokenizer.decode(ids[a:b], skip_special_tokens=True)))
    return out
