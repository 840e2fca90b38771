"""The rule judge for DECS's NRP detection: does a reasoning segment state the correct final answer?

Answer extraction, no model: a segment's candidate answers (:func:`rule_candidates`) are compared
with the ground truth, in-process or through a :class:`~rewards.math.MathGrader` pool. The judge
protocol is in :mod:`rewards.decs.judge_types`, the endpoint judge in :mod:`rewards.decs.judges`, which
re-exports this one.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Sequence

from rewards.decs.judge_types import JudgeItem
from rewards.equivalence import matches_ground_truth
from rewards.math import MathGrader, extract_answer, normalize_ground_truth

__all__ = ["RuleJudge", "rule_candidates"]

_EXPLICIT = re.compile(r"\\boxed|\\fbox|answer\s*(?:is|:)", re.I)
# a last line that rejects its value ("3*1+5=8, no"): a tried-and-failed candidate, not an answer
_REJECTED = re.compile(r",\s*(?:no|wrong|incorrect)\s*[.!]?\s*$", re.I)
_TRAIL = " \t.,;:!?*_$"


def rule_candidates(segment: str, max_chars: int = 4000, max_answer_chars: int = 200) -> list[str]:
    """Candidate final answers stated in a reasoning segment (the last ``max_chars`` of it).

    If the segment states an answer explicitly (``\\boxed{..}``, ``the answer is X``,
    ``final answer: X``, ``Answer: X``), that statement alone decides: ``[X]`` via
    :func:`rewards.math.extract_answer`. Otherwise the candidates are the right-hand side of
    the last ``=`` on the last non-empty line and what ``extract_answer`` falls back to (the
    last math segment, else the last number), unless that last line rejects its value
    (``3*1+5=8, no``, ``..., wrong``): then there is none. Candidates longer than
    ``max_answer_chars`` are dropped. Never raises.
    """
    if not segment:
        return []
    text = segment[-max_chars:]
    out: list[str] = []
    try:
        extracted = extract_answer(text, fallback="any")  # a segment: its last number counts too
    except Exception:  # extraction is meant to be total; be safe anyway
        extracted = None
    explicit = _EXPLICIT.search(text) is not None
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not explicit and lines and _REJECTED.search(lines[-1]):
        return []  # the segment ends on a rejected try (explore traces): it states no answer
    if extracted is not None:
        out.append(extracted.strip())
    if not explicit:
        if lines and "=" in lines[-1]:
            rhs = lines[-1].rsplit("=", 1)[1].strip().strip(_TRAIL).strip()
            if rhs and rhs not in out:
                out.append(rhs)
    return [c for c in out if c and len(c) <= max_answer_chars]


class RuleJudge:
    """Answer-extraction judge: "yes" when a candidate answer of the segment (see
    :func:`rule_candidates`) is equivalent to the ground truth.

    With ``grader=None`` the comparison runs in-process through
    :func:`rewards.math.verify_answer` (numbers and short strings are decided by its fast
    path without sympy). With a :class:`~rewards.math.MathGrader` the candidates are graded
    in its worker pool, with its per-item timeout, in one batch. Segments are cut to their
    last ``max_chars`` characters and candidates to ``max_answer_chars``.
    """

    def __init__(self, grader: MathGrader | None = None, max_chars: int = 4000, max_answer_chars: int = 200):
        if max_chars < 1 or max_answer_chars < 1:
            raise ValueError("max_chars and max_answer_chars must be >= 1")
        self.grader = grader
        self.max_chars = int(max_chars)
        self.max_answer_chars = int(max_answer_chars)
        self._lock = threading.Lock()
        self._calls = 0
        self._seconds = 0.0

    def judge(self, items: Sequence[JudgeItem]) -> list[bool | None]:
        t0 = time.perf_counter()
        cands = [rule_candidates(it.segment, self.max_chars, self.max_answer_chars) for it in items]
        out: list[bool | None] = [False] * len(items)
        if self.grader is not None:
            flat = [(i, c) for i, cs in enumerate(cands) if items[i].ground_truth for c in cs]
            if flat:
                results = self.grader.grade(["\\boxed{" + c + "}" for _, c in flat], [items[i].ground_truth for i, _ in flat])
                for (i, _), r in zip(flat, results):
                    if r.correct:
                        out[i] = True
        else:
            for i, (it, cs) in enumerate(zip(items, cands)):
                if normalize_ground_truth(it.ground_truth) is None:
                    continue
                out[i] = any(matches_ground_truth(c, it.ground_truth) for c in cs)
        with self._lock:
            self._calls += len(items)
            self._seconds += time.perf_counter() - t0
        return out

    def pop_stats(self) -> dict[str, float]:
        with self._lock:
            s = {"calls": float(self._calls), "latency_s": self._seconds}
            self._calls, self._seconds = 0, 0.0
        return s
