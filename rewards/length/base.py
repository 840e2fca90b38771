"""The length rewards' shared machinery: settings resolution (``method_kwargs`` through ``setup``, or
constructor keywords, which win), grading against the row's ground truth, lengths and metrics.

Each reward declares its settings as a :class:`rewards.settings.MethodSettings` class in
``method_settings`` (the registry reads it: keys, defaults, help, validation); ``self.settings`` is the
validated ``{key: value}`` dict of the defaults, then ``method_kwargs``, then the constructor's keywords.

Also here: :class:`BudgetedLengthReward` (the completion budget and truncation) and the grouping of
completions by prompt (:func:`group_keys`, :func:`group_rows`) that the group-relative rewards share."""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Mapping, Sequence

from rewards.hooks import RewardHooks
from rewards.math import completion_text, get_default_grader, ground_truths_from_columns
from rewards.settings import MethodSettings

__all__ = ["BudgetedLengthReward", "GradedLengthReward", "group_keys", "group_rows"]


class GradedLengthReward(RewardHooks):
    """Shared machinery: settings resolution, grading, lengths, metrics."""

    name = "length"
    method_settings: ClassVar[type[MethodSettings]] = MethodSettings  # a subclass' settings class

    def __init__(self, grader: Any = None, name: str | None = None, **settings: Any) -> None:
        self.__name__ = name or self.name
        self._grader = grader
        known = self.method_settings.keys()
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown setting(s) {unknown}; known: {sorted(known)}")
        self._explicit = {k: v for k, v in settings.items() if v is not None}
        self._from_args: dict[str, Any] = {}
        self.max_completion_length: int | None = None
        self.eos_token_ids: set[int] = set()
        self._mlock = threading.Lock()
        self._metrics: dict[str, float] = {}
        self.settings = self._resolve()

    # --- settings --------------------------------------------------------------------------------
    def _resolve(self) -> dict[str, Any]:
        """The validated settings: defaults, then ``method_kwargs``, then the constructor's keywords."""
        return self.method_settings.from_kwargs({**self._from_args, **self._explicit}).to_kwargs()

    def setup(self, tokenizer: Any = None, args: Any = None) -> None:
        kwargs = getattr(args, "method_kwargs", None) or {}
        if not isinstance(kwargs, Mapping):
            raise ValueError(f"method_kwargs: must be a mapping, got {type(kwargs).__name__}")
        self._from_args = {k: kwargs[k] for k in self.method_settings.keys() if k in kwargs}
        mcl = getattr(args, "max_completion_length", None)
        self.max_completion_length = mcl if isinstance(mcl, int) and not isinstance(mcl, bool) and mcl > 0 else None
        eos = getattr(tokenizer, "eos_token_id", None)
        self.eos_token_ids = set(eos if isinstance(eos, (list, tuple, set)) else ([] if eos is None else [eos]))
        self.settings = self._resolve()

    # --- helpers ----------------------------------------------------------------------------------
    @property
    def grader(self) -> Any:
        if self._grader is None:
            self._grader = get_default_grader("math")
        return self._grader

    def _correct(self, completions: Sequence[Any], columns: Mapping[str, Any]) -> list[bool | None]:
        """Per completion: True / False, or None when the row has no ground truth."""
        n = len(completions)
        gts = ground_truths_from_columns(n, dict(columns))
        rows = [i for i in range(n) if gts[i] is not None]
        out: list[bool | None] = [None] * n
        if rows:
            results = self.grader.grade([completion_text(completions[i]) for i in rows], [gts[i] for i in rows])
            for i, r in zip(rows, results):
                out[i] = bool(r.correct)
        return out

    def _lengths(self, completion_ids: Sequence[Sequence[int]] | None, n: int) -> list[int]:
        if completion_ids is None or len(completion_ids) != n:
            got = "None" if completion_ids is None else f"{len(completion_ids)} entries"
            raise ValueError(f"reward {self.__name__!r} needs completion_ids (one per completion), got {got}")
        return [len(ids) for ids in completion_ids]

    def _count(self, key: str, k: int = 1) -> None:
        if k:
            with self._mlock:
                self._metrics[key] = self._metrics.get(key, 0.0) + k

    def pop_metrics(self) -> dict[str, float]:
        with self._mlock:
            out, self._metrics = self._metrics, {}
        return out


class BudgetedLengthReward(GradedLengthReward):
    """Adds the length budget (a setting, else ``max_completion_length``, else the call's longest
    completion) and truncation (``max_completion_length`` reached without an eos token)."""

    def _limit(self, value: Any, lengths: Sequence[int]) -> int:
        if value is not None:
            return int(value)
        if self.max_completion_length:
            return self.max_completion_length
        return max(1, max(lengths, default=1))

    def _truncated(self, ids: Sequence[int]) -> bool:
        limit = self.max_completion_length
        if limit is None or len(ids) < limit:
            return False
        return not (self.eos_token_ids and len(ids) > 0 and ids[-1] in self.eos_token_ids)

    def _graded(self, prompts: Any, completions: Any, completion_ids: Any, columns: Mapping[str, Any]):
        """``(n, lengths, correct, groups)`` of one call: ``groups`` maps each prompt's key to its graded rows."""
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        groups = group_rows(group_keys(n, prompts, columns), [i for i in range(n) if correct[i] is not None])
        return n, lengths, correct, groups


def group_keys(n: int, prompts: Sequence[Any] | None, columns: Mapping[str, Any]) -> list[Any]:
    """One key per completion: ``meta["prompt_index"]``, else ``meta["group_index"]``, else the prompt."""
    metas = columns.get("meta") or [{} for _ in range(n)]
    prompts = list(prompts) if prompts is not None else [None] * n
    out = []
    for i in range(n):
        m = metas[i] if i < len(metas) and isinstance(metas[i], Mapping) else {}
        if m.get("prompt_index") is not None:
            out.append(("prompt_index", m["prompt_index"]))
        elif m.get("group_index") is not None:
            out.append(("group_index", m["group_index"]))
        else:
            out.append(("prompt", repr(prompts[i])))
    return out


def group_rows(keys: list[Any], rows: Sequence[int]) -> dict[Any, list[int]]:
    """``{key: [row, ...]}`` of ``rows`` (in order), grouped by ``keys[row]``."""
    out: dict[Any, list[int]] = {}
    for i in rows:
        out.setdefault(keys[i], []).append(i)
    return out
