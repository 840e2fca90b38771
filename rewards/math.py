"""The accuracy rewards, and the one import point of the math grader.

Reward functions follow TRL's contract
``f(prompts, completions, completion_ids=None, **dataset_columns) -> list[float | None]``:
:data:`accuracy_reward` (an :class:`AccuracyReward`) and :class:`ChoiceAccuracyReward`; both
read the ground truth with :func:`ground_truths_from_columns` and grade through a
:class:`MathGrader`.

The grader itself lives in three modules, re-exported here (``from rewards.math import X``
works for all of them):

* :mod:`rewards.answers`: extraction (:func:`extract_boxed`, :func:`extract_answer`,
  :func:`extract_choice_letter`, :func:`gold_choice_letter`, :func:`completion_text`);
* :mod:`rewards.equivalence`: :func:`verify_answer`, :func:`verify_choice`, :func:`grade_one`;
* :mod:`rewards.grader_pool`: :class:`MathGrader` (worker pool with per-item timeouts),
  :class:`GradeResult`, :func:`get_default_grader` (its worker processes run
  :mod:`rewards.grader_worker`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rewards.answers import (
    completion_text,
    extract_answer,
    extract_boxed,
    extract_choice_letter,
    format_ground_truth,
    gold_choice_letter,
    ground_truth_of,
    normalize_ground_truth,
)
from rewards.equivalence import grade_one, verify_answer, verify_choice
from rewards.grader_pool import STATUSES, GradeResult, MathGrader, get_default_grader
from rewards.hooks import RewardHooks

# workers spawned by code loaded before the grader moved to rewards.grader_pool run
# ``from rewards.math import _worker_main``: keep that import working
from rewards.grader_worker import worker_main as _worker_main  # noqa: F401

__all__ = [
    "GradeResult",
    "MathGrader",
    "AccuracyReward",
    "ChoiceAccuracyReward",
    "accuracy_reward",
    "choice_accuracy_reward",
    "extract_boxed",
    "extract_answer",
    "extract_choice_letter",
    "verify_answer",
    "verify_choice",
    "gold_choice_letter",
    "grade_one",
    "get_default_grader",
    "completion_text",
    "ground_truths_from_columns",
    "ground_truth_of",
    "normalize_ground_truth",
    "format_ground_truth",
]


def ground_truths_from_columns(n: int, columns: dict[str, Any]) -> list[str | list[str] | None]:
    """Per-row ground truth from the dataset columns a reward function receives: row ``i``'s
    ``reward_model`` (a dict with ``ground_truth``), ``ground_truth`` and ``answer`` values
    are read by :func:`rewards.answers.ground_truth_of`, the reader evaluation uses too. A
    list is the row's accepted answers (see :func:`rewards.answers.normalize_ground_truth`);
    None where a row has none."""
    cols: dict[str, Any] = {}
    for name in ("reward_model", "ground_truth", "answer"):
        col = columns.get(name)
        if col is None:
            continue
        if isinstance(col, (str, bytes, dict)) or not hasattr(col, "__len__"):
            col = [col] * n  # one value for the whole batch
        if len(col) != n:
            raise ValueError(f"column {name!r} has {len(col)} values for {n} completions")
        cols[name] = col
    return [ground_truth_of({name: col[i] for name, col in cols.items()}) for i in range(n)]


class AccuracyReward(RewardHooks):
    """1.0 if the completion's final answer matches the ground truth, else 0.0; None for
    rows without a ground truth. Grades through a :class:`MathGrader` (the shared default
    one unless given). ``pop_metrics()`` returns and resets the grader counters."""

    mode = "math"

    def __init__(self, grader: MathGrader | None = None, name: str = "accuracy"):
        self.__name__ = name
        self._grader = grader
        self._mlock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._counts = {s: 0 for s in STATUSES}
        self._skipped = 0
        self._seconds = 0.0

    @property
    def grader(self) -> MathGrader:
        """The grader given at construction, else the shared default one for ``mode``."""
        return self._grader if self._grader is not None else get_default_grader(self.mode)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        gts = ground_truths_from_columns(n, kwargs)
        rows = [i for i in range(n) if gts[i] is not None]
        out: list[float | None] = [None] * n
        t0 = time.perf_counter()
        results = self.grader.grade([completion_text(completions[i]) for i in rows], [gts[i] for i in rows]) if rows else []
        for i, r in zip(rows, results):
            out[i] = float(r.score)
        with self._mlock:
            for r in results:
                self._counts[r.status] = self._counts.get(r.status, 0) + 1
            self._skipped += n - len(rows)
            self._seconds += time.perf_counter() - t0
        return out

    def pop_metrics(self) -> dict[str, float]:
        with self._mlock:
            c = self._counts
            m = {
                "grader/timeouts": float(c["timeout"]),
                "grader/no_answer": float(c["no_answer"]),
                "grader/errors": float(c["error"]),
                "grader/graded": float(sum(c.values())),
                "grader/no_ground_truth": float(self._skipped),
                "grader/seconds": float(self._seconds),
            }
            self._reset()
        return m


class ChoiceAccuracyReward(AccuracyReward):
    """Multiple-choice accuracy (GPQA): the letter from ``ANSWER: X`` etc. against the
    ground truth's letter (``"B"`` or ``"B) text of option B"``)."""

    mode = "choice"

    def __init__(self, grader: MathGrader | None = None, name: str = "choice_accuracy"):
        super().__init__(grader, name)


accuracy_reward = AccuracyReward()
choice_accuracy_reward = ChoiceAccuracyReward()
