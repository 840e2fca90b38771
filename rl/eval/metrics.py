"""Pure metric functions for benchmark evaluation (no models, files or network).

Every function takes plain Python values (lists of samples, counts) and returns numbers
or dicts, so each is tested against hand-computed values.

Definitions (see docs/evaluation.md):

* **pass@1 (averaged)**: the fraction of correct samples, averaged per problem and then over
  problems: ``mean_p (c_p / n)``. With ``n`` samples per problem this is the unbiased
  estimate of the probability that one sample is correct; it has lower variance than a
  single sample per problem.
* **maj@n**: per problem, a majority vote over the ``n`` extracted answers; the problem
  counts as solved when the winning answer is a correct one (:func:`majority_vote`).
* **pass@k** for ``k <= n``: the unbiased estimator of Chen et al. (2021),
  ``1 - C(n - c, k) / C(n, k)`` per problem, averaged over problems (:func:`pass_at_k`).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

# the vote key shared by every sample the grader marked correct (see majority_vote)
CORRECT_KEY = "\x00correct"


# ---------------------------------------------------------------------------------------
# pass@k
# ---------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples of which ``c`` are correct:
    ``1 - C(n - c, k) / C(n, k)`` (Chen et al. 2021), i.e. the probability that at least
    one of ``k`` samples drawn without replacement from the ``n`` is correct."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c must be in [0, n={n}], got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}], got {k}")
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    # exact integer arithmetic; int / int is correctly rounded even for huge values
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float | None:
    """pass@k averaged over problems given ``(n, c)`` per problem; None for no problems."""
    vals = [pass_at_k(n, c, k) for n, c in counts]
    return statistics.fmean(vals) if vals else None


def pass_at_k_curve(counts: Sequence[tuple[int, int]]) -> dict[int, float]:
    """{k: mean pass@k} for k = 1 .. the smallest n over the problems."""
    counts = list(counts)
    if not counts:
        return {}
    n_min = min(n for n, _ in counts)
    return {k: mean_pass_at_k(counts, k) for k in range(1, n_min + 1)}  # type: ignore[misc]


def mean_pass_at_1(counts: Iterable[tuple[int, int]]) -> float | None:
    """pass@1 averaged over the n samples of each problem, then over problems."""
    vals = [c / n for n, c in counts]
    return statistics.fmean(vals) if vals else None


# ---------------------------------------------------------------------------------------
# majority vote
# ---------------------------------------------------------------------------------------

_WS = re.compile(r"\s+")


def normalize_answer(answer: str | None) -> str | None:
    """A light, meaning-preserving normal form used to group equal answers in a vote:
    whitespace removed, ``$`` and ``\\(...\\)`` wrappers, ``\\dfrac``/``\\tfrac`` -> ``\\frac``,
    ``\\left``/``\\right`` dropped, a trailing period dropped. None / empty -> None."""
    if answer is None:
        return None
    s = str(answer).strip()
    if s.startswith("\\(") and s.endswith("\\)"):
        s = s[2:-2]
    if s.startswith("\\[") and s.endswith("\\]"):
        s = s[2:-2]
    s = s.replace("$", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = _WS.sub("", s).rstrip(".")
    return s or None


def majority_vote(answers: Sequence[str | None], correct: Sequence[bool]) -> tuple[str | None, bool]:
    """Majority vote over one problem's samples -> (winning answer, whether it is correct).

    * Samples the grader marked correct all agree with the ground truth, so they vote for
      one shared key (different spellings of the right answer, e.g. ``1/2`` and
      ``\\frac{1}{2}``, are pooled). Other samples vote for their :func:`normalize_answer`
      form; samples with no extracted answer abstain.
    * Ties are broken deterministically by first appearance: among the answers with the
      most votes, the one whose first vote has the lowest sample index wins. This neither
      favours nor penalises the correct answer, and does not depend on anything but the
      order of the samples (sample index 0, 1, ...).
    * When every sample abstains, the vote is (None, False).

    The returned answer is the first raw answer of the winning group.
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} verdicts")
    votes: dict[str, int] = {}
    first: dict[str, int] = {}
    raw: dict[str, str | None] = {}
    for i, (a, ok) in enumerate(zip(answers, correct)):
        key = CORRECT_KEY if ok else normalize_answer(a)
        if key is None:
            continue
        votes[key] = votes.get(key, 0) + 1
        if key not in first:
            first[key] = i
            raw[key] = a
    if not votes:
        return None, False
    winner = min(votes, key=lambda k: (-votes[k], first[k]))
    return raw[winner], winner == CORRECT_KEY


def maj_at_n(problems: Iterable[tuple[Sequence[str | None], Sequence[bool]]]) -> float | None:
    """Fraction of problems whose majority-vote answer is correct; None for no problems."""
    vals = [float(majority_vote(a, c)[1]) for a, c in problems]
    return statistics.fmean(vals) if vals else None


# ---------------------------------------------------------------------------------------
# token statistics
# ---------------------------------------------------------------------------------------


def _mean(xs: Sequence[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def _median(xs: Sequence[float]) -> float | None:
    return float(statistics.median(xs)) if xs else None


def token_stats(tokens: Sequence[int], correct: Sequence[bool]) -> dict[str, float | None]:
    """Mean and median completion tokens over all samples, the correct ones and the
    incorrect ones (None where a set is empty; the median of an even count is the mean of
    the two middle values)."""
    if len(tokens) != len(correct):
        raise ValueError(f"{len(tokens)} token counts but {len(correct)} verdicts")
    right = [t for t, ok in zip(tokens, correct) if ok]
    wrong = [t for t, ok in zip(tokens, correct) if not ok]
    return {
        "mean_tokens": _mean(tokens),
        "median_tokens": _median(tokens),
        "mean_tokens_correct": _mean(right),
        "median_tokens_correct": _median(right),
        "mean_tokens_incorrect": _mean(wrong),
        "median_tokens_incorrect": _median(wrong),
    }


# ---------------------------------------------------------------------------------------
# one summary per (model, benchmark) from sample records
# ---------------------------------------------------------------------------------------


def group_by_problem(samples: Iterable[Mapping[str, Any]], keys: Sequence[str] = ("problem",)) -> list[list[Mapping[str, Any]]]:
    """Samples -> one list per problem (problems in order of their key, samples in order of
    ``sample`` index). ``keys`` name the fields that identify a problem (e.g.
    ``("benchmark", "problem")`` when pooling several benchmarks)."""
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for s in samples:
        groups[tuple(s[k] for k in keys)].append(s)
    return [sorted(groups[k], key=lambda s: s.get("sample", 0)) for k in sorted(groups, key=_sort_key)]


def _sort_key(key: tuple) -> tuple:
    return tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in key)


def summarize_samples(
    samples: Sequence[Mapping[str, Any]],
    problem_keys: Sequence[str] = ("problem",),
) -> dict[str, Any]:
    """All metrics for a set of sample records.

    Each record needs ``correct`` (bool), ``extracted`` (str | None), ``tokens`` (int),
    ``truncated`` (bool) and the ``problem_keys`` fields; optional ``sample`` (its index),
    ``status``, ``tool_calls`` (int) and ``gen_seconds`` (the share of generation + grading
    wall time spent on it).

    Returns ``num_problems, num_samples, n`` (samples per problem, the smallest count),
    ``pass@1`` (averaged over samples), ``maj@n``, ``pass@k`` ({k: value} for k = 1..n),
    the :func:`token_stats` keys, ``truncated_frac``, ``no_answer_frac``,
    ``mean_tool_calls`` (only when some sample carries ``tool_calls``), ``wall_seconds``,
    ``generated_tokens`` and ``tokens_per_second``.
    """
    problems = group_by_problem(samples, problem_keys)
    counts = [(len(p), sum(bool(s["correct"]) for s in p)) for p in problems]
    tokens = [int(s["tokens"]) for s in samples]
    verdicts = [bool(s["correct"]) for s in samples]
    n = min((len(p) for p in problems), default=0)
    out: dict[str, Any] = {
        "num_problems": len(problems),
        "num_samples": len(samples),
        "n": n,
        "pass@1": mean_pass_at_1(counts),
        "maj@n": maj_at_n(([s.get("extracted") for s in p], [bool(s["correct"]) for s in p]) for p in problems),
        "pass@k": {str(k): v for k, v in pass_at_k_curve(counts).items()},
    }
    out.update(token_stats(tokens, verdicts))
    m = len(samples)
    out["truncated_frac"] = sum(bool(s.get("truncated")) for s in samples) / m if m else None
    out["no_answer_frac"] = sum(s.get("extracted") is None for s in samples) / m if m else None
    tools = [s["tool_calls"] for s in samples if s.get("tool_calls") is not None]
    if tools:
        out["mean_tool_calls"] = statistics.fmean(float(t) for t in tools)
    wall = sum(float(s.get("gen_seconds") or 0.0) for s in samples)
    out["wall_seconds"] = wall
    out["generated_tokens"] = sum(tokens)
    out["tokens_per_second"] = sum(tokens) / wall if wall > 0 else None
    return out


def dataset_metrics(
    samples: Sequence[Mapping[str, Any]], text_metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`summarize_samples` as the in-memory evaluations report it: ``accuracy`` (= pass@1, 0.0
    for no samples), the token means and ``truncated_frac`` as 0.0 where a set is empty, and each of
    ``text_metrics`` (name -> fn(completion) -> float) averaged over the samples. A behaviour that is 0 or 1 on
    every sample (AdaptThink's ``nothink``, a slip) also gets the accuracy of the samples that show it and of those
    that do not: ``<name>_accuracy`` and ``no_<name>_accuracy`` (None where no sample is in that group)."""
    result = summarize_samples(samples)
    result["accuracy"] = result["pass@1"] if result["pass@1"] is not None else 0.0
    for key in ("mean_tokens", "median_tokens", "mean_tokens_correct", "mean_tokens_incorrect", "truncated_frac"):
        if result.get(key) is None:
            result[key] = 0.0
    for metric, fn in (text_metrics or {}).items():
        vals = [fn(x.get("completion", "")) for x in samples]
        result[metric] = sum(vals) / len(vals) if vals else 0.0
        if vals and all(v in (0.0, 1.0) for v in vals):
            result.update(_accuracy_by_behaviour(metric, samples, vals))
    return result


def _accuracy_by_behaviour(metric: str, samples: Sequence[Mapping[str, Any]], flags: Sequence[float]) -> dict:
    groups = {f"{metric}_accuracy": [s for s, f in zip(samples, flags) if f == 1.0],
              f"no_{metric}_accuracy": [s for s, f in zip(samples, flags) if f == 0.0]}
    return {k: (sum(bool(s["correct"]) for s in g) / len(g) if g else None) for k, g in groups.items()}
