"""Difficulty (reasoning-intensity) scoring for DeReason's SFT/RL split.

Every scorer sits behind :class:`DifficultyScorer` (:mod:`curriculum.dereason.scorer_base`): it
turns rows into :class:`Score` records (``difficulty`` 1-5, the ``raw`` scorer output, or an
``error``). :func:`score_dataset` runs one over a dataset with an append-only cache and adds four
columns:

* ``difficulty``: int 1-5, or None for a row that failed (never a default);
* ``difficulty_raw``: the scorer's raw output as a JSON string (the judge's answer text, the
  pass-rate counts, the column value);
* ``difficulty_error``: None, or why the row failed;
* ``difficulty_scorer``: the scorer's name.

The cache (``<out>.cache.jsonl`` by default) holds one JSON line per scored row, written and
flushed as soon as the row is done, keyed by ``sha256`` of the scorer's name and settings and of
the row's prompt (plus what else the scorer reads, e.g. the ground truth for ``pass_rate``). A
re-run scores only rows whose key has no successful record; an interrupted run loses at most the
rows in flight. Failed rows are written too (for the record) but are retried on the next run.

Scorers (:mod:`curriculum.dereason.scorers`; they, and the interface, are re-exported here):

* ``judge`` (:class:`JudgeScorer`): an OpenAI-compatible ``/v1/chat/completions`` endpoint with the
  rubric :data:`RUBRIC`; the answer's score is read by :func:`parse_score`.
* ``pass_rate`` (:class:`rl.eval.pass_rate.PassRateScorer`, in ``rl`` because it generates with the
  evaluation code; ``curriculum`` never imports ``rl``): k sampled answers from the current model,
  graded; the pass rate maps to a difficulty by :func:`difficulty_from_pass_rate`.
* ``column`` (:class:`ColumnScorer`): an existing field, e.g. a task's ``extra_info.difficulty`` or
  MATH's ``level`` ("Level 3"), rescaled to 1-5 when its range is another.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

# the scorer interface and the built-in scorers, importable from here too
from curriculum.dereason.scorer_base import (
    MAX_SCORE,
    MIN_SCORE,
    DifficultyScorer,
    Score,
    ScoreParseError,
    prompt_text,
    row_prompt,
)
from curriculum.dereason.scorers import RUBRIC, ColumnScorer, JudgeScorer, difficulty_from_pass_rate, parse_score

__all__ = [
    "COLUMNS",
    "MAX_SCORE",
    "MIN_SCORE",
    "RUBRIC",
    "SCORERS",
    "ColumnScorer",
    "DifficultyScorer",
    "JudgeScorer",
    "Score",
    "ScoreCache",
    "ScoreParseError",
    "ScoreReport",
    "cache_key",
    "difficulty_from_pass_rate",
    "iter_counts",
    "parse_score",
    "prompt_text",
    "row_prompt",
    "score_dataset",
    "score_rows",
    "split_by_difficulty",
]

COLUMNS = ("difficulty", "difficulty_raw", "difficulty_error", "difficulty_scorer")


def cache_key(scorer: DifficultyScorer, row: dict) -> str:
    """The cache key of a row: sha256 of the scorer's name and settings and of what it reads."""
    blob = json.dumps({"scorer": scorer.name, "settings": scorer.settings(), "row": scorer.key_fields(row)},
                      sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- the cache -----------------------------------------------------------------------------------
class ScoreCache:
    """Append-only JSON lines ``{"key", "difficulty", "raw", "error"}``, one per finished row, flushed
    at once. On load the last successful record of a key wins; a torn last line is skipped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done: dict[str, Score] = {}
        self.failed: dict[str, Score] = {}
        self.torn_lines = 0
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    key = rec["key"]
                except (ValueError, KeyError, TypeError):
                    self.torn_lines += 1
                    continue
                s = Score(rec.get("difficulty"), rec.get("raw"), rec.get("error"))
                if s.ok:
                    self.done[key] = s
                    self.failed.pop(key, None)
                elif key not in self.done:
                    self.failed[key] = s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a")
        self._lock = threading.Lock()

    def put(self, key: str, score: Score) -> None:
        line = json.dumps({"key": key, "difficulty": score.difficulty, "raw": score.raw, "error": score.error},
                          default=str, ensure_ascii=False)
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()
        if score.ok:
            self.done[key] = score
            self.failed.pop(key, None)
        else:
            self.failed[key] = score

    def close(self) -> None:
        self._f.close()


@dataclass
class ScoreReport:
    scorer: str
    rows: int = 0
    cached: int = 0
    scored: int = 0
    failed: int = 0
    counts: dict[int, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)  # {"row", "error"} (first 20)

    def to_dict(self) -> dict[str, Any]:
        return {"scorer": self.scorer, "rows": self.rows, "cached": self.cached, "scored": self.scored,
                "failed": self.failed, "counts": {str(k): v for k, v in sorted(self.counts.items())},
                "failures": self.failures}


def score_rows(
    rows: Sequence[dict], scorer: DifficultyScorer, cache_path: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Score], ScoreReport]:
    """Score ``rows`` (cached rows are not sent again); returns one Score per row and a report."""
    cache = ScoreCache(cache_path)
    report = ScoreReport(scorer.name, rows=len(rows))
    keys = [cache_key(scorer, r) for r in rows]
    results: list[Score | None] = [cache.done.get(k) for k in keys]
    report.cached = sum(1 for s in results if s is not None)
    # identical prompts are scored once
    first_of: dict[str, int] = {}
    todo: list[int] = []
    for i, k in enumerate(keys):
        if results[i] is None and k not in first_of:
            first_of[k] = i
            todo.append(i)
    try:
        done = 0
        for j, score in scorer.score_many([rows[i] for i in todo]):
            cache.put(keys[todo[j]], score)
            done += 1
            if progress is not None:
                progress(done, len(todo))
    finally:
        cache.close()
        scorer.close()
    for i, k in enumerate(keys):
        if results[i] is None:
            results[i] = cache.done.get(k) or cache.failed.get(k) or Score(None, None, "not scored (interrupted)")
    for i, s in enumerate(results):
        if s.ok:
            report.counts[s.difficulty] = report.counts.get(s.difficulty, 0) + 1
        else:
            report.failed += 1
            if len(report.failures) < 20:
                report.failures.append({"row": i, "error": s.error})
    report.scored = len(todo)
    return results, report  # type: ignore[return-value]


def score_dataset(dataset: Any, scorer: DifficultyScorer, cache_path: str | Path, progress=None):
    """``datasets.Dataset`` -> (the dataset with the :data:`COLUMNS` added, ScoreReport)."""
    rows = [dataset[i] for i in range(len(dataset))]
    scores, report = score_rows(rows, scorer, cache_path, progress)
    for name in COLUMNS:
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
    dataset = dataset.add_column("difficulty", [s.difficulty for s in scores])
    dataset = dataset.add_column("difficulty_raw", [json.dumps(s.raw, default=str, ensure_ascii=False) for s in scores])
    dataset = dataset.add_column("difficulty_error", [s.error for s in scores])
    dataset = dataset.add_column("difficulty_scorer", [scorer.name] * len(scores))
    return dataset, report


SCORERS = ("judge", "pass_rate", "column")


def iter_counts(scores: Iterable[int | None]) -> dict[int, int]:
    out: dict[int, int] = {}
    for s in scores:
        if s is not None:
            out[s] = out.get(s, 0) + 1
    return dict(sorted(out.items()))


# --- the split -----------------------------------------------------------------------------------
def split_by_difficulty(
    difficulties: Sequence[int | None], threshold: int | None = None, rl_fraction: float | None = None, seed: int = 0,
) -> tuple[list[int], list[int], dict[str, Any]]:
    """DeReason's split -> (SFT row indices, RL row indices, report). Exactly one of ``threshold``
    (difficulty >= threshold -> RL) or ``rl_fraction`` (the hardest fraction of the scored rows ->
    RL; ties at the cut broken by a seeded shuffle). Failed rows (None) go to neither."""
    import random

    if (threshold is None) == (rl_fraction is None):
        raise ValueError("give exactly one of threshold or rl_fraction")
    scored = [i for i, d in enumerate(difficulties) if d is not None]
    if threshold is not None:
        if not MIN_SCORE <= threshold <= MAX_SCORE + 1:
            raise ValueError(f"threshold must be in {MIN_SCORE}-{MAX_SCORE + 1}, got {threshold}")
        rl = [i for i in scored if difficulties[i] >= threshold]
        rule = {"threshold": threshold}
    else:
        if not 0 <= rl_fraction <= 1:
            raise ValueError(f"rl_fraction must be in [0, 1], got {rl_fraction}")
        order = list(scored)
        random.Random(seed).shuffle(order)
        order.sort(key=lambda i: -difficulties[i])  # stable: the shuffle breaks ties
        rl = sorted(order[: int(round(rl_fraction * len(scored)))])
        rule = {"rl_fraction": rl_fraction, "seed": seed}
    rl_set = set(rl)
    sft = [i for i in scored if i not in rl_set]
    report = {
        "rule": rule,
        "rows": len(difficulties),
        "failed": len(difficulties) - len(scored),
        "sft": len(sft),
        "rl": len(rl),
        "counts": {str(k): v for k, v in iter_counts(difficulties).items()},
        "sft_counts": {str(k): v for k, v in iter_counts(difficulties[i] for i in sft).items()},
        "rl_counts": {str(k): v for k, v in iter_counts(difficulties[i] for i in rl).items()},
    }
    return sft, rl, report
