"""DECS (arXiv 2509.25827): necessary-reasoning-prefix (NRP) detection and the token-level
redundancy reward.

A completion's reasoning is cut into chunks by :mod:`rewards.decs.chunking` (token character
offsets and the chunking rules; its names are re-exported here). Over those chunks:

1. **NRP detection** (:func:`analyze_completions`): only correct responses (graded by the math
   grader on the full completion against the ground truth) are judged. Chunks are scanned
   in order; the first chunk k that the judge says presents the correct final answer ends
   the NRP (chunks 0..k); every chunk after k is redundant. No "yes" -> nothing redundant.
   A chunk the judge could not decide (``None``: endpoint down with ``fallback="no_penalty"``)
   before the first "yes" -> the response is treated as having no redundant part.
2. **The reward** (:class:`DECSRedundancyReward`, registered as ``decs_redundancy``): one float
   per completion token, 1.0 from the first to the last redundant token (inclusive), else 0.0.

Everything here is pure apart from the endpoint judge's HTTP (:mod:`rewards.decs.judges`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

from rewards.decs.chunking import (
    DEFAULT_SPLIT_WORDS,
    THINK_END,
    Chunk,
    _chunks_from,
    chunk_completion,
    chunk_spans,
    reasoning_end,
    token_char_offsets,
)
from rewards.decs.judges import (
    EndpointJudge,
    Judge,
    JudgeItem,
    RuleJudge,
)
from rewards.decs.settings import SETTING_KEYS, SETTINGS, parse_settings
from rewards.registry import register_reward
from rewards.math import (
    MathGrader,
    completion_text,
    get_default_grader,
    grade_one,
    ground_truths_from_columns,
    normalize_ground_truth,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SPLIT_WORDS",
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


@register_reward("decs_redundancy")
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
    ("rule" | "no_penalty"), ``decs_judge_breaker_failures`` (consecutive failed requests that
    open the judge's circuit breaker; 0 = none) and ``decs_judge_breaker_cooldown`` (s before a
    probe; doubles after each failed probe, up to 10x).

    Correctness and the rule judge's comparisons go through ``grader`` (default: the shared
    :func:`rewards.math.get_default_grader`), so sympy never runs in the training process.
    """

    token_level = True
    method_settings = SETTINGS

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
        # what setup() starts from, so that a second setup() never keeps the first one's judge
        self._initial = (judge, self.split_words, self.split_inline)
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
        """Configure from ``args.method_kwargs`` (or a dict), starting from the constructor's
        settings: the result depends only on the constructor and these arguments."""
        if tokenizer is not None:
            self.tokenizer = tokenizer
        kw = getattr(args, "method_kwargs", None) if args is not None else None
        if kw is None and isinstance(args, dict):
            kw = args
        previous = (self._judge, self.split_words, self.split_inline)
        self._judge, self.split_words, self.split_inline = self._initial
        try:
            self.configure(**{k: v for k, v in (kw or {}).items() if k in SETTING_KEYS})
        except Exception:
            self._judge, self.split_words, self.split_inline = previous  # nothing applied on error
            raise

    @staticmethod
    def validate_method_settings(method_kwargs: Any) -> None:
        """Config-time check of the reward's keys in ``method_kwargs`` (no judge is built)."""
        kw = {k: v for k, v in dict(method_kwargs or {}).items() if k in SETTING_KEYS}
        parse_settings(kw, DEFAULT_SPLIT_WORDS, True)

    def configure(self, **kw: Any) -> None:
        """Applies ``decs_*`` settings (the :meth:`setup` keys); errors name the key."""
        split_words, split_inline, kind, p = parse_settings(kw, self.split_words, self.split_inline)
        # everything is valid: apply
        self.split_words, self.split_inline = split_words, split_inline
        if kind == "rule":
            endpoint_keys = sorted(k for k in kw if k.startswith("decs_judge_"))
            if endpoint_keys:
                logger.warning("DECS reward: %s are ignored with decs_judge='rule'", endpoint_keys)
            if "decs_judge" in kw:
                self._judge = None  # a RuleJudge over the grader, made on first use
            return
        self._judge = EndpointJudge(**p, rule_judge=RuleJudge(grader=self.grader))

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
        fallbacks, unparseable replies, timeouts, errors, requests refused by the open circuit
        breaker (short_circuits) and times it opened (breaker_trips); the mean NRP ratio (k+1)/chunks over
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
                "decs/judge_short_circuits": j.get("short_circuits", 0.0),
                "decs/judge_breaker_trips": j.get("breaker_trips", 0.0),
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

