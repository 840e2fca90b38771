"""DECS (arXiv 2509.25827): necessary-reasoning-prefix (NRP) detection and the token-level
redundancy reward.

A completion's reasoning is cut into chunks by :mod:`rewards.decs.chunking` (token character
offsets and the chunking rules; its names are re-exported here). Over those chunks:

1. **NRP detection** (:func:`analyze_completions`, in :mod:`rewards.decs.nrp`, re-exported here):
   only correct responses (graded by the math grader on the full completion against the
   ground truth) are judged. Chunks are scanned
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
from typing import Any, Sequence

from rewards.decs.chunking import (
    DEFAULT_SPLIT_WORDS,
    THINK_END,
    Chunk,
    chunk_completion,
    chunk_spans,
    reasoning_end,
    token_char_offsets,
)
from rewards.decs.judges import EndpointJudge, Judge, RuleJudge
from rewards.decs.nrp import DECSResult, analyze_completions, redundant_token_fraction, resolve_chunking
from rewards.decs.settings import CHUNK_KEYS, SETTING_KEYS, DECSRewardSettings, parse_settings
from rewards.hooks import RewardHooks
from rewards.math import MathGrader, get_default_grader, ground_truths_from_columns
from rewards.registry import register_reward

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
class DECSRedundancyReward(RewardHooks):
    """Token-level DECS redundancy indicator (registered as ``decs_redundancy``).

    ``f(prompts, completions, completion_ids, **columns) -> list[list[float]]``: per completion
    one float per token of ``completion_ids``: 1.0 on every token from the first to the last
    redundant token (inclusive), 0.0 elsewhere; all zeros for incorrect responses, rows without
    a ground truth, or when no NRP is found. Ground truth: ``reward_model["ground_truth"]``,
    else the ``ground_truth`` / ``answer`` columns; problem text: the last user message of the
    prompt.

    Configuration (constructor, or ``setup(tokenizer, args)`` reading ``args.method_kwargs``): the
    ``decs_*`` keys of :class:`rewards.decs.settings.DECSRewardSettings` (the chunking, the judge and
    its endpoint, its prompt and decoding, timeouts, circuit breaker; ``parsimony methods`` lists them
    with their defaults). ``chunking="auto"`` (default) is ``lines`` for the rule judge and ``paper`` for
    the endpoint judge (:func:`rewards.decs.nrp.resolve_chunking`).

    Correctness and the rule judge's comparisons go through ``grader`` (default: the shared
    :func:`rewards.math.get_default_grader`), so sympy never runs in the training process.
    """

    token_level = True
    method_settings = DECSRewardSettings  # the method_kwargs keys it reads (validated at config time)

    def __init__(
        self,
        tokenizer: Any = None,
        *,
        judge: Judge | None = None,
        grader: MathGrader | None = None,
        split_words: Sequence[str] = DEFAULT_SPLIT_WORDS,
        split_inline: bool = True,
        chunking: str = "auto",
        think_end: str = THINK_END,
        name: str = "decs_redundancy",
    ):
        self.__name__ = name
        self.tokenizer = tokenizer
        self._grader = grader
        self._judge = judge
        resolve_chunking(chunking, None)  # validates
        self.split_words = tuple(split_words)
        self.split_inline = bool(split_inline)
        self.chunking = chunking
        self.think_end = think_end
        # what setup() starts from, so that a second setup() never keeps the first one's judge
        self._initial = (judge, self._chunk_options())
        self._lock = threading.Lock()
        self._meta: list[dict[str, Any]] = []
        self._reset()

    # -- configuration -------------------------------------------------------------------

    @property
    def grader(self) -> MathGrader:
        if self._grader is None:
            self._grader = get_default_grader("math")
        return self._grader

    def _chunk_options(self) -> dict[str, Any]:
        return {attr: getattr(self, attr) for attr in CHUNK_KEYS.values()}

    def _restore(self, state: tuple[Any, dict[str, Any]]) -> None:
        self._judge = state[0]
        for attr, v in state[1].items():
            setattr(self, attr, v)

    def resolved_chunking(self) -> str:
        """``lines`` or ``paper``: the chunking this reward uses with its judge."""
        return resolve_chunking(self.chunking, self._judge)

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
        previous = (self._judge, self._chunk_options())
        self._restore(self._initial)
        try:
            self.configure(**{k: v for k, v in (kw or {}).items() if k in SETTING_KEYS})
        except Exception:
            self._restore(previous)  # nothing applied on error
            raise

    def configure(self, **kw: Any) -> None:
        """Applies ``decs_*`` settings (the :meth:`setup` keys); errors name the key."""
        chunk, kind, p = parse_settings(kw, self._chunk_options())
        if kind == "endpoint" and p["tokenizer"] is None:
            p["tokenizer"] = self.tokenizer  # counts the judge prompt's tokens (the paper code's fallback too)
        judge = EndpointJudge(**p, rule_judge=RuleJudge(grader=self.grader)) if kind == "endpoint" else None
        # everything is valid: apply
        for attr, v in chunk.items():
            setattr(self, attr, v)
        if kind == "rule":
            endpoint_keys = sorted(k for k in kw if k.startswith("decs_judge_"))
            if endpoint_keys:
                logger.warning("DECS reward: %s are ignored with decs_judge='rule'", endpoint_keys)
            if "decs_judge" in kw:
                self._judge = None  # a RuleJudge over the grader, made on first use
            return
        self._judge = judge

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
            chunking=self.chunking,
            think_end=self.think_end,
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

