"""DECS's necessary-reasoning-prefix (NRP) detection (arXiv 2509.25827): which tokens of a
correct completion are redundant.

Only correct responses (graded by the math grader on the full completion against the ground
truth) are judged. Their reasoning is cut into chunks (:mod:`rewards.decs.chunking`), and the
chunks are scanned in order: the first chunk k that the judge says presents the correct final
answer ends the NRP (chunks 0..k); every chunk after k is redundant. No "yes" -> nothing
redundant. A chunk the judge could not decide (``None``: endpoint down with
``fallback="no_penalty"``) before the first "yes" -> the response is treated as having no
redundant part. :func:`analyze_completions` does a batch (one judge call),
:func:`redundant_token_fraction` one completion; the reward over them is
:mod:`rewards.decs.reward`'s, which re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from rewards.decs.chunking import DEFAULT_SPLIT_WORDS, THINK_END, Chunk, chunks_from, token_char_offsets
from rewards.decs.judge_types import Judge, JudgeItem
from rewards.decs.paper_chunking import newline_token_ids, paper_chunks, split_token_patterns
from rewards.decs.rule_judge import RuleJudge
from rewards.math import MathGrader, completion_text, grade_one, normalize_ground_truth

__all__ = ["CHUNKINGS", "DECSResult", "analyze_completions", "redundant_token_fraction", "resolve_chunking"]

CHUNKINGS = ("auto", "lines", "paper")


def resolve_chunking(chunking: str, judge: Any) -> str:
    """``lines`` or ``paper``: ``auto`` takes the judge's ``preferred_chunking`` (the endpoint judge's
    is ``paper``, the chunking its detector was trained on), else ``lines`` (the rule judge's)."""
    if chunking not in CHUNKINGS:
        raise ValueError(f"chunking must be one of {list(CHUNKINGS)}, got {chunking!r}")
    if chunking == "auto":
        chunking = getattr(judge, "preferred_chunking", None) or "lines"
    return chunking


def _chunker(tokenizer: Any, chunking: str, split_words: Sequence[str], split_inline: bool, think_end: str):
    """``f(ids, offsets) -> chunks`` for one batch (the paper's token patterns computed once)."""
    if chunking == "lines":
        return lambda ids, off: chunks_from(off[0], off[1], split_words, split_inline, think_end)
    patterns, newlines = split_token_patterns(tokenizer, split_words), newline_token_ids(tokenizer)
    return lambda ids, off: paper_chunks(ids, tokenizer, off, split_words, think_end, patterns=patterns,
                                         newline_ids=newlines)


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
    chunking: str = "auto",
    think_end: str = THINK_END,
) -> list[DECSResult]:
    """DECS analysis of a batch of completions (one judge call for all chunks of all correct
    responses).

    ``completion_ids`` (or, when None, ``completions`` tokenized without special tokens) give
    the tokens. Correctness: ``correct`` if given, else the math grader on the full completion
    text (``completions``, else the decoded ids) against the ground truth: through ``grader``
    when given, else in-process (:func:`rewards.math.grade_one`, no timeout). Rows without a
    ground truth are incorrect. ``judge`` defaults to an in-process :class:`RuleJudge`. ``chunking``:
    ``lines`` (:mod:`rewards.decs.chunking`), ``paper`` (:mod:`rewards.decs.paper_chunking`) or
    ``auto`` (:func:`resolve_chunking`); the reasoning ends at ``think_end``.
    """
    judge = judge if judge is not None else RuleJudge()
    chunker = _chunker(tokenizer, resolve_chunking(chunking, judge), split_words, split_inline, think_end)
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
    gts = [normalize_ground_truth(g) for g in ground_truths]  # a str, a list of accepted answers, or None
    if correct is None:
        rows = [i for i in range(n) if gts[i] is not None]
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
            chunks=chunker(completion_ids[i], offsets[i]),
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
    verdicts, fell_back = _run_judge(judge, items)
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
    chunking: str = "auto",
    think_end: str = THINK_END,
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
        chunking=chunking,
        think_end=think_end,
    )[0]
    return res.redundant_tokens, res.num_tokens
